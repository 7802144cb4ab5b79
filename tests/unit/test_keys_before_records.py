"""A record sealed under a new key is handed to the producer only once that key is on the broker, without holding
up the handler that wrote it (services/messaging/kafka.py ``hand_to_producer``, subject_keys.py ``landing``).

The producer sends each partition on its own: a key's batch can wait behind an earlier one on the key topic while
the record's goes at once. A worker killed between the two left a record no reader could open, dead-lettered as
"key unknown" after the restart (seen in tests/e2e/test_worker_crash.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.kernel.topics import SUBJECT_KEYS, TopicSpec
from services.messaging.kafka import hand_to_producer
from services.messaging.records import sends_awaited_together
from services.messaging.subject_keys import SubjectKeys
from services.platform.crypto import key_provider
from services.platform.settings import Settings


class Producer:
    """Enqueues records in the order handed over; each acknowledgement is a future the test may hold."""

    def __init__(self) -> None:
        self.handed: list[str] = []
        self.acks: dict[str, asyncio.Future[None]] = {}

    def send(self, name: str, acknowledged: bool = True):
        async def enqueue() -> asyncio.Future[None]:
            self.handed.append(name)
            ack = asyncio.get_running_loop().create_future()
            if acknowledged:
                ack.set_result(None)
            self.acks[name] = ack
            return ack
        return enqueue


async def test_a_record_waits_for_its_key_and_the_handlers_later_sends_queue_behind_it() -> None:
    producer = Producer()
    key_written = asyncio.get_running_loop().create_future()
    sends: list[Any] = []
    async with sends_awaited_together(handing_on_to=sends):
        await hand_to_producer(producer.send("unsealed-first"), after=None)
        await hand_to_producer(producer.send("sealed"), after=key_written)
        await hand_to_producer(producer.send("after-sealed"), after=None)
    # The handler is done; nothing sealed (nor anything after it) went ahead of the key.
    assert producer.handed == ["unsealed-first"]
    assert len(sends) == 3
    key_written.set_result(None)
    await asyncio.gather(*sends)
    assert producer.handed == ["unsealed-first", "sealed", "after-sealed"]


async def test_a_send_waiting_for_its_key_is_acknowledged_only_once_written() -> None:
    producer = Producer()
    key_written = asyncio.get_running_loop().create_future()
    sends: list[Any] = []
    async with sends_awaited_together(handing_on_to=sends):
        await hand_to_producer(producer.send("sealed", acknowledged=False), after=key_written)
    key_written.set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert producer.handed == ["sealed"]
    assert not sends[0].done()  # handed over, not yet on the broker: the record is not acknowledged
    producer.acks["sealed"].set_result(None)
    await asyncio.gather(*sends)


async def test_a_key_that_cannot_be_written_fails_the_record_sealed_under_it() -> None:
    producer = Producer()
    key_written = asyncio.get_running_loop().create_future()
    sends: list[Any] = []
    async with sends_awaited_together(handing_on_to=sends):
        await hand_to_producer(producer.send("sealed"), after=key_written)
    key_written.set_exception(ConnectionError("broker away"))
    with pytest.raises(ConnectionError):
        await asyncio.gather(*sends)
    assert producer.handed == []


async def test_outside_a_handled_record_the_key_is_awaited_then_the_record() -> None:
    producer = Producer()
    key_written = asyncio.get_running_loop().create_future()
    sending = asyncio.create_task(hand_to_producer(producer.send("timer's record"), after=key_written))
    await asyncio.sleep(0.01)
    assert producer.handed == [] and not sending.done()
    key_written.set_result(None)
    await sending
    assert producer.handed == ["timer's record"]


class KeyTopic:
    """The key topic behind a publisher: each write waits until the test lets it land."""

    def __init__(self) -> None:
        self.lands = asyncio.Event()
        self.written: list[str] = []

    async def publish(self, topic: TopicSpec, key: str, event: Any) -> None:
        assert topic == SUBJECT_KEYS
        await self.lands.wait()
        self.written.append(key)


async def test_a_new_subjects_key_is_landing_until_it_is_on_the_broker(tmp_path) -> None:
    keys = SubjectKeys(Settings(schema_registry_url="memory://", data_dir=tmp_path), key_provider(
        Settings(data_dir=tmp_path)))
    topic = KeyTopic()
    keys.writes_with(topic)
    sends: list[Any] = []
    async with sends_awaited_together(handing_on_to=sends):
        issued = keys.issue_now("REF-1", "lead_referral")  # a table's write, or a record's seal, while handled
    landing = keys.landing("REF-1")
    assert landing is not None and keys.landing("REF-2") is None
    assert keys.issue_now("REF-1", "lead_referral").key_id == issued.key_id  # one key, one write
    topic.lands.set()
    await asyncio.gather(*sends)
    assert topic.written == [f"REF-1/{issued.key_id}"]
    assert keys.landing("REF-1") is None  # on the broker: what is sealed under it goes at once
