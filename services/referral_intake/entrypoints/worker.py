"""Faust worker: CAD referrals -> ReferralIntake; referral and page events -> EngagementTracker; flag timer."""

from __future__ import annotations

from datetime import timedelta

import faust

from services.core.clock import Clock, SystemClock
from services.core.events import (
    CadReferralMade,
    EngagementRecorded,
    PageAcknowledged,
    PageEscalated,
    PageExhausted,
    PageRequested,
    PageSent,
    ReferralCreated,
    ReferralFlagged,
    ReferralStatusChanged,
)
from services.core.reference import ReferenceData
from services.core.settings import Settings
from services.core.streams import WorkerKit
from services.core.topics import CAD_REFERRALS, PAGES, REFERRALS
from services.referral_intake.service import EngagementTracker, ReferralIntake

SERVICE = "referral-intake"


def build_worker(settings: Settings, reference: ReferenceData, clock: Clock | None = None) -> faust.App:
    kit = WorkerKit.create(SERVICE, settings)
    clock = clock or SystemClock()
    # Keyed by referral id, written while processing the CAD record it came from: every record of
    # one CAD event id lands on one partition, so one worker owns each referral id.
    intake = ReferralIntake(reference, kit.table("referrals"), kit.publisher, clock, settings.event_time_window)
    kit.consume(CAD_REFERRALS, intake.on_cad_referral, (CadReferralMade,))

    # Lifecycle: its own table, written only from the referral and page topics (both keyed by
    # referral id), so one worker owns each referral's lifecycle.
    tracker = EngagementTracker(reference, kit.table("lifecycle"), kit.publisher, clock,
                                timedelta(hours=settings.intake_warning_hours))
    kit.consume(REFERRALS, tracker.on_event,
                (ReferralCreated, ReferralStatusChanged, EngagementRecorded, ReferralFlagged), name="lifecycle")
    kit.consume(PAGES, tracker.on_event, (PageRequested, PageSent, PageAcknowledged, PageEscalated, PageExhausted),
                name="lifecycle-pages")
    kit.every(settings.escalation_tick_seconds, tracker.publish_due_flags)

    kit.app.intake, kit.app.tracker = intake, tracker  # for tests and the console
    return kit.app
