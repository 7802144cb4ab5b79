"""Poison records on the real broker: a record too large to copy into a dead letter, and a dead
letter the broker keeps refusing, are dead-lettered reduced, for every consumer of every service,
and the partitions behind them keep flowing."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.handle_with_care.topics import HWC_NOTICES
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_REFERRALS, DEAD_LETTER, PAGES, REFERRALS
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher, ensure_topics
from services.ops import original_value, read_dead_letters
from tests.conftest import eventually
from tests.factories import cad_child, cad_referral

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))
# Every topic a worker consumes, and which workers consume it.
CONSUMERS = ((CAD_REFERRALS, 1), (CAD_CHILD_ENCOUNTERS, 1), (REFERRALS, 2), (PAGES, 2), (HWC_NOTICES, 1))


async def send_raw(settings, topic, value: bytes, key: bytes) -> None:
    producer = KafkaPublisher(settings, AvroCodec(registry_from_url(settings.schema_registry_url)))
    await producer.start()
    try:
        await producer.send_raw(topic, value, key=key)
    finally:
        await producer.stop()


async def valid_events_get_through(system, tag: str, encounter: bool = True) -> None:
    """A valid referral still pages (and a valid encounter still notifies) behind the bad record."""
    codec = AvroCodec(registry_from_url(system.settings.schema_registry_url))
    producer = KafkaPublisher(system.settings, codec)
    await producer.start()
    try:
        await producer.publish(CAD_REFERRALS, f"CAD-{tag}", cad_referral(f"CAD-{tag}", occurred_at=NOW))
        if encounter:
            await producer.publish(CAD_CHILD_ENCOUNTERS, f"CAD-C-{tag}", cad_child(f"CAD-C-{tag}", encountered_at=NOW))
    finally:
        await producer.stop()
    await eventually(lambda: system.messages("sms"), timeout=60)  # the page
    if encounter:
        await eventually(lambda: [m for m in system.messages("email") if "Handle With Care" in m.subject], timeout=60)


async def test_a_record_too_large_to_dead_letter_whole_stalls_no_consumer(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", "handle-with-care", now=NOW)
    system.expect_dead_letters = True
    # About 1 MB: the broker takes it (max.message.bytes), but a dead letter wrapping it would not fit.
    huge = b"\x00\x00\x00\x00\x01" + b"n" * 1_000_000
    for topic, _consumers in CONSUMERS:
        await send_raw(system.settings, topic, huge, key=b"poison")

    await valid_events_get_through(system, "AFTER-POISON")
    letters = await eventually(lambda: _letters_when(system, sum(n for _topic, n in CONSUMERS)), timeout=60)
    assert Counter(letter.original_topic.removeprefix(system.settings.topic_prefix) for letter in letters) == {
        topic.name: n for topic, n in CONSUMERS}
    for letter in letters:
        assert letter.original_truncated and letter.original_size == len(huge)
        assert letter.original_sha256 == hashlib.sha256(huge).hexdigest()
        assert letter.original_value == huge[:1024]
        assert "exceeds the limit" in letter.error
    # An operator still gets the whole record, from its own topic, by offset.
    assert await original_value(system.settings, letters[0]) == huge


async def test_a_dead_letter_the_broker_refuses_is_written_reduced(system_factory, kafka_settings) -> None:
    # A dead-letter topic that takes only small records: every whole letter is refused by the broker.
    await ensure_topics(kafka_settings, (replace(DEAD_LETTER, config={"max.message.bytes": "4096"}),))
    system = await system_factory("referral-intake", "notifier", now=NOW)
    system.expect_dead_letters = True
    record = b"\x00\x00\x00\x00\x07" + b"z" * 20_000
    await send_raw(system.settings, CAD_REFERRALS, record, key=b"refused")

    await valid_events_get_through(system, "AFTER-REFUSED", encounter=False)
    [letter] = await eventually(lambda: _letters_when(system, 1), timeout=60)
    assert letter.original_truncated and letter.original_size == len(record)
    assert letter.original_value == record[:1024]
    assert system.apps["referral-intake"].processor.dead_letters.reduced == 1


async def _letters_when(system, n: int):
    letters = await read_dead_letters(system.settings, limit=1000)
    return letters if len(letters) >= n else None
