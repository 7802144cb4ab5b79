"""Operator tasks on the dead-letter topic: list what failed, and re-submit a record (as it was, or
corrected) to the topic it came from."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.core.avro import AvroCodec, registry_from_url
from pydantic import ValidationError

from services.core.errors import describe_validation_error
from services.core.events import CadChildEncountered, CadReferralMade, DeadLetterRecorded, EngagementRecorded
from services.core.kafka import KafkaPublisher, client_options, topic_partition_counts
from services.core.settings import Settings
from services.core.topics import CAD_CHILD_ENCOUNTERS, CAD_REFERRALS, DEAD_LETTER, REFERRALS, by_name


async def read_dead_letters(settings: Settings, limit: int = 100) -> list[DeadLetterRecorded]:
    """The latest ``limit`` dead letters, oldest first."""
    return [letter for _offset, letter in await read_dead_letters_with_offsets(settings, limit)]


async def read_dead_letters_with_offsets(settings: Settings, limit: int = 100) -> list[tuple[int, DeadLetterRecorded]]:
    """(offset on the dead-letter topic, letter) for the latest ``limit`` dead letters, oldest first."""
    topic = DEAD_LETTER.qualified(settings.topic_prefix)
    codec = AvroCodec(registry_from_url(settings.schema_registry_url))
    counts = await topic_partition_counts(settings, [topic])
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(counts[topic])]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, max(0, ends[tp] - limit))
        letters: list[tuple[int, DeadLetterRecorded]] = []
        while await _behind(consumer, partitions, ends):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    letters.append((record.offset, await codec.decode(record.value, (DeadLetterRecorded,))))
        return sorted(letters, key=lambda pair: pair[1].failed_at)[-limit:]
    finally:
        await consumer.stop()
        await codec.registry.close()


async def _behind(consumer, partitions, ends) -> bool:
    for tp in partitions:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


class ResubmitError(ValueError):
    pass


RESUBMITTABLE = {CAD_REFERRALS.name: CadReferralMade, CAD_CHILD_ENCOUNTERS.name: CadChildEncountered,
                 REFERRALS.name: EngagementRecorded}
RESUBMITTED_HEADER = "resubmitted_from"


async def resubmit_dead_letter(settings: Settings, dlq_offset: int, corrected_json: str | None = None) -> str:
    """Publish the dead letter at ``dlq_offset`` back to its original topic with its original key and
    correlation id: its original bytes, or ``corrected_json`` validated as the topic's event type.
    Returns the topic it went to."""
    letters = dict(await read_dead_letters_with_offsets(settings, limit=100_000))
    letter = letters.get(dlq_offset)
    if letter is None:
        raise ResubmitError(f"no dead letter at offset {dlq_offset}")
    spec = by_name(letter.original_topic, settings.topic_prefix)
    codec = AvroCodec(registry_from_url(settings.schema_registry_url))
    if corrected_json is None:
        value = letter.original_value
    else:
        model = RESUBMITTABLE.get(spec.name)
        if model is None:
            raise ResubmitError(f"records of {spec.name} cannot be corrected by hand; re-submit them as they were")
        try:
            value = await codec.encode(model.model_validate_json(corrected_json))
        except ValidationError as exc:
            raise ResubmitError(describe_validation_error(exc)) from None
    headers = [(h.key, h.value) for h in letter.original_headers if h.key != RESUBMITTED_HEADER and h.value is not None]
    headers.append((RESUBMITTED_HEADER, f"{DEAD_LETTER.name}@{dlq_offset}".encode()))
    publisher = KafkaPublisher(settings, codec)
    await publisher.start()
    try:
        await publisher.send_raw(spec, value, key=letter.original_key, headers=headers)
    finally:
        await publisher.stop()
    return spec.qualified(settings.topic_prefix)
