"""Delivery channels. Each send is one attempt; retries and recording live in the service layer.

- ``SmsChannel``: a Twilio-shaped REST API (form POST to .../Accounts/{sid}/Messages.json, HTTP
  basic auth), with Twilio's idempotency-token header set to the attempt id.
- ``EmailChannel``: SMTP via aiosmtplib; STARTTLS whenever the server offers it; the Message-ID
  is derived from the attempt id so a receiving system can drop a duplicate. Connections are
  kept and reused, a few at a time.
- ``WebhookChannel``: JSON POST signed with HMAC-SHA256 over ``timestamp.body`` (Stripe-style
  header), with the attempt id as ``Idempotency-Key``.
- ``VoiceChannel``: a call through a Twilio-shaped voice API that reads the page and takes one key.
- ``WebPushChannel``: Web Push to a browser's push service (RFC 8030), the message encrypted for the
  subscription (RFC 8291, by pywebpush) and the request signed with Handoff's VAPID key (RFC 8292, by
  py-vapid); ``Urgency`` and ``TTL`` from the message, a ``Topic`` from the attempt id.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, replace
from email.charset import QP, Charset
from email.header import Header
from email.mime.text import MIMEText
from typing import Any, Protocol

import aiohttp
import aiosmtplib

from services.platform.settings import Settings


class DeliveryFailed(Exception):
    """One attempt failed; ``permanent`` means retrying cannot help (e.g. HTTP 400)."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Outgoing:
    attempt_id: str
    address: str          # phone number, email address or webhook URL
    subject: str
    text: str             # short form (SMS)
    body: str             # long form (email)
    payload: dict[str, Any]  # structured form (webhook, push)
    urgency: str = "high"  # RFC 8030's Urgency: "high" or "low" (services.kernel.reference.Urgency)
    ttl_seconds: int | None = None  # how long a push service may keep it for an offline device (None: a day)

    def only_for(self, channel: str) -> Outgoing:
        """This message with only the forms ``channel`` sends (``FORMS_SENT``), the others emptied.
        Minimum necessary: a pending delivery keeps, in memory and on its outbox's changelog, only
        what its recipient will get (a third of the message, as services render all three forms)."""
        forms = FORMS_SENT.get(channel)
        if forms is None:
            return self
        return replace(self, subject=self.subject if "subject" in forms else "",
                       text=self.text if "text" in forms else "", body=self.body if "body" in forms else "",
                       payload=self.payload if "payload" in forms else {})


class Channel(Protocol):
    name: str

    async def send(self, message: Outgoing) -> None: ...


ANSWER_READ_BYTES = 64 * 1024  # of an endpoint's answer to a post: no more is read


class DeliveryHttp:
    """The HTTP client of the channels that post (SMS, voice, webhooks, push): aiohttp, with as many kept-alive
    connections as sends in flight.

    Not httpx, which the rest of Handoff uses: its pool (httpcore 1.0) looks at every pooled connection, a
    ``getpeername`` and a readability poll each, twice per request. At 64 sends in flight one POST cost 2.0 ms of
    the notifier's CPU, against aiohttp's 0.12 ms (0.63 against 0.15 at 4 in flight); sending was a third of the
    notifier's time (``bench/findings.md``). Redirects are not followed (an endpoint someone outside gave Handoff
    must not redirect its posts into Handoff's own network), and proxies come from the environment, as httpx's do.
    """

    def __init__(self, connections: int, timeout_seconds: float) -> None:
        self.connections = connections
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:  # made in the loop that sends (aiohttp's requirement)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.connections),
                                                  timeout=self.timeout, trust_env=True)
        return self._session

    async def post(self, url: str, body: bytes | dict[str, str], headers: dict[str, str] | None = None,
                   what: str = "endpoint") -> int:
        """POST ``body`` (bytes as they are, a dict as a form) and return the status; ``DeliveryFailed`` (not
        permanent), naming ``what`` was posted to, when there was no answer."""
        try:
            async with self._open().post(url, data=body, headers=headers, allow_redirects=False) as resp:
                # Only the status counts. A short answer is read to its end, so the connection goes back to the pool;
                # a long one (an outside endpoint's, say) is not held in memory: its connection is closed instead.
                left = ANSWER_READ_BYTES
                while left > 0 and (part := await resp.content.read(left)):
                    left -= len(part)
                return resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: not a URL aiohttp can post to
            raise DeliveryFailed(f"{what} unreachable: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> DeliveryHttp:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` header's value for HTTP basic authentication (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _raise_for_status(status: int, what: str) -> None:
    if status >= 500 or status == 429:
        raise DeliveryFailed(f"{what} answered HTTP {status}")
    if status >= 400:
        raise DeliveryFailed(f"{what} refused with HTTP {status}", permanent=True)
    if status >= 300:  # not followed (``DeliveryHttp``), and not delivered: the endpoint's address needs fixing
        raise DeliveryFailed(f"{what} redirected with HTTP {status}, not followed", permanent=True)



class ProviderApi:
    """The SMS and voice provider's REST API, Twilio-shaped: one account (HTTP basic auth), a form POST to
    ``.../Accounts/{sid}/{resource}.json``, the attempt id as Twilio's idempotency token."""

    resource = ""
    what = ""

    def __init__(self, settings: Settings, http: DeliveryHttp) -> None:
        self.url = (f"{settings.sms_api_base_url.rstrip('/')}/2010-04-01/Accounts/{settings.sms_account_sid}"
                    f"/{self.resource}.json")
        self.authorization = basic_auth(settings.sms_account_sid, settings.sms_auth_token.get_secret_value())
        self.from_number = settings.sms_from_number
        self.http = http

    async def _post(self, form: dict[str, str], attempt_id: str) -> None:
        status = await self.http.post(self.url, {**form, "From": self.from_number},
                                      {"Authorization": self.authorization, "I-Twilio-Idempotency-Token": attempt_id},
                                      self.what)
        _raise_for_status(status, self.what)


class SmsChannel(ProviderApi):
    name = "sms"
    sends = frozenset({"text"})
    resource, what = "Messages", "SMS API"

    async def send(self, message: Outgoing) -> None:
        await self._post({"To": message.address, "Body": message.text}, message.attempt_id)


class VoiceChannel(ProviderApi):
    """A phone call (``.../Calls.json``). The call fetches what to say from the page's signed call link
    (``payload["call_url"]``: TwiML that reads the page and gathers one key) and reports how it ended there too.
    Queued by the provider is delivered here: whether anyone answered and pressed 1 is the page's acknowledgement,
    or not."""

    name = "voice"
    sends = frozenset({"payload"})
    resource, what = "Calls", "voice API"
    RING_SECONDS = 30  # then it counts as not answered (voicemail never presses 1)

    async def send(self, message: Outgoing) -> None:
        call_url = message.payload.get("call_url")
        if not message.address or not call_url:
            raise DeliveryFailed("no phone number or no call link for this call", permanent=True)
        await self._post({"To": message.address, "Url": call_url, "Method": "POST",
                          "StatusCallback": f"{call_url}/status", "StatusCallbackMethod": "POST",
                          "Timeout": str(self.RING_SECONDS)}, message.attempt_id)


_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP  # readable in the raw message, unlike the base64 default


class EmailChannel:
    """Sends each message on an open SMTP connection from a small pool.

    A connection per message cost a TCP connect, a name lookup, EHLO (and STARTTLS) per email:
    most of a worker's CPU while it drained a backlog of notices. A connection is put back only
    after a clean send; one the server dropped while idle is replaced and the message sent once
    more on the new one (nothing was accepted on the dropped one)."""

    name = "email"
    sends = frozenset({"subject", "body"})

    def __init__(self, settings: Settings, pool_size: int = 8) -> None:
        self.settings = settings
        self.pool_size = pool_size
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots: asyncio.Semaphore | None = None
        self.connections_opened = 0  # for tests and operators

    async def send(self, message: Outgoing) -> None:
        mail = self.compose(message)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.pool_size)
        async with self._slots:
            client = None
            try:
                client = self._take_idle()
                if client is not None:
                    try:
                        await client.send_message(mail)
                    except aiosmtplib.SMTPServerDisconnected:
                        client.close()
                        client = None
                if client is None:
                    client = await self._connect()
                    await client.send_message(mail)
            except aiosmtplib.SMTPRecipientsRefused:
                self._discard(client)
                raise DeliveryFailed("SMTP server refused the recipient", permanent=True) from None
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                self._discard(client)
                raise DeliveryFailed(f"SMTP delivery failed: {type(exc).__name__}") from None
            except BaseException:
                self._discard(client)  # cancelled mid-conversation: the connection's state is unknown
                raise
            self._idle.append(client)

    def compose(self, message: Outgoing) -> MIMEText:
        """A text/plain UTF-8 message. Built with the compat32 classes: the default policy's
        header objects cost six times as much per email, a large share of a backlog's CPU."""
        mail = MIMEText(message.body, "plain", _UTF8_QP)
        mail["From"] = self.settings.smtp_from
        mail["To"] = message.address
        mail["Subject"] = Header(message.subject, "utf-8")
        mail["Message-ID"] = f"<{hashlib.sha256(message.attempt_id.encode()).hexdigest()[:32]}@handoff>"
        mail["X-Handoff-Delivery"] = message.attempt_id
        return mail

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
            client.close()
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
                                 password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                                 start_tls=True if s.smtp_require_tls else None,
                                 timeout=s.delivery_timeout_seconds)
        await client.connect()
        self.connections_opened += 1
        return client

    @staticmethod
    def _discard(client: aiosmtplib.SMTP | None) -> None:
        if client is not None:
            client.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await asyncio.wait_for(client.quit(), 2)
            except Exception:
                client.close()


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(secret: str, header: str, body: bytes, tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """Receiver side: a valid signature made within ``tolerance_seconds`` (replay protection)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign_webhook(secret, timestamp, body), header)


class WebhookChannel:
    name = "webhook"
    sends = frozenset({"payload"})
    SIGNATURE_HEADER = "X-Handoff-Signature"

    def __init__(self, settings: Settings, http: DeliveryHttp) -> None:
        self.secret = settings.webhook_signing_secret.get_secret_value()
        self.http = http

    async def send(self, message: Outgoing) -> None:
        body = json.dumps(message.payload, sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.attempt_id,
                   self.SIGNATURE_HEADER: sign_webhook(self.secret, int(time.time()), body)}
        _raise_for_status(await self.http.post(message.address, body, headers, "webhook"), "webhook")


PUSH_GONE = "push subscription gone"  # how a delivery's error starts when its device is to be dropped


class PushSubscriptionGone(DeliveryFailed):
    """The push service no longer knows the subscription (404, 410): it is dropped, not tried again."""

    def __init__(self, status: int) -> None:
        super().__init__(f"{PUSH_GONE} (HTTP {status})", permanent=True)


PUSH_TTL_SECONDS = 24 * 3600  # a push service keeps a message this long for a device that is offline, unless told
VAPID_TOKEN_SECONDS = 12 * 3600  # RFC 8292: a VAPID token lives at most 24 hours


def b64url(data: bytes) -> str:
    """Unpadded base64url, as Web Push writes keys, secrets and tokens (RFC 8291, 8292)."""
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def from_b64url(text: str) -> bytes:
    """``b64url`` back to bytes (padding optional); ``binascii.Error`` or ``ValueError`` when it is not base64url."""
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_vapid_key() -> str:
    """A new VAPID key (RFC 8292): the raw P-256 private key, base64url, as ``push_vapid_private_key`` holds it."""
    from py_vapid import Vapid02

    vapid = Vapid02()
    vapid.generate_keys()
    return b64url(vapid.private_key.private_numbers().private_value.to_bytes(32, "big"))


def vapid_public_key(private_key: str) -> str:
    """The public half of a VAPID key, base64url (uncompressed point): a browser's ``applicationServerKey``."""
    from cryptography.hazmat.primitives import serialization
    from py_vapid import Vapid02

    return b64url(Vapid02.from_raw(private_key.encode()).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


def push_subscription(address: str) -> dict[str, Any]:
    """A push delivery's address: the browser's PushSubscription as JSON (endpoint, keys p256dh and auth)."""
    return json.loads(address)


def push_topic(attempt_id: str) -> str:
    """RFC 8030's Topic (at most 32 base64url characters): a resend of the same delivery replaces the copy a push
    service still holds for an offline device, instead of showing twice."""
    return b64url(hashlib.sha256(attempt_id.encode()).digest())[:32]


class WebPushChannel:
    """Web Push from Handoff itself: no vendor app, no vendor account. The body (a JSON notification: title, text,
    and the page's ids and signed acknowledgement link) is encrypted for the subscription's keys by pywebpush; the
    request carries a VAPID token signed by py-vapid with Handoff's key, for the push service's audience."""

    name = "push"
    sends = frozenset({"subject", "text", "payload"})

    def __init__(self, settings: Settings, http: DeliveryHttp) -> None:
        from py_vapid import Vapid02

        key = settings.push_vapid_private_key
        self.vapid = Vapid02.from_raw(key.get_secret_value().encode()) if key else None
        self.subject = settings.push_vapid_subject
        self.http = http

    def notification(self, message: Outgoing) -> bytes:
        return json.dumps({"title": message.subject, "body": message.text, "tag": message.attempt_id,
                           "data": message.payload}, separators=(",", ":")).encode()

    def request(self, message: Outgoing, now: float | None = None) -> tuple[str, bytes, dict[str, str]]:
        """The POST to the push service: its URL, the encrypted body and the headers."""
        from urllib.parse import urlsplit

        from pywebpush import WebPusher, WebPushException

        if self.vapid is None:
            raise DeliveryFailed("push is not configured (no VAPID key)", permanent=True)
        try:
            subscription = push_subscription(message.address)
            body = WebPusher(subscription).encode(self.notification(message), "aes128gcm")["body"]
        except (ValueError, KeyError, TypeError, WebPushException):
            raise DeliveryFailed("push subscription unusable", permanent=True) from None
        endpoint = subscription["endpoint"]
        parts = urlsplit(endpoint)
        claims = {"aud": f"{parts.scheme}://{parts.netloc}", "sub": self.subject,
                  "exp": int((now or time.time()) + VAPID_TOKEN_SECONDS)}
        headers = {**self.vapid.sign(claims), "Content-Encoding": "aes128gcm",
                   "Content-Type": "application/octet-stream",
                   "TTL": str(message.ttl_seconds if message.ttl_seconds is not None else PUSH_TTL_SECONDS),
                   "Urgency": message.urgency, "Topic": push_topic(message.attempt_id)}
        return endpoint, body, headers

    async def send(self, message: Outgoing) -> None:
        endpoint, body, headers = self.request(message)
        status = await self.http.post(endpoint, body, headers, "push service")
        if status in (404, 410):
            raise PushSubscriptionGone(status)
        _raise_for_status(status, "push service")


#: channel name -> the forms of an ``Outgoing`` it sends
FORMS_SENT: dict[str, frozenset[str]] = {c.name: c.sends for c in (SmsChannel, EmailChannel, WebhookChannel,
                                                                     WebPushChannel, VoiceChannel)}


def build_channels(settings: Settings, http: DeliveryHttp) -> dict[str, Channel]:
    return {"sms": SmsChannel(settings, http), "email": EmailChannel(settings, pool_size=settings.smtp_connections),
            "webhook": WebhookChannel(settings, http), "push": WebPushChannel(settings, http),
            "voice": VoiceChannel(settings, http)}


async def private_address_of(url: str, loopback_ok: bool = False) -> str | None:
    """The first private, loopback, link-local or otherwise non-public address ``url``'s host resolves to (None when
    every one is public): an endpoint someone outside gave Handoff must not make it post into its own network (a
    rest-hook aimed at an internal service). Loopback passes where ``loopback_ok`` (development)."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return None  # unresolvable: the handshake fails on its own, and says so
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_loopback and loopback_ok:
            continue
        if not address.is_global:
            return str(address)
    return None


def delivery_http_client(settings: Settings) -> DeliveryHttp:
    """The HTTP client of the channels that post: as many kept-alive connections as sends in flight."""
    return DeliveryHttp(settings.delivery_concurrency, settings.delivery_timeout_seconds)


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature of a request to ``url`` with form ``params``, by Twilio's own library (what a
    provider stand-in signs with; Handoff checks signatures with ``twilio_signed``)."""
    from twilio.request_validator import RequestValidator

    return RequestValidator(auth_token).compute_signature(url, params)


def twilio_signed(auth_token: str, url: str, params: dict[str, str], signature: str) -> bool:
    """Whether a callback came from the SMS or voice provider: its X-Twilio-Signature checked by Twilio's own
    validator. No token set: nothing is taken as signed."""
    from twilio.request_validator import RequestValidator

    return bool(auth_token) and RequestValidator(auth_token).validate(url, params, signature)
