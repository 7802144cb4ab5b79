"""A record an outside producer put on another partition than its key's is moved to its key's partition once, and
handled there: deduplication by key then holds whichever client (and partitioner) wrote it."""

from __future__ import annotations

import zlib

from aiokafka.partitioner import murmur2

from services.kernel.topics import CAD_REFERRALS
from services.messaging.outbox import source_partition
from services.messaging.records import handled_headers
from services.messaging.sealing import handled_subject
from services.messaging.streams import MOVED_HEADER, key_partition, on_its_keys_partition

PARTITIONS = 4


class Published:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object, list]] = []

    async def publish(self, topic, key, event, headers=None) -> None:
        self.sent.append((topic.name, key, event, headers))


def a_key_the_clients_disagree_on() -> str:
    """A CAD event id that librdkafka's default (CRC32) and Java's (murmur2) put on different partitions."""
    return next(k for k in (f"CAD-{i}" for i in range(100))
                if zlib.crc32(k.encode()) % PARTITIONS != key_partition(k, PARTITIONS))


def test_handoffs_partition_of_a_key_is_the_java_clients_murmur2() -> None:
    for key in ("CAD-1", "CAD-2026-000123", "überweg"):
        assert key_partition(key, PARTITIONS) == (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


async def handled_on(partition: int, key: str, headers=()) -> tuple[list, Published]:
    handled: list = []
    published = Published()

    async def handler(event) -> None:
        handled.append(event)

    tokens = (source_partition.set(partition), handled_subject.set(key), handled_headers.set(list(headers)))
    try:
        await on_its_keys_partition(CAD_REFERRALS, handler, published, PARTITIONS)("the event")
    finally:
        handled_headers.reset(tokens[2])
        handled_subject.reset(tokens[1])
        source_partition.reset(tokens[0])
    return handled, published


async def test_a_record_on_its_keys_partition_is_handled_there_and_nothing_is_written() -> None:
    key = a_key_the_clients_disagree_on()
    handled, published = await handled_on(key_partition(key, PARTITIONS), key)
    assert handled == ["the event"] and published.sent == []


async def test_a_record_a_crc32_client_put_elsewhere_is_moved_to_its_keys_partition_not_handled_twice() -> None:
    key = a_key_the_clients_disagree_on()
    crc32_partition = zlib.crc32(key.encode()) % PARTITIONS
    handled, published = await handled_on(crc32_partition, key)
    assert handled == []  # handled where the key's other copies are, after the move
    assert published.sent == [("handoff.cad.referrals", key, "the event",
                               [(MOVED_HEADER, str(crc32_partition).encode())])]


async def test_a_moved_record_is_never_moved_again() -> None:
    """Should the topic's partition count and Handoff's disagree, a moved record lands where the producer puts it
    and is handled there, rather than moved for ever."""
    key = a_key_the_clients_disagree_on()
    handled, published = await handled_on(zlib.crc32(key.encode()) % PARTITIONS, key, [(MOVED_HEADER, b"1")])
    assert handled == ["the event"] and published.sent == []
