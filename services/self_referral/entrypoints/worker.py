"""Faust worker: walk-ins -> cases and pages; case events -> SelfReferrals; its timer (nobody accepted,
not placed in time, retention ended)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from services.delivery.channels import Channel
from services.kernel.bus import Subscription
from services.kernel.clock import Clock, SystemClock
from services.kernel.reference import ReferenceData
from services.kernel.topics import CAD_WALK_INS, TopicSpec
from services.messaging.streams import Worker, WorkerKit
from services.platform.settings import Settings
from services.self_referral.service import SelfReferrals, walk_in_messages
from services.self_referral.topics import WALK_INS

SERVICE = "self-referral"
SUBSCRIPTIONS = (
    Subscription(CAD_WALK_INS, "walk_ins", SelfReferrals.WALK_IN_EVENTS),
    Subscription(WALK_INS, "walk_ins", SelfReferrals.CASE_EVENTS),
)
FOLLOWS: tuple[TopicSpec, ...] = ()
WRITES = (WALK_INS,)


def build_worker(settings: Settings, reference: ReferenceData, link_for: Callable[[str, str], str],
                 clock: Clock | None = None, channels: dict[str, Channel] | None = None) -> Worker:
    kit = WorkerKit.create(SERVICE, settings)
    clock = clock or SystemClock()
    # Cases and their messages live on the walk-in topic's partitions (keyed by case id).
    messages = kit.delivery(kit.outbox_table("message-deliveries"), WALK_INS, channels,
                            report=walk_in_messages(kit.publisher, clock), clock=clock)
    walk_ins = SelfReferrals(reference, kit.table("walk-ins"), messages, kit.publisher, clock, link_for,
                             settings.public_base_url, timedelta(days=settings.walk_in_data_retention_days),
                             settings.event_time_window)
    kit.subscribe(SUBSCRIPTIONS, {"walk_ins": walk_ins})
    kit.every(settings.escalation_tick_seconds, walk_ins.publish_due)
    return kit.worker()
