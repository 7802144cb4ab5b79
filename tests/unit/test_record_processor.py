"""Nothing is dropped: every record is handled or dead-lettered with its reason and original bytes."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from services.kernel.cad import CadReferralMade
from services.kernel.errors import Rejected
from services.kernel.topics import REFERRALS
from services.messaging.avro import AvroCodec, InMemorySchemaRegistry
from services.messaging.events import DeadLetterRecorded
from services.messaging.kafka import InMemoryPublisher
from services.messaging.records import DeadLetterSink, RawRecord, RecordProcessor
from services.platform.logs import CORRELATION_HEADER
from tests.factories import cad_referral
from tests.fakes import HeldProducer, faust_publisher


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
def processor(publisher) -> RecordProcessor:
    return RecordProcessor(AvroCodec(InMemorySchemaRegistry()), DeadLetterSink(publisher, "unit"), retries=2,
                           retry_base_seconds=0.001)


def raw(value: bytes | None, offset: int = 7, headers=None) -> RawRecord:
    return RawRecord("handoff.cad.referrals", 0, offset, b"k", value, headers or [])


async def test_valid_record_reaches_handler_with_its_correlation_id(processor, publisher) -> None:
    from services.platform.logs import current_correlation_id

    seen = []

    async def handler(event):
        seen.append((event, current_correlation_id()))

    data = await processor.codec.encode(cad_referral())
    assert await processor.process(raw(data, headers=[(CORRELATION_HEADER, b"c-9")]), handler) is True
    assert seen == [(cad_referral(), "c-9")]
    assert publisher.records == []


async def test_a_cads_own_record_without_a_header_takes_its_incidents_correlation_id(processor) -> None:
    from services.platform.logs import current_correlation_id, incident_correlation_id

    seen = []

    async def handler(event):
        seen.append(current_correlation_id())

    await processor.process(raw(await processor.codec.encode(cad_referral(incident_id="INC-5"))), handler)
    await processor.process(raw(await processor.codec.encode(cad_referral(incident_id="INC-5")),
                                headers=[(CORRELATION_HEADER, b"c-given")]), handler)
    await processor.process(raw(await processor.codec.encode(cad_referral())), handler)
    assert seen[:2] == [incident_correlation_id("apd", "INC-5"), "c-given"]  # a header given is kept
    assert len(seen[2]) == 32 and seen[2] != seen[0]  # no incident: a new id


async def test_malformed_bytes_are_dead_lettered_with_original_bytes(processor, publisher) -> None:
    async def handler(event):
        raise AssertionError("must not be called")

    assert await processor.process(raw(b"\xde\xad\xbe\xef", offset=11), handler) is False
    [dead] = publisher.events(DeadLetterRecorded)
    assert dead.original_value == b"\xde\xad\xbe\xef"
    assert (dead.original_topic, dead.partition, dead.offset) == ("handoff.cad.referrals", 0, 11)
    assert dead.error_type == "decode" and "magic byte" in dead.error
    assert dead.service == "unit"


async def test_a_record_read_again_is_dead_lettered_once(processor, publisher) -> None:
    """A rebalance before its offset was committed, or a gap recovered, hands the worker a record again: a
    dead letter is a side effect, written once per record."""
    async def handler(event):
        raise AssertionError("must not be called")

    for _ in range(2):
        assert await processor.process(raw(b"\xde\xad", offset=12), handler) is False
    assert await processor.process(raw(b"\xde\xad", offset=13), handler) is False  # another record: lettered
    assert [d.offset for d in publisher.events(DeadLetterRecorded)] == [12, 13]
    assert processor.dead_letters.lettered_again == 1


async def test_transient_failure_is_retried_then_succeeds(processor, publisher) -> None:
    calls = []

    async def flaky(event):
        calls.append(event)
        if len(calls) < 2:
            raise ConnectionError("receiver briefly down")

    assert await processor.process(raw(await processor.codec.encode(cad_referral())), flaky) is True
    assert len(calls) == 2
    assert publisher.records == []


async def test_persistent_failure_is_dead_lettered_after_retries(processor, publisher) -> None:
    calls = []

    async def broken(event):
        calls.append(event)
        raise RuntimeError("Zebulon Featherstonehaugh broke it")  # a message that quotes personal data

    assert await processor.process(raw(await processor.codec.encode(cad_referral())), broken) is False
    assert len(calls) == 3
    [dead] = publisher.events(DeadLetterRecorded)
    assert dead.error_type == "processing"
    assert dead.error == "RuntimeError after 3 attempts"


async def test_domain_rejection_is_dead_lettered_without_retries(processor, publisher) -> None:
    calls = []

    async def refuse(event: CadReferralMade):
        calls.append(event)
        raise Rejected("site_id", "site 'abq' does not accept community referrals")

    assert await processor.process(raw(await processor.codec.encode(cad_referral())), refuse) is False
    assert len(calls) == 1
    [dead] = publisher.events(DeadLetterRecorded)
    assert dead.error_type == "rejected" and "site_id" in dead.error


async def test_dead_letter_write_is_retried_until_it_succeeds(processor, publisher) -> None:
    failures = [ConnectionError("broker down"), ConnectionError("broker down")]
    real_publish = publisher.publish

    async def flaky_publish(topic, key, event):
        if failures:
            raise failures.pop()
        await real_publish(topic, key, event)

    publisher.publish = flaky_publish
    processor.dead_letters.max_wait_seconds = 0.01
    assert await processor.process(raw(b"junk"), lambda e: None) is False
    assert len(publisher.events(DeadLetterRecorded)) == 1


class SizeLimitedPublisher(InMemoryPublisher):
    """Refuses records larger than the broker would take, as Kafka does (MessageSizeTooLarge)."""

    def __init__(self, codec: AvroCodec, max_bytes: int) -> None:
        super().__init__()
        self.codec, self.max_bytes, self.refused = codec, max_bytes, 0

    async def publish(self, topic, key, event) -> None:
        if len(await self.codec.encode(event)) > self.max_bytes:
            self.refused += 1
            raise MessageSizeTooLargeError("the record is larger than the broker accepts")
        await super().publish(topic, key, event)


async def test_a_record_too_large_to_copy_is_dead_lettered_reduced_and_the_partition_moves_on() -> None:
    codec = AvroCodec(InMemorySchemaRegistry())
    publisher = SizeLimitedPublisher(codec, 1_048_576)
    processor = RecordProcessor(codec, DeadLetterSink(publisher, "unit", max_value_bytes=512 * 1024,
                                                      retry_base_seconds=0.001), retry_base_seconds=0.001)
    huge = b"\x00\x00\x00\x00\x01" + b"n" * 1_000_000  # a million-character narrative, as a CAD system sent it

    assert await processor.process(raw(huge, offset=99), lambda e: None) is False
    [dead] = publisher.events(DeadLetterRecorded)
    assert dead.original_truncated and dead.original_size == len(huge)
    assert dead.original_sha256 == hashlib.sha256(huge).hexdigest()
    assert dead.original_value == huge[:1024]
    assert (dead.original_topic, dead.partition, dead.offset) == ("handoff.cad.referrals", 0, 99)
    assert "exceeds the limit" in dead.error
    assert publisher.refused == 0  # it was never tried whole: it could not fit


@pytest.mark.parametrize("broker_limit, refusals, prefix", [(1600, 3, 1024), (300, 6, 0)])
async def test_a_dead_letter_whose_write_keeps_failing_is_written_reduced(broker_limit, refusals, prefix) -> None:
    codec = AvroCodec(InMemorySchemaRegistry())
    publisher = SizeLimitedPublisher(codec, broker_limit)  # refuses every letter that carries the whole record
    sink = DeadLetterSink(publisher, "unit", max_wait_seconds=0.001, retry_base_seconds=0.001, full_attempts=3)
    processor = RecordProcessor(codec, sink, retry_base_seconds=0.001)
    record = b"\x00\x00\x00\x00\x09" + b"z" * 2000

    assert await processor.process(raw(record), lambda e: None) is False
    assert publisher.refused == refusals
    [dead] = publisher.events(DeadLetterRecorded)
    assert dead.original_truncated and dead.original_size == len(record)
    assert (dead.original_value or b"") == record[:prefix]
    assert sink.count == sink.reduced == 1
    assert processor.counts[("handoff.cad.referrals", "dead_lettered")] == 1


async def test_a_records_events_are_sent_together_and_all_written_before_it_is_done(processor) -> None:
    producer = HeldProducer()
    publisher = faust_publisher(producer)

    async def handler(event):
        for n in range(3):
            await publisher.publish(REFERRALS, f"r-{n}", event)

    data = await processor.codec.encode(cad_referral())
    done = asyncio.ensure_future(processor.process(raw(data), handler))
    while len(producer.sent) < 3:
        await asyncio.sleep(0)
    assert [key for _, key in producer.sent] == [b"r-0", b"r-1", b"r-2"]  # in order, none waited for
    for _ in range(5):
        await asyncio.sleep(0)
    assert not done.done()  # the record is not done while a send is unwritten
    for future in producer.futures:
        future.set_result(None)
    assert await done is True


async def test_a_failed_send_fails_the_record_as_an_awaited_one_did(processor, publisher) -> None:
    producer = HeldProducer()
    faust = faust_publisher(producer)

    async def handler(event):
        await faust.publish(REFERRALS, "r-1", event)
        producer.futures[-1].set_exception(MessageSizeTooLargeError())

    data = await processor.codec.encode(cad_referral())
    assert await processor.process(raw(data), handler) is False  # retried, then dead-lettered
    assert len(producer.sent) == 3 and publisher.events(DeadLetterRecorded)[0].error_type == "processing"


async def test_outside_a_record_each_send_is_awaited_before_the_next() -> None:
    producer = HeldProducer()
    publisher = faust_publisher(producer)
    first = asyncio.ensure_future(publisher.publish(REFERRALS, "r-1", cad_referral()))
    while not producer.futures:
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not first.done()  # a timer's publish waits for its send
    producer.futures[0].set_result(None)
    await first


async def test_a_records_sends_can_be_handed_on_unawaited_and_still_fail_it_later(processor) -> None:
    producer = HeldProducer()
    publisher = faust_publisher(producer)

    async def handler(event):
        await publisher.publish(REFERRALS, "r-1", event)

    sends: list = []
    data = await processor.codec.encode(cad_referral())
    assert await processor.process(raw(data), handler, sends=sends) is True  # done before the write landed
    assert sends == producer.futures and not sends[0].done()
    producer.futures[0].set_exception(MessageSizeTooLargeError())
    with pytest.raises(MessageSizeTooLargeError):  # the caller sees the failure (RecordsInFlight redoes it)
        await asyncio.gather(*sends)


async def test_a_dead_letters_original_bytes_are_sealed_under_a_key_of_its_own(publisher, tmp_path) -> None:
    """A CAD record arrives in plain text; its dead letter holds it sealed, and the letter's own key (wrapped) is on the
    dead-letter key topic, which is kept no longer than the letters."""
    from services.kernel.topics import DEAD_LETTER, DEAD_LETTER_KEYS
    from services.messaging.events import SubjectKeyIssued
    from services.messaging.subject_keys import LetterSealer, letter_subject
    from services.platform.crypto import LocalKeyProvider, WrappedKey, binding, open_sealed

    provider = LocalKeyProvider(tmp_path / "keys")
    sink = DeadLetterSink(publisher, "unit", sealer=LetterSealer(publisher, provider))
    plain = b"\x00\x00\x00\x00\x01 Dana Whitfield, 1990-04-02"
    await sink.record(raw(plain, offset=9), "decode", "not Avro", None)

    [letter] = publisher.events(DeadLetterRecorded)
    [issued] = publisher.events(SubjectKeyIssued)
    assert b"Dana" not in letter.original_value and letter.sealed_under == issued.key_id
    assert [r.topic for r in publisher.records] == [DEAD_LETTER_KEYS.name, DEAD_LETTER.name]
    assert DEAD_LETTER_KEYS.child_data and issued.covers == "dead_letter"
    subject = letter_subject("handoff.cad.referrals", 0, 9)
    key = provider.unwrap(WrappedKey(issued.kek_id, issued.wrapped_key), issued.key_id)
    assert open_sealed(key, letter.original_value, binding(DEAD_LETTER.name, "original_value", subject)) == plain
