"""Faust worker: child encounters -> notice requests; notice events -> HandleWithCare; escalation timer."""

from __future__ import annotations

from datetime import timedelta

import faust
import httpx

from services.core.avro import AvroCodec, registry_from_url
from services.core.channels import Channel, build_channels
from services.core.clock import Clock, SystemClock
from services.core.delivery import IdempotentDelivery
from services.core.events import (
    CadChildEncountered, HwcNoticeAcknowledged, HwcNoticeDelivered, HwcNoticeEscalated, HwcNoticeRequested,
)
from services.core.links import AckLinks
from services.core.reference import ReferenceData
from services.core.settings import Settings
from services.core.streams import DeadLetterSink, FaustPublisher, RecordProcessor, consume, create_app
from services.core.topics import AUDIT, CAD_CHILD_ENCOUNTERS, HWC_NOTICES
from services.handle_with_care.domain.escalation import EscalationLeads
from services.handle_with_care.service import CalendarDirectory, HandleWithCare

SERVICE = "handle-with-care"


def build_worker(settings: Settings, reference: ReferenceData, links: AckLinks, clock: Clock | None = None,
                 channels: dict[str, Channel] | None = None) -> faust.App:
    app = create_app(SERVICE, settings)
    codec = AvroCodec(registry_from_url(settings.schema_registry_url), max_record_bytes=settings.max_record_bytes)
    publisher = FaustPublisher(app, codec, settings.topic_prefix)
    table = dict(default=None, partitions=settings.topic_partitions)
    notices = app.Table("notices", **table)         # written on the notice topic's partitions
    deliveries = app.Table("notice-deliveries", **table)
    http = httpx.AsyncClient(timeout=settings.delivery_timeout_seconds)
    calendars = CalendarDirectory(reference)
    hwc = HandleWithCare(
        reference, calendars, notices,
        IdempotentDelivery(channels or build_channels(settings, http), deliveries, settings.delivery_attempts,
                           settings.delivery_backoff_seconds,
                           audit=lambda record: publisher.publish(AUDIT, record.subject_id, record), service=SERVICE),
        links, publisher, clock or SystemClock(),
        EscalationLeads(timedelta(minutes=settings.hwc_backup_lead_minutes),
                        timedelta(minutes=settings.hwc_coordinator_lead_minutes)),
        disclose_agency=settings.hwc_disclose_agency)
    processor = RecordProcessor(codec, DeadLetterSink(publisher, SERVICE), retries=settings.processing_retries,
                                retry_base_seconds=settings.processing_retry_base_seconds)
    consume(app, CAD_CHILD_ENCOUNTERS, settings, processor, hwc.on_encounter, expected=(CadChildEncountered,))
    consume(app, HWC_NOTICES, settings, processor, hwc.on_notice_event,
            expected=(HwcNoticeRequested, HwcNoticeDelivered, HwcNoticeAcknowledged, HwcNoticeEscalated))

    @app.timer(settings.escalation_tick_seconds, on_leader=False)
    async def escalation_tick() -> None:
        await hwc.publish_due_escalations()

    @app.on_before_shutdown.connect
    async def _close_http(_app, **_kw) -> None:
        await http.aclose()

    app.hwc = hwc
    app.processor = processor
    return app
