"""Handoff subscribed to an agency's EIDO server (NENA-STA-024 subscribe/notify over WebSocket), against a
real WebSocket server on 127.0.0.1 playing the agency's: subscribe with the standard's sub-protocol,
each event answered (200 once published, 503 while the broker is away so it is sent again), a
terminate answered and the subscription renewed, a lost connection retried."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from websockets.asyncio.server import serve

from deploy.local_stack import free_port
from services.cad_gateway.entrypoints.eido_subscriber import SUBPROTOCOL, EidoSubscriber
from services.kernel.cad import CadReferralMade
from services.kernel.clock import FakeClock
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from tests.conftest import eventually
from tests.eido_documents import call_transfer, eido
from tests.factories import NOW

REF = load_reference_data(REPO_ROOT / "config" / "local")


class AgencyServer:
    """Plays the agency's EIDO server: answers subscriptions, sends what the test queues, records answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.subscriptions: list[dict] = []
        self.answers: list[dict] = []
        self.protocols: list[str | None] = []
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.connections = 0

    async def handler(self, socket) -> None:
        self.connections += 1
        self.protocols.append(socket.subprotocol)

        async def sender() -> None:
            while True:
                await socket.send(json.dumps(await self.outbox.get()))

        task = asyncio.create_task(sender())
        try:
            async for raw in socket:
                message = json.loads(raw)
                if "subscribe" in message:
                    self.subscriptions.append(message["subscribe"])
                    await socket.send(json.dumps({"subscribeResponse": {
                        "requestId": message["subscribe"]["requestId"], "subscriptionId": "sub-1",
                        "expires": message["subscribe"]["expires"], "statusCode": 200, "statusText": "OK"}}))
                else:
                    self.answers.append(message)
        finally:
            task.cancel()


async def test_events_are_mapped_answered_and_the_subscription_survives_a_terminate_and_a_lost_connection() -> None:
    server = AgencyServer()
    publisher = InMemoryPublisher()
    async with serve(server.handler, "127.0.0.1", server.port, subprotocols=[SUBPROTOCOL]) as running:
        subscriber = EidoSubscriber(f"ws://127.0.0.1:{server.port}/IncidentData/ent", "apd", REF, publisher,
                                    FakeClock(NOW + timedelta(minutes=30)), expires_seconds=3600,
                                    backoff=lambda n: 0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(subscriber.run(stop))
        try:
            await eventually(lambda: subscriber.subscription_id == "sub-1", timeout=10)
            assert server.protocols == [SUBPROTOCOL] and server.subscriptions[0]["requestType"] == "eido"
            await server.outbox.put({"event": {"transactionId": "t-1", "subscriptionId": "sub-1",
                                               "notification": [eido(NOW), call_transfer(NOW)]}})
            await eventually(lambda: server.answers, timeout=10)
            assert server.answers[0] == {"eventResponse": {"transactionId": "t-1", "statusCode": 200,
                                                           "statusText": "OK"}}
            [referral] = publisher.events(CadReferralMade)
            assert referral.person.last_name == "Example"

            await server.outbox.put({"terminate": {"requestId": "r-9", "subscriptionId": "sub-1"}})
            await eventually(lambda: len(server.subscriptions) >= 2, timeout=10)  # answered, and renewed
            assert {"terminateResponse": {"requestId": "r-9", "subscriptionId": "sub-1", "statusCode": 200,
                                          "statusText": "OK"}} in server.answers

            class Away(InMemoryPublisher):
                async def publish(self, topic, key, event) -> None:
                    raise ConnectionError("broker away")

            subscriber.publisher = Away()
            await server.outbox.put({"event": {"transactionId": "t-2", "subscriptionId": "sub-1",
                                               "notification": [eido(NOW, tracking="urn:emergency:uid:x:2")]}})
            await eventually(lambda: any(a.get("eventResponse", {}).get("transactionId") == "t-2"
                                         for a in server.answers), timeout=10)
            assert [a["eventResponse"]["statusCode"] for a in server.answers if "eventResponse" in a] == [200, 503]
        finally:
            running.close()  # the agency's server goes away ...
            await running.wait_closed()
        connections = server.connections
    async with serve(server.handler, "127.0.0.1", server.port, subprotocols=[SUBPROTOCOL]):
        await eventually(lambda: server.connections > connections, timeout=10)  # ... and back: reconnected
        await eventually(lambda: subscriber.subscription_id == "sub-1", timeout=10)
        stop.set()
        await asyncio.wait_for(task, 10)
