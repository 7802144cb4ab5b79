"""Faust worker: referral and page events -> Notifier; a timer publishes due escalations."""

from __future__ import annotations

from services.delivery.channels import Channel
from services.delivery.links import AckLinks
from services.kernel.bus import Subscription
from services.kernel.caseloads import Caseloads
from services.kernel.clock import Clock, SystemClock
from services.kernel.fhir import ClientSubscriptions
from services.kernel.push import PUSH_ADDRESS, PushDevices
from services.kernel.reference import ReferenceData
from services.kernel.topics import FHIR_SUBSCRIPTIONS, PAGES, PUSH_SUBSCRIPTIONS, REFERRALS
from services.messaging.kafka import TopicFollower
from services.messaging.streams import Worker, WorkerKit
from services.notifier.heartbeats import SubscriptionHeartbeats
from services.notifier.service import Notifier, PageAttempts
from services.platform.settings import Settings

SERVICE = "notifier"
SUBSCRIPTIONS = (
    Subscription(REFERRALS, "notifier", Notifier.REFERRAL_EVENTS),
    Subscription(PAGES, "notifier", Notifier.PAGE_EVENTS),
    Subscription(FHIR_SUBSCRIPTIONS, "heartbeats", SubscriptionHeartbeats.EVENTS),  # who beats for which
)
# caseloads span every partition; subscriptions every organisation; push devices every person
FOLLOWS = (REFERRALS, PAGES, FHIR_SUBSCRIPTIONS, PUSH_SUBSCRIPTIONS)
WRITES = (PAGES, PUSH_SUBSCRIPTIONS)  # a device its push service no longer knows is dropped


def build_worker(settings: Settings, reference: ReferenceData, links: AckLinks, clock: Clock | None = None,
                 channels: dict[str, Channel] | None = None) -> Worker:
    kit = WorkerKit.create(SERVICE, settings)
    clock = clock or SystemClock()
    # Both tables are written only while processing referral or page events, which share the
    # referral id as key: one worker owns a referral's page and its deliveries.
    delivery = kit.delivery(kit.outbox_table("deliveries"), PAGES, channels, report=PageAttempts(kit.publisher, clock),
                            clock=clock)
    # Caseloads span every partition, so the notifier follows the whole referral history (as the API does).
    caseloads, subscriptions, devices = Caseloads(), ClientSubscriptions(), PushDevices()

    def apply(event) -> None:  # one follower, three read models
        caseloads.apply(event)
        subscriptions.apply(event)
        devices.apply(event)

    # ids, statuses and endpoints; of personal values only what a push is sent to (a referral's person stays sealed)
    kit.follow(TopicFollower(settings, kit.codec, FOLLOWS, apply, personal=PUSH_ADDRESS))
    notifier = Notifier(reference, kit.table("pages"), delivery, links, kit.publisher, clock,
                        caseloads.caseload, subscriptions, devices, erase=kit.keys.erase_soon)
    heartbeats = SubscriptionHeartbeats(subscriptions, delivery.channels["webhook"],
                                        f"{links.base_url}/fhir", clock, kit.owner_of(FHIR_SUBSCRIPTIONS))
    kit.subscribe(SUBSCRIPTIONS, {"notifier": notifier, "heartbeats": heartbeats})
    kit.every(settings.escalation_tick_seconds, notifier.publish_due_escalations)
    kit.every(settings.escalation_tick_seconds, heartbeats.send_due)
    return kit.worker()
