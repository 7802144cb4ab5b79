"""``handoff connect eido-ws URL``: Handoff as a subscriber to an agency's EIDO server (NENA-STA-024
subscribe/notify over WebSocket, sub-protocol ``emergency-ent1.0``, mutual TLS where the server asks).

It subscribes for EIDOs, renews the subscription before it expires, and maps each EIDO of each
``event`` through the agency's call-type table exactly as ``POST /v1/eido`` does. Each event is
answered: 200 once its EIDOs' events are on the broker (a document with nothing to map, or one that
cannot be right, is logged and answered 200 too: sending it again would not help); 503 when the broker
is away, so the server sends it again. A lost connection is retried with backoff, and a server's
``terminate`` ends the subscription, to be renewed.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from services.cad_gateway.domain.calls import map_calls
from services.cad_gateway.domain.eido import NothingToMap, read_eido
from services.cad_gateway.service import publish_mapped
from services.kernel.clock import Clock, EventTimeWindow
from services.kernel.errors import Rejected
from services.kernel.reference import ReferenceData
from services.messaging.kafka import Publisher
from services.platform.logs import correlation_of, correlation_scope, get_logger

log = get_logger(__name__)
SUBPROTOCOL = "emergency-ent1.0"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class EidoSubscriber:
    def __init__(self, url: str, agency_id: str, reference: ReferenceData, publisher: Publisher, clock: Clock,
                 window: EventTimeWindow = EventTimeWindow(), expires_seconds: int = 3600,
                 tls: ssl.SSLContext | None = None, backoff: Callable[[int], float] = lambda n: min(60.0, 2.0 ** n)):
        self.url = url
        self.agency_id = agency_id
        self.reference = reference
        self.publisher = publisher
        self.clock = clock
        self.window = window
        self.expires_seconds = expires_seconds
        self.tls = tls
        self.backoff = backoff
        self.subscription_id: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                async with connect(self.url, subprotocols=[SUBPROTOCOL], ssl=self.tls,  # type: ignore[list-item]
                                   max_size=MAX_MESSAGE_BYTES) as socket:
                    failures = 0
                    await self._session(socket, stop)
            except (OSError, WebSocketException, TimeoutError) as exc:
                failures += 1
                log.warning("eido_server_unreachable", agency_id=self.agency_id, error=type(exc).__name__,
                            retry_in=self.backoff(failures))
            self.subscription_id = None
            try:
                await asyncio.wait_for(stop.wait(), self.backoff(failures) if failures else 0.1)
            except TimeoutError:
                pass

    async def _session(self, socket, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        every = max(self.expires_seconds - 30, self.expires_seconds / 2)  # renewed before it expires
        renew_at = loop.time()
        while not stop.is_set():
            if loop.time() >= renew_at:
                await socket.send(json.dumps(self._subscribe()))
                renew_at = loop.time() + every
            try:
                raw = await asyncio.wait_for(socket.recv(), 1.0)
            except TimeoutError:
                continue
            subscribed = self.subscription_id
            reply = await self.handle(raw)
            if reply is not None:
                await socket.send(json.dumps(reply))
            if subscribed and self.subscription_id is None:  # terminated by the server: subscribe again
                renew_at = loop.time() + 1.0
        if self.subscription_id:
            await socket.send(json.dumps({"unsubscribe": {"requestId": str(uuid.uuid4()),
                                                          "subscriptionId": self.subscription_id}}))

    def _subscribe(self) -> dict:
        request: dict[str, Any] = {"requestId": str(uuid.uuid4()), "requestType": "eido", "requestSubType": "new",
                                   "expires": self.expires_seconds, "minRate": 20}
        if self.subscription_id:
            request["subscriptionId"] = self.subscription_id  # a renewal
        return {"subscribe": request}

    async def handle(self, raw: str | bytes) -> dict | None:
        """One message from the server; the answer to send, if it wants one."""
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            log.warning("eido_message_unreadable", agency_id=self.agency_id)
            return None
        if not isinstance(message, dict):
            return None
        if "subscribeResponse" in message:
            response = message["subscribeResponse"] or {}
            if int(response.get("statusCode", 200)) == 200 and response.get("subscriptionId"):
                self.subscription_id = str(response["subscriptionId"])
                log.info("eido_subscribed", agency_id=self.agency_id)
            else:
                log.warning("eido_subscription_refused", agency_id=self.agency_id,
                            status=response.get("statusCode"))
            return None
        if "terminate" in message:
            terminate = message["terminate"] or {}
            self.subscription_id = None
            log.warning("eido_subscription_terminated", agency_id=self.agency_id)
            return {"terminateResponse": {"requestId": terminate.get("requestId"),
                                          "subscriptionId": terminate.get("subscriptionId"), "statusCode": 200,
                                          "statusText": "OK"}}
        if "event" in message:
            event = message["event"] or {}
            status, text = await self._ingest(event.get("notification") or [])
            return {"eventResponse": {"transactionId": event.get("transactionId"), "statusCode": status,
                                      "statusText": text}}
        return None

    async def _ingest(self, documents: list) -> tuple[int, str]:
        agency = self.reference.agencies.get(self.agency_id)
        if agency is None:
            return 500, "unknown agency"
        for document in documents if isinstance(documents, list) else []:
            try:
                mapped = map_calls(read_eido(document), agency, self.reference.sites, self.clock.now(), self.window)
            except NothingToMap as nothing:
                log.info("eido_nothing_to_map", agency_id=self.agency_id, reason=nothing.reason)
                continue
            except Rejected as exc:
                log.warning("eido_rejected", agency_id=self.agency_id, field=exc.field, reason=exc.detail)
                continue
            try:
                with correlation_scope(correlation_of(mapped.events[0][2]) if mapped.events else None):
                    published = await publish_mapped(mapped, self.publisher)
            except Exception as exc:  # the broker is away: the server sends the event again
                log.warning("eido_publish_failed", agency_id=self.agency_id, error=type(exc).__name__)
                return 503, "try again"
            log.info("eido_mapped", agency_id=self.agency_id, events=len(published), via="subscription")
        return 200, "OK"


def tls_context(ca_file: str | None, client_cert: str | None, client_key: str | None) -> ssl.SSLContext | None:
    """Mutual TLS for wss:// (NENA-STA-024 asks for it): the server checked against ``ca_file``, Handoff's
    certificate and key presented."""
    if not (ca_file or client_cert):
        return None
    context = ssl.create_default_context(cafile=ca_file)
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    return context
