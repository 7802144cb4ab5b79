"""The audit trail an agency's auditor asks for (CJIS 5.4.1.1): ``handoff audit export --from --to`` reads the
audit topic and writes, as CSV, each sign-in, refusal, sign-out, expiry and disclosure in the period, with when,
component, event, user, outcome, reason and where from; nothing outside the period, and no personal data."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from services.cli import cli
from services.kernel.events import (
    DeliveryOutcome,
    DisclosureChannel,
)
from services.kernel.topics import AUDIT
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.events import DisclosedRecord, DisclosureAudited
from services.messaging.kafka import KafkaPublisher, ensure_topics
from services.runtime import TOPICS
from services.web.events import AccessAudited, AccessEvent
from tests.conftest import broker_env

pytestmark = pytest.mark.integration
DAY = datetime(2026, 11, 20, tzinfo=UTC)


def door(event: AccessEvent, at: datetime, user: str | None, success: bool, reason: str | None = None) -> AccessAudited:
    return AccessAudited(audit_id=f"{event.value}-{at.isoformat()}", event_type=event, component="console",
                         user_id=user, user_kind="staff" if user else None, success=success, reason=reason,
                         client_address="127.0.0.1", occurred_at=at)


def test_the_period_asked_for_is_exported_whole_and_nothing_else(kafka_settings) -> None:
    shown = DisclosureAudited(audit_id="d-1", record_kind=DisclosedRecord.lead_identity, subject_id="r-1",
                              recipient_id="cm-ana", recipient_role="case_manager", channel=DisclosureChannel.console,
                              outcome=DeliveryOutcome.delivered, attempt=1, service="api",
                              disclosed_at=DAY + timedelta(hours=9, minutes=5))
    records = [door(AccessEvent.sign_in_refused, DAY - timedelta(minutes=1), None, False, "access code not valid"),
               door(AccessEvent.signed_in, DAY + timedelta(hours=9), "cm-ana", True), shown,
               door(AccessEvent.session_expired, DAY + timedelta(hours=9, minutes=30), "cm-ana", False, "idle"),
               door(AccessEvent.signed_in, DAY + timedelta(days=1), "pm-abq", True)]

    async def write() -> None:
        await ensure_topics(kafka_settings, TOPICS)
        publisher = KafkaPublisher(kafka_settings, AvroCodec(registry_from_url(kafka_settings.schema_registry_url)))
        await publisher.start()
        try:
            for record in records:
                await publisher.publish(AUDIT, "k", record)
        finally:
            await publisher.stop()

    asyncio.run(write())
    env = {**broker_env(kafka_settings),
           "HANDOFF_SCHEMA_REGISTRY_URL": kafka_settings.schema_registry_url,
           "HANDOFF_TOPIC_PREFIX": kafka_settings.topic_prefix}
    result = CliRunner().invoke(cli, ["audit", "export", "--from", "2026-11-20", "--to", "2026-11-21"], env=env)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["event"], r["user"], r["outcome"], r["reason"]) for r in rows] == [
        ("signed_in", "cm-ana", "success", ""), ("disclosure", "cm-ana", "delivered", "console"),
        ("session_expired", "cm-ana", "failure", "idle")]
    assert rows[0]["when"] == "2026-11-20T09:00:00+00:00" and rows[0]["component"] == "console"
    assert rows[0]["where_from"] == "127.0.0.1" and rows[1]["record"] == "lead_identity" and rows[1]["subject"] == "r-1"
    backwards = CliRunner().invoke(cli, ["audit", "export", "--from", "2026-11-21", "--to", "2026-11-20"], env=env)
    assert backwards.exit_code == 2
