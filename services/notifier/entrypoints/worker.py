"""Faust worker: referral and page events -> Notifier; a timer publishes due escalations."""

from __future__ import annotations

import faust
import httpx

from services.core.avro import AvroCodec, registry_from_url
from services.core.clock import Clock, SystemClock
from services.core.events import (
    EngagementRecorded, PageAcknowledged, PageEscalated, PageRequested, PageSent, ReferralCreated, ReferralFlagged,
    ReferralStatusChanged,
)
from services.core.reference import ReferenceData
from services.core.settings import Settings
from services.core.streams import DeadLetterSink, FaustPublisher, RecordProcessor, consume, create_app
from services.core.topics import AUDIT, PAGES, REFERRALS
from services.core.channels import Channel, build_channels
from services.core.delivery import IdempotentDelivery
from services.core.kafka import TopicFollower
from services.core.links import AckLinks
from services.notifier.service import Notifier
from services.referral_intake.adapters.read_model import LeadReadModel

SERVICE = "notifier"


def build_worker(settings: Settings, reference: ReferenceData, links: AckLinks, clock: Clock | None = None,
                 channels: dict[str, Channel] | None = None) -> faust.App:
    app = create_app(SERVICE, settings)
    codec = AvroCodec(registry_from_url(settings.schema_registry_url), max_record_bytes=settings.max_record_bytes)
    publisher = FaustPublisher(app, codec, settings.topic_prefix)
    # Both tables are written only while processing referral or page events, which share the
    # referral id as key: one worker owns a referral's page and its deliveries.
    pages = app.Table("pages", default=None,
                      partitions=settings.topic_partitions)
    deliveries = app.Table("deliveries", default=None,
                           partitions=settings.topic_partitions)
    http = httpx.AsyncClient(timeout=settings.delivery_timeout_seconds)
    delivery = IdempotentDelivery(channels or build_channels(settings, http), deliveries,
                                  settings.delivery_attempts, settings.delivery_backoff_seconds,
                                  audit=lambda record: publisher.publish(AUDIT, record.subject_id, record), service=SERVICE)
    # Caseloads span every partition, so the notifier follows the whole referral history (as the API does).
    caseloads = LeadReadModel()
    app.followers = [TopicFollower(settings, AvroCodec(registry_from_url(settings.schema_registry_url)),
                                   (REFERRALS, PAGES), caseloads.apply)]
    notifier = Notifier(reference, pages, delivery, links, publisher, clock or SystemClock(), caseloads.caseload)
    processor = RecordProcessor(codec, DeadLetterSink(publisher, SERVICE), retries=settings.processing_retries,
                                retry_base_seconds=settings.processing_retry_base_seconds)
    consume(app, REFERRALS, settings, processor, notifier.on_referral_event,
            expected=(ReferralCreated, ReferralStatusChanged, EngagementRecorded, ReferralFlagged))
    consume(app, PAGES, settings, processor, notifier.on_page_event,
            expected=(PageRequested, PageSent, PageAcknowledged, PageEscalated))

    @app.timer(settings.escalation_tick_seconds, on_leader=False)
    async def escalation_tick() -> None:
        await notifier.publish_due_escalations()

    @app.on_before_shutdown.connect
    async def _close_http(_app, **_kw) -> None:
        await http.aclose()

    app.notifier = notifier  # for tests and the console
    app.processor = processor
    return app
