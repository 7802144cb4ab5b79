"""Operator tasks that read topics: the dead-letter listing (and, later, re-submission)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.core.avro import AvroCodec, registry_from_url
from services.core.events import DeadLetterRecorded
from services.core.kafka import client_options, topic_partition_counts
from services.core.settings import Settings
from services.core.topics import DEAD_LETTER


async def read_dead_letters(settings: Settings, limit: int = 100) -> list[DeadLetterRecorded]:
    """The latest ``limit`` dead letters, oldest first."""
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
        letters: list[DeadLetterRecorded] = []
        while await _behind(consumer, partitions, ends):
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    letters.append(await codec.decode(record.value, (DeadLetterRecorded,)))
        return sorted(letters, key=lambda d: d.failed_at)[-limit:]
    finally:
        await consumer.stop()
        await codec.registry.close()


async def _behind(consumer, partitions, ends) -> bool:
    for tp in partitions:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False
