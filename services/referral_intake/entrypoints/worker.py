"""Faust worker: CAD referrals -> ReferralIntake; referral and page events -> EngagementTracker; flag timer."""

from __future__ import annotations

import faust

from services.core.avro import AvroCodec, registry_from_url
from services.core.clock import Clock, SystemClock
from datetime import timedelta

from services.core.events import (
    CadReferralMade, EngagementRecorded, PageAcknowledged, PageEscalated, PageRequested, PageSent, ReferralCreated,
    ReferralFlagged, ReferralStatusChanged,
)
from services.core.reference import ReferenceData
from services.core.settings import Settings
from services.core.streams import DeadLetterSink, FaustPublisher, RecordProcessor, consume, create_app
from services.core.topics import CAD_REFERRALS, PAGES, REFERRALS
from services.referral_intake.service import EngagementTracker, ReferralIntake

SERVICE = "referral-intake"


def build_worker(settings: Settings, reference: ReferenceData, clock: Clock | None = None) -> faust.App:
    app = create_app(SERVICE, settings)
    codec = AvroCodec(registry_from_url(settings.schema_registry_url), max_record_bytes=settings.max_record_bytes)
    publisher = FaustPublisher(app, codec, settings.topic_prefix)
    # Keyed by referral id, written while processing the CAD record it came from: every record of
    # one CAD event id lands on one partition, so one worker owns each referral id.
    referrals = app.Table("referrals", default=None,
                          partitions=settings.topic_partitions)
    intake = ReferralIntake(reference, referrals, publisher, clock or SystemClock())
    processor = RecordProcessor(codec, DeadLetterSink(publisher, SERVICE), retries=settings.processing_retries,
                                retry_base_seconds=settings.processing_retry_base_seconds)
    consume(app, CAD_REFERRALS, settings, processor, intake.on_cad_referral, expected=(CadReferralMade,))

    # Lifecycle: its own table, written only from the referral and page topics (both keyed by
    # referral id), so one worker owns each referral's lifecycle.
    views = app.Table("lifecycle", default=None, partitions=settings.topic_partitions)
    tracker = EngagementTracker(reference, views, publisher, clock or SystemClock(),
                                timedelta(hours=settings.intake_warning_hours))
    consume(app, REFERRALS, settings, processor, tracker.on_event,
            expected=(ReferralCreated, ReferralStatusChanged, EngagementRecorded, ReferralFlagged), name="lifecycle")
    consume(app, PAGES, settings, processor, tracker.on_event,
            expected=(PageRequested, PageSent, PageAcknowledged, PageEscalated), name="lifecycle-pages")

    @app.timer(settings.escalation_tick_seconds, on_leader=False)
    async def flag_tick() -> None:
        await tracker.publish_due_flags()

    app.intake = intake  # for tests and the console
    app.processor = processor
    app.tracker = tracker
    return app

