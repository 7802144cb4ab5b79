"""Heartbeats of the FHIR Subscriptions that ask for them (R4 Subscriptions Backport ``heartbeat-period``): once
per period, a ``heartbeat`` notification (a SubscriptionStatus and nothing else) tells the endpoint the
subscription is alive, so that a quiet week is not mistaken for a broken one. One a period, whether or not an
event notification went out in it: the guide allows it, and a subscriber needs no arithmetic to watch for them.

Sent by the one notifier worker that owns the subscription's partition of the subscriptions topic, on the
notifier's timer. Each carries ``fhir-subscription/{id}/heartbeat/{period}`` as its idempotency key: a restart
within a period may send that period's heartbeat again, under the same key, which the endpoint can drop. A
heartbeat that fails is tried again on the next tick of the same period.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from services.delivery.channels import Channel, DeliveryFailed, Outgoing
from services.kernel.bus import Handlers
from services.kernel.clock import Clock
from services.kernel.fhir import (
    ClientSubscriptions,
    FhirSubscriptionCreated,
    FhirSubscriptionDeleted,
    notification_bundle,
)
from services.platform.logs import get_logger

log = get_logger(__name__)


class SubscriptionHeartbeats:
    # Consumed (for the partitions its worker owns), not handled: the follower's read model holds them all.
    EVENTS: ClassVar[Handlers] = {FhirSubscriptionCreated: None, FhirSubscriptionDeleted: None}

    def __init__(self, subscriptions: ClientSubscriptions, webhook: Channel, fhir_base: str, clock: Clock,
                 owns: Callable[[str], bool]) -> None:
        self.subscriptions = subscriptions
        self.webhook = webhook
        self.fhir_base = fhir_base
        self.clock = clock
        self.owns = owns  # subscription id -> whether this worker sends its heartbeats
        self._sent: dict[str, int] = {}  # subscription id -> the last period its heartbeat went out in

    def due(self) -> list[tuple[FhirSubscriptionCreated, int]]:
        """Each owned subscription whose current period has had no heartbeat yet (none in the period it was made)."""
        now = self.clock.now()
        found = []
        for subscription in self.subscriptions.all(now):
            every = subscription.heartbeat_seconds
            if not every or not self.owns(subscription.subscription_id):
                continue
            period = int(now.timestamp()) // every
            if period > int(subscription.created_at.timestamp()) // every \
                    and self._sent.get(subscription.subscription_id) != period:
                found.append((subscription, period))
        return found

    async def send_due(self) -> None:
        now = self.clock.now()
        for subscription, period in self.due():
            bundle = notification_bundle(subscription.subscription_id, self.fhir_base, "heartbeat", now)
            try:
                await self.webhook.send(Outgoing(f"fhir-subscription/{subscription.subscription_id}/heartbeat/{period}",
                                                 subscription.endpoint, "", "", "", bundle))
            except DeliveryFailed as exc:
                log.warning("fhir_heartbeat_failed", subscription_id=subscription.subscription_id, reason=str(exc))
                continue
            self._sent[subscription.subscription_id] = period
