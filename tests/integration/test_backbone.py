"""The event backbone on a real broker and registry: topics, Avro on the wire, dead letters."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer

from services.kernel.cad import CadReferralMade
from services.kernel.topics import CAD_REFERRALS, DEAD_LETTER, all_topics
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.events import DeadLetterRecorded
from services.messaging.kafka import KafkaPublisher, TopicMismatch, client_options, ensure_topics
from services.messaging.streams import WorkerKit
from services.ops import read_dead_letters
from services.platform.logs import CORRELATION_HEADER, correlation_scope
from services.runtime import TOPICS
from tests.conftest import eventually
from tests.factories import cad_referral

pytestmark = pytest.mark.integration


async def read_all(settings, spec, count: int, timeout: float = 30.0) -> list:
    consumer = AIOKafkaConsumer(spec.qualified(settings.topic_prefix), auto_offset_reset="earliest",
                                enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    records = []
    try:
        await eventually(lambda: _drain(consumer, records, count), timeout)
    finally:
        await consumer.stop()
    return records


async def _drain(consumer, records, count) -> bool:
    batch = await consumer.getmany(timeout_ms=200)
    for msgs in batch.values():
        records.extend(msgs)
    return len(records) >= count


async def test_topics_are_created_with_their_partition_counts(kafka_settings) -> None:
    created = await ensure_topics(kafka_settings, TOPICS)
    assert set(created) == {s.qualified(kafka_settings.topic_prefix) for s in all_topics()}
    assert await ensure_topics(kafka_settings, TOPICS) == []  # idempotent
    other = kafka_settings.model_copy(update={"topic_partitions": 3})
    with pytest.raises(TopicMismatch, match="has 2 partitions"):
        await ensure_topics(other, TOPICS)


async def test_avro_event_crosses_the_broker_with_its_correlation_id(kafka_settings) -> None:
    await ensure_topics(kafka_settings, TOPICS)
    codec = AvroCodec(registry_from_url(kafka_settings.schema_registry_url))
    publisher = KafkaPublisher(kafka_settings, codec)
    await publisher.start()
    try:
        with correlation_scope("corr-backbone"):
            await publisher.publish(CAD_REFERRALS, "cad-1001", cad_referral())
    finally:
        await publisher.stop()
    [record] = await read_all(kafka_settings, CAD_REFERRALS, 1)
    assert record.key == b"cad-1001"
    assert dict(record.headers)[CORRELATION_HEADER] == b"corr-backbone"
    assert record.value[0] == 0  # Confluent framing
    # A fresh codec resolves the writer schema from the registry by id.
    fresh = AvroCodec(registry_from_url(kafka_settings.schema_registry_url))
    assert await fresh.decode(record.value) == cad_referral()


async def test_worker_dead_letters_malformed_records_and_keeps_flowing(kafka_settings) -> None:
    await ensure_topics(kafka_settings, TOPICS)
    codec = AvroCodec(registry_from_url(kafka_settings.schema_registry_url))
    kit = WorkerKit.create("backbone-test", kafka_settings)
    app, processor = kit.app, kit.processor
    handled: list[CadReferralMade] = []

    async def handler(event: CadReferralMade) -> None:
        handled.append(event)

    kit.consume(CAD_REFERRALS, handler, (CadReferralMade,))
    producer = KafkaPublisher(kafka_settings, codec)
    await producer.start()
    await app.start()
    try:
        await producer.publish(CAD_REFERRALS, "cad-1", cad_referral("cad-1"))
        await producer.send_raw(CAD_REFERRALS, b"\x7b\x22not avro", key=b"cad-bad", headers=[(CORRELATION_HEADER, b"corr-bad")])
        await producer.send_raw(CAD_REFERRALS, b"\x00\x00\x00\x00\x01\xff", key=b"cad-trunc")  # right framing, bad body
        await producer.publish(CAD_REFERRALS, "cad-2", cad_referral("cad-2"))
        await eventually(lambda: len(handled) == 2)
        assert sorted(e.cad_event_id for e in handled) == ["cad-1", "cad-2"]

        dead = await read_all(kafka_settings, DEAD_LETTER, 2)
        letters = {r.key: await codec.decode(r.value, (DeadLetterRecorded,)) for r in dead}
        bad = letters[b"cad-bad"]
        assert bad.sealed_under and b"not avro" not in bad.original_value  # on the broker: sealed, its own key
        [opened] = [letter for letter in await read_dead_letters(kafka_settings) if letter.original_key == b"cad-bad"]
        assert opened.original_value == b"\x7b\x22not avro"
        assert bad.original_topic == CAD_REFERRALS.qualified(kafka_settings.topic_prefix)
        assert bad.error_type == "decode" and "magic byte" in bad.error
        assert bad.correlation_id == "corr-bad"
        assert letters[b"cad-trunc"].error_type == "decode"
        assert processor.processed == 2 and processor.dead_letters.count == 2
        listed = await read_dead_letters(kafka_settings)  # what `handoff dlq list` shows
        assert sorted(d.original_value for d in listed) == sorted([b"\x7b\x22not avro", b"\x00\x00\x00\x00\x01\xff"])
    finally:
        await app.stop()
        await producer.stop()


async def test_operator_resubmits_a_corrected_dead_letter(kafka_settings) -> None:
    import json

    from services.kernel.errors import Rejected
    from services.ops import ResubmitError, read_dead_letters_with_offsets, resubmit_dead_letter

    await ensure_topics(kafka_settings, TOPICS)
    codec = AvroCodec(registry_from_url(kafka_settings.schema_registry_url))
    kit = WorkerKit.create("resubmit-test", kafka_settings)
    app, processor = kit.app, kit.processor
    handled: list[CadReferralMade] = []

    async def handler(event: CadReferralMade) -> None:
        if event.site_id == "nowhere":
            raise Rejected("site_id", "unknown site 'nowhere'")
        handled.append(event)

    kit.consume(CAD_REFERRALS, handler, (CadReferralMade,))
    producer = KafkaPublisher(kafka_settings, codec)
    await producer.start()
    await app.start()
    try:
        with correlation_scope("corr-typo"):
            await producer.publish(CAD_REFERRALS, "cad-typo", cad_referral("cad-typo", site_id="nowhere"))
        await eventually(lambda: processor.dead_letters.count == 1)
        [(dlq_offset, letter)] = await read_dead_letters_with_offsets(kafka_settings)
        assert letter.error == "site_id: unknown site 'nowhere'"

        bad_fix = cad_referral("cad-typo").model_dump(mode="json") | {"site_id": ""}
        with pytest.raises(ResubmitError, match="site_id"):
            await resubmit_dead_letter(kafka_settings, dlq_offset, json.dumps(bad_fix))
        fixed = cad_referral("cad-typo").model_dump(mode="json")
        await resubmit_dead_letter(kafka_settings, dlq_offset, json.dumps(fixed))
        [event] = await eventually(lambda: handled)
        assert event.site_id == "abq" and event.cad_event_id == "cad-typo"
        records = await read_all(kafka_settings, CAD_REFERRALS, 2)
        again = dict(records[-1].headers)
        assert records[-1].key == b"cad-typo" and again[CORRELATION_HEADER] == b"corr-typo"
        assert again["resubmitted_from"] == f"{DEAD_LETTER.name}@{dlq_offset}".encode()
    finally:
        await app.stop()
        await producer.stop()
