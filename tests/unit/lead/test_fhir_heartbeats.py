"""Heartbeats of client-created FHIR Subscriptions (R4 Backport heartbeat-period), on a fake clock: one per period
from the period after the subscription was made, only by the worker that owns it, none once it is deleted or has
ended, a failed one tried again within its period, each a SubscriptionStatus of type heartbeat and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhir.resources.R4B.bundle import Bundle

from services.delivery.channels import DeliveryFailed, Outgoing
from services.kernel.clock import FakeClock
from services.kernel.fhir import ClientSubscriptions, FhirSubscriptionCreated, FhirSubscriptionDeleted
from services.notifier.heartbeats import SubscriptionHeartbeats

T0 = datetime(2026, 12, 1, 9, 0, 10, tzinfo=UTC)


class Endpoint:
    name = "webhook"

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self.down = False

    async def send(self, message: Outgoing) -> None:
        if self.down:
            raise DeliveryFailed("webhook HTTP 503")
        self.sent.append(message)


def subscription(subscription_id: str, every: int | None = 300, end: datetime | None = None) -> FhirSubscriptionCreated:
    return FhirSubscriptionCreated(subscription_id=subscription_id, organization_id="abq-cm",
                                   endpoint=f"https://cm.example.org/{subscription_id}", heartbeat_seconds=every,
                                   end=end, created_by="org:abq-cm", created_at=T0)


async def test_one_heartbeat_a_period_by_the_owner_until_the_subscription_goes() -> None:
    clock, endpoint, subscriptions = FakeClock(T0), Endpoint(), ClientSubscriptions()
    for made in (subscription("sub-a"), subscription("sub-quiet", every=None), subscription("sub-other"),
                 subscription("sub-ends", end=T0 + timedelta(minutes=7))):
        subscriptions.apply(made)
    beats = SubscriptionHeartbeats(subscriptions, endpoint, "http://t/fhir", clock, owns=lambda s: s != "sub-other")

    await beats.send_due()
    assert endpoint.sent == []  # the period it was made in: the handshake said it was alive
    clock.advance(minutes=5)
    await beats.send_due()
    await beats.send_due()  # the same period again: nothing more
    assert sorted(m.address for m in endpoint.sent) == ["https://cm.example.org/sub-a", "https://cm.example.org/sub-ends"]
    first = endpoint.sent[0]
    bundle = Bundle.model_validate(first.payload)
    status = {p.name: p.valueCode for p in bundle.entry[0].resource.parameter if p.valueCode}
    assert len(bundle.entry) == 1 and status == {"status": "active", "type": "heartbeat"}
    assert first.attempt_id.startswith(f"fhir-subscription/{first.address.rsplit('/', 1)[1]}/heartbeat/")

    endpoint.down, endpoint.sent = True, []
    clock.advance(minutes=5)  # sub-ends has ended; sub-a's endpoint is away
    await beats.send_due()
    endpoint.down = False
    await beats.send_due()  # tried again within the period
    assert [m.address for m in endpoint.sent] == ["https://cm.example.org/sub-a"]

    subscriptions.apply(FhirSubscriptionDeleted(subscription_id="sub-a", organization_id="abq-cm",
                                                deleted_by="org:abq-cm", deleted_at=clock.now()))
    clock.advance(minutes=5)
    endpoint.sent = []
    await beats.send_due()
    assert endpoint.sent == []
