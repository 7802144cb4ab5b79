"""Faust worker: feed heartbeats. Follows every CAD topic in full (any agency's events may land on any
partition), and owns the feed-health topic's partitions: who was told of which silence."""

from __future__ import annotations

from services.cad_gateway.service import FeedWatch, feed_alerts
from services.cad_gateway.topics import FEED_HEALTH
from services.delivery.channels import Channel
from services.kernel.bus import Subscription
from services.kernel.clock import Clock, SystemClock
from services.kernel.reference import ReferenceData
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_OVERDOSES, CAD_REFERRALS, CAD_WALK_INS
from services.messaging.kafka import TopicFollower
from services.messaging.streams import Worker, WorkerKit
from services.platform.settings import Settings

SERVICE = "cad-gateway"
SUBSCRIPTIONS = (Subscription(FEED_HEALTH, "feeds", FeedWatch.EVENTS),)
CAD_TOPICS = (CAD_REFERRALS, CAD_CHILD_ENCOUNTERS, CAD_OVERDOSES, CAD_WALK_INS)
FOLLOWS = CAD_TOPICS  # every agency feed, to see when one goes silent
WRITES = (FEED_HEALTH,)


def build_worker(settings: Settings, reference: ReferenceData, clock: Clock | None = None,
                 channels: dict[str, Channel] | None = None) -> Worker:
    kit = WorkerKit.create(SERVICE, settings)
    clock = clock or SystemClock()
    alerts = kit.delivery(kit.outbox_table("feed-alert-deliveries"), FEED_HEALTH, channels,
                          report=feed_alerts(kit.publisher, clock), clock=clock)
    watch = FeedWatch(reference, kit.table("feeds", personal=False), alerts, kit.publisher, clock)
    kit.follow(TopicFollower(settings, kit.codec, FOLLOWS, watch.seen, personal=False))  # agencies and times
    kit.subscribe(SUBSCRIPTIONS, {"feeds": watch})
    kit.every(settings.escalation_tick_seconds, watch.check)
    return kit.worker()
