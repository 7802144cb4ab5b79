"""Faust worker: CAD referral records -> ReferralIntake. Only translation happens here."""

from __future__ import annotations

import faust

from services.core.avro import AvroCodec, registry_from_url
from services.core.clock import Clock, SystemClock
from services.core.events import CadReferralMade
from services.core.reference import ReferenceData
from services.core.settings import Settings
from services.core.streams import DeadLetterSink, FaustPublisher, RecordProcessor, consume, create_app
from services.core.topics import CAD_REFERRALS
from services.referral_intake.service import ReferralIntake

SERVICE = "referral-intake"


def build_worker(settings: Settings, reference: ReferenceData, clock: Clock | None = None) -> faust.App:
    app = create_app(SERVICE, settings)
    codec = AvroCodec(registry_from_url(settings.schema_registry_url))
    publisher = FaustPublisher(app, codec, settings.topic_prefix)
    # Keyed by referral id, written while processing the CAD record it came from: every record of
    # one CAD event id lands on one partition, so one worker owns each referral id.
    referrals = app.Table("referrals", default=None,
                          partitions=settings.topic_partitions)
    intake = ReferralIntake(reference, referrals, publisher, clock or SystemClock())
    processor = RecordProcessor(codec, DeadLetterSink(publisher, SERVICE), retries=settings.processing_retries,
                                retry_base_seconds=settings.processing_retry_base_seconds)
    consume(app, CAD_REFERRALS, settings, processor, intake.on_cad_referral, expected=(CadReferralMade,))
    app.intake = intake  # for tests and the console
    return app

