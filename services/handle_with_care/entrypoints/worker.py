"""Faust worker: child encounters -> notice requests; notice events -> HandleWithCare; triage -> TriageDesk;
their timers (escalations, retention, triage reminders)."""

from __future__ import annotations

from datetime import timedelta

from services.delivery.channels import Channel
from services.delivery.links import AckLinks
from services.handle_with_care.domain.escalation import EscalationLeads
from services.handle_with_care.service import CalendarDirectory, HandleWithCare, NoticeAttempts
from services.handle_with_care.topics import HWC_NOTICES, HWC_TRIAGE
from services.handle_with_care.triage import TriageAlertAttempts, TriageDesk
from services.kernel.bus import Subscription
from services.kernel.clock import Clock, SystemClock
from services.kernel.reference import ReferenceData
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, TopicSpec
from services.messaging.streams import Worker, WorkerKit
from services.platform.settings import Settings

SERVICE = "handle-with-care"
SUBSCRIPTIONS = (
    Subscription(CAD_CHILD_ENCOUNTERS, "hwc", HandleWithCare.ENCOUNTER_EVENTS),
    Subscription(HWC_NOTICES, "hwc", HandleWithCare.NOTICE_EVENTS),
    Subscription(HWC_TRIAGE, "triage", TriageDesk.TRIAGE_EVENTS, name="triage"),
)
FOLLOWS: tuple[TopicSpec, ...] = ()
WRITES = (HWC_NOTICES, HWC_TRIAGE)


def roster_secret(settings: Settings) -> bytes:
    """The key of the district rosters' entries: the one ``handoff reference roster`` imported them with."""
    key = settings.roster_key or settings.link_signing_key
    return key.get_secret_value().encode() if key else b""


def build_worker(settings: Settings, reference: ReferenceData, links: AckLinks, clock: Clock | None = None,
                 channels: dict[str, Channel] | None = None) -> Worker:
    kit = WorkerKit.create(SERVICE, settings)
    clock = clock or SystemClock()
    # Both tables are written on the notice topic's partitions (keyed by notice id).
    hwc = HandleWithCare(
        reference, CalendarDirectory(reference), kit.table("notices"),
        kit.delivery(kit.outbox_table("notice-deliveries"), HWC_NOTICES, channels, report=NoticeAttempts(kit.publisher, clock), clock=clock),
        links, kit.publisher, clock,
        EscalationLeads(timedelta(minutes=settings.hwc_backup_lead_minutes),
                        timedelta(minutes=settings.hwc_coordinator_lead_minutes),
                        timedelta(minutes=settings.hwc_late_step_minutes)),
        disclose_agency=settings.hwc_disclose_agency, window=settings.event_time_window,
        retention=timedelta(days=settings.child_data_retention_days), roster_secret=roster_secret(settings))
    kit.every(settings.escalation_tick_seconds, hwc.publish_due_escalations)
    # Triage items (keyed by CAD event id) and their alerts, on the triage topic's partitions.
    alerts = kit.delivery(kit.outbox_table("triage-deliveries"), HWC_TRIAGE, channels,
                          report=TriageAlertAttempts(kit.publisher, clock), clock=clock)
    desk = TriageDesk(reference, kit.table("triage"), alerts,
                      kit.publisher, clock, settings.public_base_url,
                      timedelta(minutes=settings.hwc_coordinator_lead_minutes), place=hwc.place)
    kit.subscribe(SUBSCRIPTIONS, {"hwc": hwc, "triage": desk})
    kit.every(settings.escalation_tick_seconds, desk.publish_due_reminders)
    return kit.worker()
