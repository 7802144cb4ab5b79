"""Signed, expiring, single-purpose acknowledgement links and SMS reply codes."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from services.kernel.clock import Clock, SystemClock


class InvalidLink(Exception):
    pass


class _SignedByClock(TimestampSigner):
    """Stamps and ages a link by the service's clock, not the wall's: a message rendered again (a replay, a
    confirmation in the same second of service time) carries the same link, and a link's expiry follows the clock
    every other deadline follows."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock.now().timestamp())


class AckLinks:
    """``token`` encodes (purpose, subject id, recipient id); the purpose is the salt, so a page link
    cannot acknowledge a notice and vice versa."""

    def __init__(self, secret: str, base_url: str, ttl_seconds: int, clock: Clock | None = None) -> None:
        if not secret:
            raise ValueError("an acknowledgement link signing key is required (HANDOFF_LINK_SIGNING_KEY)")
        self.secret = secret
        self.base_url = base_url.rstrip("/")
        self.ttl_seconds = ttl_seconds
        self.clock = clock or SystemClock()

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=f"handoff-ack-{purpose}", signer=_SignedByClock,
                                      signer_kwargs={"clock": self.clock})

    def token(self, purpose: str, subject_id: str, recipient_id: str) -> str:
        return self._serializer(purpose).dumps([subject_id, recipient_id])

    def url(self, purpose: str, subject_id: str, recipient_id: str, under: str = "ack") -> str:
        """``under``: what the link's page does, "ack" (acknowledges) or "status" (shows, acts on nothing)."""
        return f"{self.base_url}/{under}/{purpose}/{self.token(purpose, subject_id, recipient_id)}"

    def verify(self, purpose: str, token: str) -> tuple[str, str]:
        try:
            subject_id, recipient_id = self._serializer(purpose).loads(token, max_age=self.ttl_seconds)
        except SignatureExpired:
            raise InvalidLink("this acknowledgement link has expired") from None
        except (BadSignature, ValueError, TypeError):
            raise InvalidLink("this acknowledgement link is not valid") from None
        return subject_id, recipient_id

    def reply_code(self, subject_id: str, recipient_id: str) -> str:
        """Six digits a case manager can text back; derived, so every replay gives the same code."""
        digest = hmac.new(self.secret.encode(), f"{subject_id}/{recipient_id}".encode(), hashlib.sha256).digest()
        return f"{int.from_bytes(digest[:4], 'big') % 1_000_000:06d}"
