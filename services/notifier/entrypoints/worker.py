"""Faust worker: referral and page events -> Notifier; a timer publishes due escalations."""

from __future__ import annotations

from services.delivery.channels import Channel
from services.delivery.links import AckLinks
from services.kernel.bus import Subscription
from services.kernel.caseloads import Caseloads
from services.kernel.clock import Clock, SystemClock
from services.kernel.reference import ReferenceData
from services.kernel.topics import PAGES, REFERRALS
from services.messaging.kafka import TopicFollower
from services.messaging.streams import Worker, WorkerKit
from services.notifier.service import Notifier, PageAttempts
from services.platform.settings import Settings

SERVICE = "notifier"
SUBSCRIPTIONS = (
    Subscription(REFERRALS, "notifier", Notifier.REFERRAL_EVENTS),
    Subscription(PAGES, "notifier", Notifier.PAGE_EVENTS),
)
FOLLOWS = (REFERRALS, PAGES)  # caseloads span every partition
WRITES = (PAGES,)


def build_worker(settings: Settings, reference: ReferenceData, links: AckLinks, clock: Clock | None = None,
                 channels: dict[str, Channel] | None = None) -> Worker:
    kit = WorkerKit.create(SERVICE, settings)
    clock = clock or SystemClock()
    # Both tables are written only while processing referral or page events, which share the
    # referral id as key: one worker owns a referral's page and its deliveries.
    delivery = kit.delivery(kit.outbox_table("deliveries"), PAGES, channels, report=PageAttempts(kit.publisher, clock))
    # Caseloads span every partition, so the notifier follows the whole referral history (as the API does).
    caseloads = Caseloads()
    kit.follow(TopicFollower(settings, kit.codec, FOLLOWS, caseloads.apply, personal=False))  # ids and statuses
    notifier = Notifier(reference, kit.table("pages"), delivery, links, kit.publisher, clock,
                        caseloads.caseload)
    kit.subscribe(SUBSCRIPTIONS, {"notifier": notifier})
    kit.every(settings.escalation_tick_seconds, notifier.publish_due_escalations)
    return kit.worker()
