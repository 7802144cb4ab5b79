"""Faust worker: overdose responses -> reports and follow-ups; follow-up events -> QuickResponse; its timer
(a closing window tells the team lead)."""

from __future__ import annotations

from datetime import timedelta

from services.delivery.channels import Channel
from services.kernel.bus import Subscription
from services.kernel.clock import Clock, SystemClock
from services.kernel.reference import ReferenceData
from services.kernel.topics import CAD_OVERDOSES, TopicSpec
from services.messaging.streams import Worker, WorkerKit
from services.platform.settings import Settings
from services.quick_response.service import QuickResponse, follow_up_alerts
from services.quick_response.topics import OVERDOSE_REPORTS, QRT_FOLLOW_UPS

SERVICE = "quick-response"
SUBSCRIPTIONS = (
    Subscription(CAD_OVERDOSES, "qrt", QuickResponse.OVERDOSE_EVENTS),
    Subscription(QRT_FOLLOW_UPS, "qrt", QuickResponse.FOLLOW_UP_EVENTS),
)
FOLLOWS: tuple[TopicSpec, ...] = ()
WRITES = (QRT_FOLLOW_UPS, OVERDOSE_REPORTS)


def build_worker(settings: Settings, reference: ReferenceData, report_key: bytes, clock: Clock | None = None,
                 channels: dict[str, Channel] | None = None) -> Worker:
    kit = WorkerKit.create(SERVICE, settings)
    clock = clock or SystemClock()
    # Follow-ups and their alerts live on the follow-up topic's partitions (keyed by task id).
    alerts = kit.delivery(kit.outbox_table("alert-deliveries"), QRT_FOLLOW_UPS, channels,
                          report=follow_up_alerts(kit.publisher, clock), clock=clock)
    qrt = QuickResponse(reference, kit.table("follow-ups"), alerts, kit.publisher, clock, report_key,
                        settings.public_base_url, timedelta(days=settings.qrt_data_retention_days),
                        settings.event_time_window)
    kit.subscribe(SUBSCRIPTIONS, {"qrt": qrt})
    kit.every(settings.escalation_tick_seconds, qrt.publish_due_warnings)
    return kit.worker()
