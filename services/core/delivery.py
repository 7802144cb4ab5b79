"""Idempotent delivery: send one message on one channel at most once per attempt id.

Shared by pages and notices. A delivery whose attempt id is already recorded as delivered is
not sent again (replays, retries and restarts); a failed try is retried with exponential backoff
unless the channel says retrying cannot help; every try is reported through ``on_attempt`` so
the caller records it as an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.core.channels import Channel, DeliveryFailed, Outgoing
from services.core.events import DeliveryOutcome
from services.core.logs import get_logger
from services.core.store import KeyValueStore

log = get_logger(__name__)

OnAttempt = Callable[[int, DeliveryOutcome, str | None], Awaitable[None]]


class IdempotentDelivery:
    def __init__(self, channels: dict[str, Channel], deliveries: KeyValueStore, attempts: int = 3,
                 backoff_seconds: float = 0.5) -> None:
        self.channels = channels
        self.deliveries = deliveries  # attempt id -> {"outcome": ...}
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds

    def already_delivered(self, attempt_id: str) -> bool:
        prior = self.deliveries.get(attempt_id)
        return bool(prior) and prior.get("outcome") == DeliveryOutcome.delivered.value

    async def deliver(self, channel: str, outgoing: Outgoing, on_attempt: OnAttempt) -> bool:
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
            if outcome is DeliveryOutcome.delivered or permanent:
                break
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        self.deliveries[outgoing.attempt_id] = {"outcome": outcome.value}
        log.info("delivery", attempt_id=outgoing.attempt_id, channel=channel, outcome=outcome.value, error=error)
        return outcome is DeliveryOutcome.delivered
