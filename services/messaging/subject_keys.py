"""Every subject's data key, kept wrapped on the compacted key topic (``handoff.ops.subject-keys``) that every
worker follows, opened through the ``KeyProvider`` on first use and held in memory a short while (so opening
a value costs no broker round trip, and a destroyed key leaves memory within that while everywhere).

A subject may have more than one key (two workers issuing at once, or a new one after an old one's end):
each is its own entry, ``subject/key_id``, and every sealed value names its key. Erasure destroys them all,
and writes its receipt to the audit topic.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_never, wait_exponential

from services.kernel.topics import AUDIT, DEAD_LETTER, DEAD_LETTER_KEYS, SUBJECT_KEYS, TopicSpec
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.events import (
    DeadLetterRecorded,
    ErasureReason,
    ErasureReceipted,
    SubjectKeyDestroyed,
    SubjectKeyIssued,
)
from services.messaging.kafka import KafkaPublisher, Publisher, TopicFollower, sends_in_flight
from services.messaging.sealing import Sealer, handled_subject
from services.platform.crypto import (
    KeyProvider,
    KeyUnavailable,
    SealBroken,
    WrappedKey,
    binding,
    key_provider,
    new_data_key,
    open_sealed,
    seal,
)
from services.platform.logs import get_logger
from services.platform.settings import Settings

log = get_logger(__name__)

KeyRecord = SubjectKeyIssued | SubjectKeyDestroyed
BACKGROUND_WRITES_SECONDS = 10.0  # how long stopping waits for keys and erasures still being written
KEY_ON_ITS_WAY_SECONDS = 1.0  # how long a record looks for its key before it is taken as unknown
REFRESH_SECONDS = 1.0  # how often the key topic is read when nothing asks: erasures elsewhere reach this process
OPENED_HELD = 10_000  # opened keys held at most: past it the expired ones go, then the oldest (each is 32 bytes)


@dataclass(frozen=True, slots=True)
class LiveKey:
    """A live key as this process holds it, for as long as the key lives: every process holds every subject's, so a
    backlog of 100,000 encounters holds 100,000 or more. As the ``SubjectKeyIssued`` it came in, one took 1.6 KB with its
    ids, as this 0.6 KB (tracemalloc, 10,000 of them); a backlog's worker had peaked at 656 MiB."""

    covers: str
    kek_id: str
    wrapped_key: bytes
    issued_at: datetime
    part_of: str | None

    @classmethod
    def of(cls, record: SubjectKeyIssued) -> LiveKey:
        return cls(sys.intern(record.covers), sys.intern(record.kek_id), record.wrapped_key, record.issued_at,
                   record.part_of)

    def record(self, subject_id: str, key_id: str) -> SubjectKeyIssued:
        return SubjectKeyIssued(subject_id=subject_id, key_id=key_id, covers=self.covers, kek_id=self.kek_id,
                                wrapped_key=self.wrapped_key, issued_at=self.issued_at, part_of=self.part_of)


@dataclass(frozen=True)
class DataKey:
    subject_id: str
    key_id: str
    key: bytes


class SubjectKeys:
    """The key topic as this process knows it, and the one way to issue, open, destroy and re-wrap data keys."""

    def __init__(self, settings: Settings, provider: KeyProvider, *, cache_seconds: float = 300.0,
                 monotonic: Callable[[], float] = time.monotonic, topic: TopicSpec = SUBJECT_KEYS) -> None:
        codec = AvroCodec(registry_from_url(settings.schema_registry_url))
        self.topic = topic
        self.provider = provider
        self.cache_seconds = cache_seconds
        self.monotonic = monotonic
        # subject -> key_id -> the key as its latest record left it: held compactly while live, else destroyed
        self._records: dict[str, dict[str, LiveKey | SubjectKeyDestroyed]] = {}
        self._opened: dict[str, tuple[float, bytes]] = {}  # key_id -> (opened at, key)
        self.on_destroyed: list[Callable[[str], None]] = []  # called with each subject whose key is destroyed
        self._parts: dict[str, set[str]] = {}  # subject -> the subjects whose keys were made while it was handled
        self._reading: asyncio.Task | None = None  # the read to the key topic's end under way, if one is
        self._writes_in_background: set[asyncio.Task] = set()
        self._landing: dict[str, asyncio.Task] = {}  # subject -> the write of its newest key, while under way
        # Started on the first write (most processes only read), unless the process's own publisher writes them
        self._own_publisher = KafkaPublisher(settings, codec)
        self._publisher: Publisher = self._own_publisher
        self._writing = False
        self._stopped = False
        self._first_write = asyncio.Lock()
        self._follower = TopicFollower(settings, codec, (topic,), self._apply, fetch_every=REFRESH_SECONDS)
        self._following = False
        self._starting = asyncio.Lock()

    def writes_with(self, publisher: Publisher) -> None:
        """Write keys and erasures through the process's own publisher (a worker's producer, the API's), started and
        stopped by its owner: a new subject's key then travels in the same produce request as the record sealed
        under it, not in one of its own from a second producer."""
        self._publisher, self._writing = publisher, True

    async def start(self) -> None:
        async with self._starting:  # read models and handlers may all ask at once
            if not self._following:
                await self._follower.start()
                self._following = True
        await self._follower.caught_up.wait()

    @property
    def caught_up(self) -> asyncio.Event:
        return self._follower.caught_up

    async def stop(self) -> None:
        if self._writes_in_background:  # a key on its way is every value sealed under it: give it time to land
            _done, pending = await asyncio.wait(set(self._writes_in_background), timeout=BACKGROUND_WRITES_SECONDS)
            for task in pending:
                task.cancel()
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
        if self._following:
            self._following = False
            await self._follower.stop()
        async with self._first_write:
            self._stopped = True  # a write asked for now (a worker shutting down) must not start a producer again
            await self._own_publisher.stop()  # if it was started

    async def sync(self) -> None:
        """Read the key topic to its end: a key issued elsewhere just now (before the record sealed under it was
        written) is known after this."""
        await self.start()  # a process that had no reason to read keys before (a test's bare app) does now
        await self._follower.sync()

    async def known(self, subject_id: str, key_id: str) -> bool:
        """Whether the key is known, once it can be. The key topic is read when a record needs a key not known yet
        (and every ``REFRESH_SECONDS``, for erasures): one read brings every key written since, so a burst of new
        subjects costs one read, not a fetch per key in every process. A key is on the broker before any record sealed
        under it, but a read may race its replication: it is looked for again until ``KEY_ON_ITS_WAY_SECONDS``."""
        if self.knows(subject_id, key_id):
            return True
        await self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KEY_ON_ITS_WAY_SECONDS
        while not self.knows(subject_id, key_id):
            if loop.time() > deadline:
                return False
            await self._read_to_end()
            if not self.knows(subject_id, key_id):
                await asyncio.sleep(0.01)
        return True

    async def _read_to_end(self) -> None:
        """One read of the key topic to its end, shared by every record waiting for a key meanwhile."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.get_running_loop().create_task(self._follower.sync(KEY_ON_ITS_WAY_SECONDS))
        await asyncio.shield(self._reading)

    def knows(self, subject_id: str, key_id: str) -> bool:
        return key_id in self._records.get(subject_id, {})

    def destroyed(self, subject_id: str, key_id: str) -> bool:
        return isinstance(self._records.get(subject_id, {}).get(key_id), SubjectKeyDestroyed)

    def _apply(self, record: KeyRecord) -> None:
        held = LiveKey.of(record) if isinstance(record, SubjectKeyIssued) else record
        self._records.setdefault(record.subject_id, {})[record.key_id] = held
        if isinstance(record, SubjectKeyIssued) and record.part_of:
            self._parts.setdefault(record.part_of, set()).add(record.subject_id)
        if isinstance(record, SubjectKeyDestroyed):
            self._opened.pop(record.key_id, None)
            for forget in self.on_destroyed:  # what a read model holds of the subject already goes too
                forget(record.subject_id)

    def _live(self) -> list[SubjectKeyIssued]:
        return [held.record(subject_id, key_id) for subject_id, keys in self._records.items()
                for key_id, held in keys.items() if isinstance(held, LiveKey)]

    def keys_of(self, subject_id: str) -> list[KeyRecord]:
        return [held.record(subject_id, key_id) if isinstance(held, LiveKey) else held
                for key_id, held in self._records.get(subject_id, {}).items()]

    def _parents(self, subject_id: str) -> list[str]:
        return [held.part_of for held in self._records.get(subject_id, {}).values()
                if isinstance(held, LiveKey) and held.part_of]

    async def _publish(self, topic: TopicSpec, key: str, event: Any) -> None:
        async with self._first_write:  # two first writes at once (a background key, a handler's) start one producer
            if self._stopped:
                raise KeyUnavailable("stopped")
            if not self._writing:
                await self._own_publisher.start()
                self._writing = True
        await self._publisher.publish(topic, key, event)

    async def _write(self, record: KeyRecord) -> None:
        await self._publish(self.topic, f"{record.subject_id}/{record.key_id}", record)
        self._apply(record)

    def _held(self, subject_id: str) -> DataKey | None:
        keys = self._records.get(subject_id, {})
        for key_id, held in keys.items():
            if isinstance(held, LiveKey):
                return DataKey(subject_id, key_id, self.open(subject_id, key_id))
        if keys:
            raise KeyUnavailable("erased")
        return None

    def _made(self, subject_id: str, covers: str) -> tuple[DataKey, SubjectKeyIssued]:
        key, key_id = new_data_key(), secrets.token_hex(12)
        wrapped = self.provider.wrap(key, key_id)
        part_of = handled_subject.get()
        self._hold(key_id, key)
        return DataKey(subject_id, key_id, key), SubjectKeyIssued(
            subject_id=subject_id, key_id=key_id, covers=covers, kek_id=wrapped.kek_id, wrapped_key=wrapped.wrapped,
            issued_at=datetime.now(UTC), part_of=part_of if part_of != subject_id else None)

    async def issue(self, subject_id: str, covers: str) -> DataKey:
        """The subject's live data key, made if it has none, and published wrapped: before anything is sealed under
        it, or, while a record is handled, among that record's sends: the handler goes on, and what it sealed under
        the key is sent once the key is on the broker (``landing``), so a reader never meets a record whose key is
        not there, and a worker's path holds no round trip per new subject. An erased subject gets none:
        ``KeyUnavailable`` (a replay of its intake must not seal its name again under a new key)."""
        await self.start()  # the keys issued before (elsewhere) are known before one is made
        held = self._held(subject_id)
        if held is not None:
            return held
        made, record = self._made(subject_id, covers)
        if sends_in_flight.get() is None:
            await self._write(record)
        else:
            self._write_among_sends(record)
        return made

    def issue_now(self, subject_id: str, covers: str) -> DataKey:
        """``issue`` for a caller that cannot wait (a table's write): a new key is usable at once and published in
        the background, among the sends of the record being handled."""
        held = self._held(subject_id)
        if held is not None:
            return held
        made, record = self._made(subject_id, covers)
        self._write_among_sends(record)
        return made

    def _write_among_sends(self, record: SubjectKeyIssued) -> None:
        """A record sealed under the key is handed to the producer only once the key is on the broker (``landing``):
        the producer sends partitions independently, so the record could otherwise land first, and a crash between
        the two would leave it where nobody can open it. A crash before the key lands handles the record again,
        under a new key; a table's entry already written under the lost one reads as erased, and is written again
        by that replay."""
        self._apply(record)
        task = self._in_background(lambda: self._write(record))
        self._landing[record.subject_id] = task
        task.add_done_callback(lambda done: self._landing.pop(record.subject_id, None)
                               if self._landing.get(record.subject_id) is done else None)

    def landing(self, subject_id: str) -> asyncio.Task | None:
        """The write of the subject's newest key while it is still under way: what a record sealed under it waits
        for before it is sent."""
        return self._landing.get(subject_id)

    def erase_soon(self, subject_id: str, reason: ErasureReason = ErasureReason.retention_ended,
                   requested_by: str = "handoff (retention)") -> None:
        """``destroy`` from a caller that cannot wait (a table's owner applying a retention's end, a handler
        applying a consent's revocation): among the sends of the record being handled, as ``issue_now``."""
        self._in_background(lambda: self.destroy(subject_id, reason, requested_by))

    def _in_background(self, write: Callable[[], Awaitable[Any]]) -> asyncio.Task:
        """Run ``write`` until it is written, among the sends of the record being handled: a key lost is every value
        sealed under it lost, and a destruction lost is a person not erased. It keeps trying while the broker is
        away; only a key that cannot be (``KeyUnavailable``: stopped, already destroyed) ends it."""
        async def until_written() -> None:
            sends_in_flight.set(None)  # this task's copy of the context: it awaits its own sends, not the record's
            async for attempt in AsyncRetrying(wait=wait_exponential(multiplier=0.2, max=10), stop=stop_never,
                                               retry=retry_if_not_exception_type(KeyUnavailable), reraise=True):
                with attempt:
                    await write()

        task = asyncio.get_running_loop().create_task(until_written())
        self._writes_in_background.add(task)
        task.add_done_callback(self._writes_in_background.discard)
        pending = sends_in_flight.get()
        if pending is not None:
            pending.append(task)
        return task

    def open(self, subject_id: str, key_id: str) -> bytes:
        """The data key ``key_id`` of ``subject_id``; ``KeyUnavailable`` when it is unknown or destroyed."""
        record = self._records.get(subject_id, {}).get(key_id)
        if not isinstance(record, LiveKey):
            self._opened.pop(key_id, None)
            raise KeyUnavailable("destroyed" if record else "unknown")
        cached = self._opened.get(key_id)
        if cached and self.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        key = self.provider.unwrap(WrappedKey(record.kek_id, record.wrapped_key), key_id)
        self._hold(key_id, key)
        return key

    def _hold(self, key_id: str, key: bytes) -> None:
        """Hold an opened key, newest last: the held keys stay in the order they were opened, so the expired ones are
        at the front. Past ``OPENED_HELD`` the expired ones go, then the oldest: a backlog opens more keys within the
        cache's time than that, and looking at every held key on each open (as this did) made each open cost as much
        as all the keys held: a 100,000-notice backlog stalled its worker."""
        self._opened.pop(key_id, None)
        self._opened[key_id] = (self.monotonic(), key)
        if len(self._opened) > OPENED_HELD:
            self.forget_expired()
            while len(self._opened) > OPENED_HELD:
                del self._opened[next(iter(self._opened))]

    def forget_expired(self) -> None:
        """Drop the opened keys held longer than the cache allows (called on a timer, and as keys are opened): from
        the front, the oldest, up to the first still fresh."""
        now = self.monotonic()
        while self._opened:
            key_id, (opened_at, _key) = next(iter(self._opened.items()))
            if now - opened_at < self.cache_seconds:
                return
            del self._opened[key_id]

    def linked(self, subject_id: str) -> list[str]:
        """The subject, the subjects made while it was handled (a referral from a CAD event, a child's notice from
        an encounter), theirs in turn, and the subjects it was made from (the record that first named the person):
        not those made beside it (a sibling's notice), which share no record with it."""
        found = [subject_id]
        below = [subject_id]
        while below:
            for part in sorted(self._parts.get(below.pop(), ())):
                if part not in found:
                    found.append(part)
                    below.append(part)
        above = self._parents(subject_id)
        while above:
            parent = above.pop()
            if parent not in found:
                found.append(parent)
                above += self._parents(parent)
        return found

    async def destroy(self, subject_id: str, reason: ErasureReason, requested_by: str, note: str = "",
                      now: datetime | None = None) -> list[ErasureReceipted]:
        """Destroy every live data key of the subject and of the subjects linked to it (``linked``), and write a
        receipt of each to the audit topic."""
        now = now or datetime.now(UTC)
        receipts = []
        for linked in self.linked(subject_id):
            receipts += await self._destroy_one(linked, reason, requested_by, note, now)
        return receipts

    async def _destroy_one(self, subject_id: str, reason: ErasureReason, requested_by: str, note: str,
                           now: datetime) -> list[ErasureReceipted]:
        receipts = []
        for record in self.keys_of(subject_id):
            if not isinstance(record, SubjectKeyIssued):
                continue
            await self._write(SubjectKeyDestroyed(subject_id=subject_id, key_id=record.key_id, covers=record.covers,
                                                  reason=reason, destroyed_at=now))
            receipt = ErasureReceipted(receipt_id=f"er-{secrets.token_hex(8)}", subject_id=subject_id,
                                       key_id=record.key_id, covers=record.covers, reason=reason,
                                       requested_by=requested_by, note=note, erased_at=now)
            await self._publish(AUDIT, subject_id, receipt)
            receipts.append(receipt)
            log.info("subject_key_destroyed", key_id=record.key_id, covers=record.covers, reason=reason.value)
        return receipts

    def wrapped_under(self, kek_id: str) -> int:
        """How many live data keys the key-encryption key ``kek_id`` still wraps."""
        return sum(1 for r in self._live() if r.kek_id == kek_id)

    async def rewrap(self) -> int:
        """Wrap every live data key under the provider's current key-encryption key (after ``rotate``): the keys and
        every value sealed under them stay as they are. Returns how many were re-wrapped."""
        count = 0
        for record in self._live():
            if record.kek_id == self.provider.current:
                continue
            key = self.provider.unwrap(WrappedKey(record.kek_id, record.wrapped_key), record.key_id)
            wrapped = self.provider.wrap(key, record.key_id)
            await self._write(record.model_copy(update={"kek_id": wrapped.kek_id, "wrapped_key": wrapped.wrapped}))
            count += 1
        log.info("subject_keys_rewrapped", count=count, kek_id=self.provider.current)
        return count


@asynccontextmanager
async def sealing_codec(settings: Settings, max_record_bytes: int | None = None) -> AsyncIterator[AvroCodec]:
    """A codec that seals what it writes and opens what it reads, with this process's view of the subject keys
    (followed while the block runs): for a process that is not a worker (a command, a file drop, a subscriber)."""
    keys = SubjectKeys(settings, key_provider(settings))
    await keys.start()
    try:
        yield AvroCodec(registry_from_url(settings.schema_registry_url), sealer=Sealer(keys, settings.topic_prefix),
                        **({"max_record_bytes": max_record_bytes} if max_record_bytes else {}))
    finally:
        await keys.stop()


# --- dead letters: a key per letter, gone with the letters -----------------------------------------------------
def letter_subject(topic: str, partition: int, offset: int) -> str:
    """A dead letter's subject: where the record it holds was."""
    return f"{topic}/{partition}/{offset}"


class LetterSealer:
    """Seals a dead letter's original bytes under a data key of its own, published wrapped to the dead-letter key
    topic, whose retention is the dead letters' (no longer than children's data): when a letter leaves the
    broker, the only key that opens any copy of it (a backup, a consumer's cache) leaves with it. Dead letters
    hold records as received: CAD's plain text among them."""

    def __init__(self, publisher: Publisher, provider: KeyProvider) -> None:
        self.publisher = publisher
        self.provider = provider

    async def sealed(self, letter: DeadLetterRecorded) -> DeadLetterRecorded:
        if letter.original_value is None:
            return letter
        subject = letter_subject(letter.original_topic, letter.partition, letter.offset)
        key, key_id = new_data_key(), secrets.token_hex(12)
        wrapped = self.provider.wrap(key, key_id)
        await self.publisher.publish(DEAD_LETTER_KEYS, f"{subject}/{key_id}", SubjectKeyIssued(
            subject_id=subject, key_id=key_id, covers="dead_letter", kek_id=wrapped.kek_id,
            wrapped_key=wrapped.wrapped, issued_at=datetime.now(UTC)))
        return letter.model_copy(update={"sealed_under": key_id, "original_value": seal(
            key, letter.original_value, binding(DEAD_LETTER.name, "original_value", subject))})


def opened_letter(keys: SubjectKeys, letter: DeadLetterRecorded) -> DeadLetterRecorded:
    """``letter`` with its original bytes opened; ``original_value`` None when its key is gone (the letter is past
    the dead letters' retention, or was tampered with: ``sealed_under`` still says it was sealed)."""
    if letter.sealed_under is None or letter.original_value is None:
        return letter
    subject = letter_subject(letter.original_topic, letter.partition, letter.offset)
    try:
        value = open_sealed(keys.open(subject, letter.sealed_under), letter.original_value,
                            binding(DEAD_LETTER.name, "original_value", subject))
    except (KeyUnavailable, SealBroken) as exc:
        log.warning("dead_letter_unreadable", topic=letter.original_topic, partition=letter.partition,
                    offset=letter.offset, reason=type(exc).__name__)
        value = None
    return letter.model_copy(update={"original_value": value})
