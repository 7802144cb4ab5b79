"""Idempotent delivery: send one message on one channel at most once per attempt id.

Shared by pages and notices. A delivery whose attempt id is already recorded as delivered is
not sent again (replays, retries and restarts); a failed try is retried with exponential backoff
unless the channel says retrying cannot help; every try is reported through ``on_attempt`` so
the caller records it as an event, and to ``audit`` as a ``DisclosureAudited`` record (kind of
record, recipient, channel, outcome; never the content).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.core.channels import Channel, DeliveryFailed, Outgoing
from services.core.events import Channel as EventChannel
from services.core.events import DeliveryOutcome, DisclosedRecord, DisclosureAudited
from services.core.logs import current_correlation_id, get_logger
from services.core.store import KeyValueStore

log = get_logger(__name__)

OnAttempt = Callable[[int, DeliveryOutcome, str | None], Awaitable[None]]
Audit = Callable[[DisclosureAudited], Awaitable[None]]


@dataclass(frozen=True)
class Disclosure:
    """What a delivery discloses, for the audit record: ids and roles, never the content."""

    record_kind: DisclosedRecord
    subject_id: str
    recipient_id: str
    recipient_role: str


class IdempotentDelivery:
    def __init__(self, channels: dict[str, Channel], deliveries: KeyValueStore, attempts: int = 3,
                 backoff_seconds: float = 0.5, audit: Audit | None = None, service: str = "handoff") -> None:
        self.channels = channels
        self.deliveries = deliveries  # attempt id -> {"outcome": ...}
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.audit = audit
        self.service = service

    async def refuse(self, channel: str, outgoing: Outgoing, on_attempt: OnAttempt, disclosure: Disclosure,
                     reason: str) -> None:
        """Record a disclosure that was not allowed (e.g. outside the person's consent): nothing is sent."""
        await on_attempt(1, DeliveryOutcome.skipped, reason)
        await self._audit(outgoing, channel, 1, DeliveryOutcome.skipped, disclosure)
        log.warning("disclosure_refused", attempt_id=outgoing.attempt_id, reason=reason)

    async def _audit(self, outgoing: Outgoing, channel: str, attempt: int, outcome: DeliveryOutcome,
                     disclosure: Disclosure | None) -> None:
        if self.audit is None or disclosure is None:
            return
        await self.audit(DisclosureAudited(
            audit_id=f"{outgoing.attempt_id}#{attempt}", record_kind=disclosure.record_kind,
            subject_id=disclosure.subject_id, recipient_id=disclosure.recipient_id,
            recipient_role=disclosure.recipient_role, channel=EventChannel(channel), outcome=outcome, attempt=attempt,
            service=self.service, disclosed_at=datetime.now(UTC), correlation_id=current_correlation_id()))

    def already_delivered(self, attempt_id: str) -> bool:
        prior = self.deliveries.get(attempt_id)
        return bool(prior) and prior.get("outcome") == DeliveryOutcome.delivered.value

    async def deliver(self, channel: str, outgoing: Outgoing, on_attempt: OnAttempt,
                      disclosure: Disclosure | None = None) -> bool:
        if self.already_delivered(outgoing.attempt_id):
            return True
        outcome, error = DeliveryOutcome.failed, None
        for attempt in range(1, self.attempts + 1):
            permanent = False
            try:
                await self.channels[channel].send(outgoing)
                outcome, error = DeliveryOutcome.delivered, None
            except DeliveryFailed as exc:
                outcome, error, permanent = DeliveryOutcome.failed, exc.reason, exc.permanent
            await on_attempt(attempt, outcome, error)
            await self._audit(outgoing, channel, attempt, outcome, disclosure)
            if outcome is DeliveryOutcome.delivered or permanent:
                break
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        self.deliveries[outgoing.attempt_id] = {"outcome": outcome.value}
        log.info("delivery", attempt_id=outgoing.attempt_id, channel=channel, outcome=outcome.value, error=error)
        return outcome is DeliveryOutcome.delivered
