"""Delivery channels. Each send is one attempt; retries and recording live in the service layer.

- ``SmsChannel``: a Twilio-shaped REST API (form POST to .../Accounts/{sid}/Messages.json, HTTP
  basic auth), with Twilio's idempotency-token header set to the attempt id.
- ``EmailChannel``: SMTP via aiosmtplib; STARTTLS whenever the server offers it; the Message-ID
  is derived from the attempt id so a receiving system can drop a duplicate.
- ``WebhookChannel``: JSON POST signed with HMAC-SHA256 over ``timestamp.body`` (Stripe-style
  header), with the attempt id as ``Idempotency-Key``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib
import httpx

from services.core.settings import Settings


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
    payload: dict[str, Any]  # structured form (webhook)


class Channel(Protocol):
    name: str

    async def send(self, message: Outgoing) -> None: ...


def _raise_for_status(resp: httpx.Response, what: str) -> None:
    if resp.status_code >= 500 or resp.status_code == 429:
        raise DeliveryFailed(f"{what} answered HTTP {resp.status_code}")
    if resp.status_code >= 400:
        raise DeliveryFailed(f"{what} refused with HTTP {resp.status_code}", permanent=True)


class SmsChannel:
    name = "sms"

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.url = (f"{settings.sms_api_base_url.rstrip('/')}/2010-04-01/Accounts/{settings.sms_account_sid}"
                    "/Messages.json")
        self.auth = (settings.sms_account_sid, settings.sms_auth_token.get_secret_value())
        self.from_number = settings.sms_from_number
        self.client = client

    async def send(self, message: Outgoing) -> None:
        try:
            resp = await self.client.post(self.url, auth=self.auth,
                                          data={"To": message.address, "From": self.from_number, "Body": message.text},
                                          headers={"I-Twilio-Idempotency-Token": message.attempt_id})
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"SMS API unreachable: {type(exc).__name__}") from None
        _raise_for_status(resp, "SMS API")


class EmailChannel:
    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: Outgoing) -> None:
        s = self.settings
        mail = EmailMessage()
        mail["From"] = s.smtp_from
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Message-ID"] = f"<{hashlib.sha256(message.attempt_id.encode()).hexdigest()[:32]}@handoff>"
        mail["X-Handoff-Delivery"] = message.attempt_id
        mail.set_content(message.body)
        try:
            await aiosmtplib.send(mail, hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
                                  password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                                  start_tls=True if s.smtp_require_tls else None, timeout=s.delivery_timeout_seconds)
        except aiosmtplib.SMTPRecipientsRefused:
            raise DeliveryFailed("SMTP server refused the recipient", permanent=True) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP delivery failed: {type(exc).__name__}") from None


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
    SIGNATURE_HEADER = "X-Handoff-Signature"

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.secret = settings.webhook_signing_secret.get_secret_value()
        self.client = client

    async def send(self, message: Outgoing) -> None:
        body = json.dumps(message.payload, sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.attempt_id,
                   self.SIGNATURE_HEADER: sign_webhook(self.secret, int(time.time()), body)}
        try:
            resp = await self.client.post(message.address, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"webhook unreachable: {type(exc).__name__}") from None
        _raise_for_status(resp, "webhook")


def build_channels(settings: Settings, client: httpx.AsyncClient) -> dict[str, Channel]:
    return {"sms": SmsChannel(settings, client), "email": EmailChannel(settings),
            "webhook": WebhookChannel(settings, client)}


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1 of the URL and the sorted form parameters."""
    import base64

    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()
