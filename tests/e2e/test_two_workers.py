"""Two notifier workers in one consumer group: one stops mid-stream, the other takes its partitions,
and every page and every escalation still reaches its receiver exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.kernel.topics import CAD_REFERRALS
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher, ensure_topics
from services.ops import read_dead_letters
from services.runtime import TOPICS
from tests.conftest import eventually
from tests.factories import cad_referral

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

REFERRALS = 120


def sms_by_step(system, step: str) -> Counter:
    return Counter(m.idempotency_key.split("/")[0] for m in system.inbox.inbox.of("sms")
                   if m.idempotency_key and f"/0/{step}/" in m.idempotency_key)


async def test_second_worker_takes_over_and_timers_fire_once(process_system, kafka_settings) -> None:
    system = process_system
    # Escalation in seconds, so that the timers can be watched firing.
    sites = system.reference / "sites.toml"
    sites.write_text(sites.read_text().replace("escalate_after_minutes = 60", "escalate_after_minutes = 0.1", 1)
                     .replace("escalate_after_minutes = 10", "escalate_after_minutes = 60").replace("loops = 2", "loops = 1"))
    system.env["HANDOFF_ESCALATION_TICK_SECONDS"] = "0.2"
    await ensure_topics(kafka_settings, TOPICS)
    system.start("referral-intake")
    system.start("notifier", "notifier-a")
    system.start("notifier", "notifier-b")
    await eventually(lambda: all(system.ready(n) for n in ("referral-intake", "notifier-a", "notifier-b")),
                     timeout=90, interval=0.2)
    await asyncio.sleep(3)  # let the two notifiers settle their partition assignment
    producer = KafkaPublisher(kafka_settings, AvroCodec(registry_from_url(kafka_settings.schema_registry_url)))
    await producer.start()
    try:
        now = datetime.now(ZoneInfo("America/Denver"))
        for i in range(REFERRALS):
            await producer.publish(CAD_REFERRALS, f"CAD-2W-{i}", cad_referral(f"CAD-2W-{i}", occurred_at=now))
            if i == REFERRALS // 2:
                system.kill("notifier-a", signal.SIGTERM)  # a clean stop, as in a rolling deploy
    finally:
        await producer.stop()

    # Every referral: its first page, and (nobody acknowledges) its escalation to step 2 after 6 s.
    try:
        await eventually(lambda: len(sms_by_step(system, "0")) == REFERRALS
                         and len(sms_by_step(system, "1")) == REFERRALS, timeout=120, interval=1)
    finally:
        print("pages by step:", len(sms_by_step(system, "0")), len(sms_by_step(system, "1")))
    await asyncio.sleep(5)
    assert set(sms_by_step(system, "0").values()) == {1}
    assert set(sms_by_step(system, "1").values()) == {1}
    assert await read_dead_letters(kafka_settings) == []
    print(f"receivers dropped {len(system.inbox.inbox.duplicates)} repeated sends by idempotency key")
