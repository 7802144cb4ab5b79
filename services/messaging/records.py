"""Records through a worker, engine aside: the one way every service's handler sees a record.

Faust acks a message whose agent raised, which would drop it silently. Here agents never raise:
``RecordProcessor`` decodes each record, runs the handler with bounded retries, and sends what cannot
be processed to the dead-letter topic with the reason and the original bytes. If even the dead-letter
topic cannot be written, it keeps trying (holding the partition) rather than move on: nothing valid is
lost and nothing invalid disappears. ``OffsetGuard`` and ``StallWatch`` catch records the client
dropped around a rebalance; ``RecordsInFlight`` acknowledges a record only once its events are written.

None of this knows Faust (``streams.py`` is the one module that does), so unit tests drive it with plain
``RawRecord``s, and another engine would reuse it as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, stop_never, wait_exponential

from services.kernel.errors import InvalidRecord
from services.kernel.events import (
    Header,
)
from services.kernel.topics import DEAD_LETTER
from services.messaging.avro import AvroCodec
from services.messaging.events import DeadLetterRecorded
from services.messaging.kafka import Publisher, sends_in_flight
from services.messaging.outbox import source_partition
from services.messaging.sealing import handled_subject, subject_of
from services.platform.logs import correlation_from_headers, correlation_of, correlation_scope, get_logger

log = get_logger(__name__)

Handler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class RawRecord:
    """A record as it came off the broker, before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @classmethod
    def of(cls, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
           headers: Any) -> RawRecord:
        """From a client's message, whose headers are a mapping or a list of pairs (or None)."""
        items = headers.items() if hasattr(headers, "items") else headers or ()
        return cls(topic, partition, offset, key, value, [(k, v) for k, v in items])

    @property
    def subject(self) -> str | None:
        """Who the record is about: its key (a referral, CAD event, notice, follow-up or walk-in id)."""
        return subject_of(self.key)


# A letter copies the record whole up to this size: the broker's default max.message.bytes (1 MiB)
# less room for the letter's own fields. Past it the letter would be refused: it goes reduced at once.
DEAD_LETTER_MAX_VALUE_BYTES = 1_000_000 - 32 * 1024
LETTERED_REMEMBERED = 10_000  # how many letters a sink remembers, to write none twice


class LetterSealing(Protocol):
    """Seals a letter's original bytes (``subject_keys.LetterSealer``)."""

    async def sealed(self, letter: DeadLetterRecorded) -> DeadLetterRecorded: ...


class DeadLetterSink:
    """Writes ``DeadLetterRecorded`` events, and never holds a partition because of the record itself.

    A letter carries the original bytes when they fit (``max_value_bytes``) and the write succeeds
    within ``full_attempts``. Otherwise (a record too large for the broker once wrapped, or a write
    that keeps failing for this letter) it is written *reduced*: where the record was, why it
    failed, the original's size and SHA-256 and its first ``prefix_bytes`` bytes, or, if even that
    is refused, no bytes at all; ``handoff dlq show`` fetches the original from its topic by offset.
    That last letter is a few hundred bytes, so its write fails only while the broker is
    unreachable, when nothing else can be written either: it is retried until it lands, so that no
    record disappears without a trace.

    With a ``sealer`` (every worker has one), the original bytes in a letter are sealed under a key of the
    letter's own, which goes when the letter goes (``subject_keys.LetterSealer``).
    """

    def __init__(self, publisher: Publisher, service: str, max_wait_seconds: float = 30.0, *,
                 max_value_bytes: int = DEAD_LETTER_MAX_VALUE_BYTES, full_attempts: int = 5, prefix_bytes: int = 1024,
                 retry_base_seconds: float = 0.5, sealer: LetterSealing | None = None) -> None:
        self.publisher = publisher
        self.sealer = sealer
        self.service = service
        self.max_wait_seconds = max_wait_seconds
        self.max_value_bytes = max_value_bytes
        self.full_attempts = full_attempts
        self.prefix_bytes = prefix_bytes
        self.retry_base_seconds = retry_base_seconds
        self.count = 0
        self.reduced = 0
        # The records this worker dead-lettered lately, by where they are: a record read again (a rebalance
        # before its offset was committed, a gap recovered) is not lettered twice, as no side effect is.
        self._lettered: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self.lettered_again = 0

    def _letter(self, raw: RawRecord, error_type: str, reason: str, correlation_id: str | None,
                prefix: int | None) -> DeadLetterRecorded:
        """The whole record (``prefix`` None), or a reduced letter carrying its first ``prefix`` bytes."""
        value, key, headers = raw.value, raw.key, [Header(key=k, value=v) for k, v in raw.headers]
        extra: dict[str, Any] = {}
        if prefix is not None:
            extra = {"original_truncated": True, "original_size": len(value) if value is not None else None,
                     "original_sha256": hashlib.sha256(value).hexdigest() if value is not None else None}
            value = value[:prefix] if value is not None and prefix else None
            key = (key or b"")[:256] or None
            # headers are the sender's too: keep them only while they are few and small
            headers = [h for h in headers if len(h.key) + len(h.value or b"") <= 256][:16] if prefix else []
        return DeadLetterRecorded(
            original_topic=raw.topic, partition=raw.partition, offset=raw.offset, original_key=key,
            original_value=value, original_headers=headers, error_type=error_type, error=reason[:1000],
            service=self.service, correlation_id=correlation_id, failed_at=datetime.now(UTC), **extra)

    def _fits(self, raw: RawRecord) -> bool:
        size = len(raw.value or b"") + len(raw.key or b"") + sum(len(k) + len(v or b"") for k, v in raw.headers)
        return size <= self.max_value_bytes

    async def record(self, raw: RawRecord, error_type: str, reason: str, correlation_id: str | None) -> None:
        where = (raw.topic, raw.partition, raw.offset)
        if where in self._lettered:
            self.lettered_again += 1
            log.info("dead_letter_already_written", topic=raw.topic, partition=raw.partition, offset=raw.offset)
            return
        key = (raw.key or f"{raw.topic}:{raw.partition}:{raw.offset}".encode())[:256].decode("utf-8", "replace")
        # Whole if it fits; then reduced with a prefix; then reduced to where it is and why, which is
        # retried until it lands (see the class docstring).
        attempts = [(None, stop_after_attempt(self.full_attempts))] if self._fits(raw) else []
        attempts += [(self.prefix_bytes, stop_after_attempt(self.full_attempts)), (0, stop_never)]
        for prefix, stop in attempts:
            try:
                letter = self._letter(raw, error_type, reason, correlation_id, prefix)
                await self._write(key, await self.sealer.sealed(letter) if self.sealer else letter, stop)
            except Exception as exc:
                log.warning("dead_letter_write_failed", topic=raw.topic, partition=raw.partition, offset=raw.offset,
                            reduced=prefix is not None, error_type=type(exc).__name__)
                continue
            self.count += 1
            self.reduced += prefix is not None
            self._lettered[where] = None
            if len(self._lettered) > LETTERED_REMEMBERED:
                self._lettered.popitem(last=False)
            log.warning("record_dead_lettered", topic=raw.topic, partition=raw.partition, offset=raw.offset,
                        error_type=error_type, reason=reason, reduced=prefix is not None)
            return

    async def _write(self, key: str, letter: DeadLetterRecorded, stop) -> None:
        async for attempt in AsyncRetrying(wait=wait_exponential(multiplier=self.retry_base_seconds,
                                                                 max=self.max_wait_seconds),
                                           stop=stop, reraise=True,
                                           before_sleep=lambda s: log.warning(
                                               "dead_letter_write_retry", attempt=s.attempt_number,
                                               reduced=letter.original_truncated,
                                               error_type=type(s.outcome.exception()).__name__)):
            with attempt:
                await self.publisher.publish(DEAD_LETTER, key, letter)


class RecordProcessor:
    """Decode -> handle (with retries) -> or dead-letter. Never raises for a bad record."""

    def __init__(self, codec: AvroCodec, dead_letters: DeadLetterSink, *, retries: int = 3,
                 retry_base_seconds: float = 0.2) -> None:
        self.codec = codec
        self.dead_letters = dead_letters
        self.retries = retries
        self.retry_base_seconds = retry_base_seconds
        self.processed = 0
        self.counts: Counter[tuple[str, str]] = Counter()  # (topic, "processed" | "dead_lettered")

    async def process(self, raw: RawRecord, handler: Handler, expected: tuple[type, ...] | None = None, *,
                      sends: list[Awaitable[Any]] | None = None) -> bool:
        """Returns True when the handler ran to completion, False when the record was dead-lettered.

        With ``sends``, the events the handler published are left there unawaited (see
        ``RecordsInFlight``); without it they are all on the broker when this returns."""
        partition_token = source_partition.set(raw.partition)
        subject_token = handled_subject.set(raw.subject)
        headers_token = handled_headers.set(raw.headers)
        try:
            return await self._process(raw, handler, expected, sends)
        finally:
            handled_headers.reset(headers_token)
            handled_subject.reset(subject_token)
            source_partition.reset(partition_token)

    async def _process(self, raw: RawRecord, handler: Handler, expected: tuple[type, ...] | None,
                       sends: list[Awaitable[Any]] | None) -> bool:
        given = correlation_from_headers(raw.headers)
        with contextlib.ExitStack() as scopes:
            cid = scopes.enter_context(correlation_scope(given))
            try:
                event = await self.codec.decode(raw.value, expected, raw.topic, raw.subject)
                if given is None and (implied := correlation_of(event)):  # a CAD's own record: its incident's id
                    cid = scopes.enter_context(correlation_scope(implied))
                async for attempt in AsyncRetrying(
                        retry=retry_if_not_exception_type(InvalidRecord), stop=stop_after_attempt(self.retries + 1),
                        wait=wait_exponential(multiplier=self.retry_base_seconds, max=10), reraise=True,
                        before_sleep=lambda s: log.warning("handler_retry", attempt=s.attempt_number,
                                                           error_type=type(s.outcome.exception()).__name__)):
                    with attempt:
                        async with sends_awaited_together(handing_on_to=sends):
                            await handler(event)
            except InvalidRecord as exc:
                await self.dead_letters.record(raw, exc.error_type, exc.reason, cid)
                self.counts[(raw.topic, "dead_lettered")] += 1
                return False
            except Exception as exc:
                # Exception text may quote data; the dead letter gets the type, the log the traceback.
                log.exception("handler_failed", topic=raw.topic, partition=raw.partition, offset=raw.offset)
                await self.dead_letters.record(raw, "processing",
                                               f"{type(exc).__name__} after {self.retries + 1} attempts", cid)
                self.counts[(raw.topic, "dead_lettered")] += 1
                return False
            self.processed += 1
            self.counts[(raw.topic, "processed")] += 1
            return True


# The headers of the record being handled: set only while a record is handled.
handled_headers: ContextVar[Sequence[tuple[str, bytes]]] = ContextVar("handled_headers", default=())


@contextlib.asynccontextmanager
async def sends_awaited_together(handing_on_to: list[Awaitable[Any]] | None = None) -> AsyncIterator[None]:
    """Within: the publisher hands each event to the producer without waiting for it (in order, so
    the producer batches them); on the way out every one is awaited, or, given ``handing_on_to``,
    added to it for the caller to await (``RecordsInFlight`` awaits them before it acknowledges the
    record). Either way a record is acknowledged only after all its events are written, and a
    failed send fails the record as an awaited one did."""
    pending: list[Awaitable[Any]] = []
    token = sends_in_flight.set(pending)
    try:
        yield
    except BaseException:
        await asyncio.gather(*pending, return_exceptions=True)  # settled either way: no future left behind
        raise
    else:
        if handing_on_to is None:
            await asyncio.gather(*pending)
        else:
            handing_on_to.extend(pending)
    finally:
        sends_in_flight.reset(token)


Fetch = Callable[[str, int, int, int], Awaitable[list[RawRecord]]]  # (topic, partition, start, end) -> records
Baseline = Callable[[str, int], Awaitable[int]]  # (topic, partition) -> first offset not yet processed
EndOffsets = Callable[[str, set[int]], Awaitable[dict[int, int]]]  # (topic, partitions) -> offset after the last


class OffsetGuard:
    """Makes sure no record of a partition is passed over.

    Around a rebalance Faust can drop records: records prefetched in the old generation are
    skipped by the stream, and when they are fetched again the consumer discards them as already
    read ("DROPPED MESSAGE ROFF"). Our topics are neither compacted nor transactional, so every
    offset holds a record and a jump in offsets means records the stream never handed over. The
    guard notices the jump and reads the missing records straight from the broker, to be
    processed before the record at hand. The first record after an assignment is compared with the
    group's committed offset. Handlers are idempotent, so a record seen twice costs nothing.
    """

    def __init__(self, fetch: Fetch, baseline: Baseline, end_offsets: EndOffsets | None = None) -> None:
        self.fetch = fetch
        self.baseline = baseline
        self.end_offsets = end_offsets
        self.next_offset: dict[tuple[str, int], int] = {}
        self.handled_to: dict[tuple[str, int], int] = {}  # the offset after the last record handled
        self.recovered = 0
        self.handled_total = 0  # records handled by every agent, ever: the tail check's sign of a busy worker
        self.topics: set[str] = set()  # the topics whose partitions the tail check watches

    async def missing_before(self, raw: RawRecord) -> list[RawRecord]:
        tp = (raw.topic, raw.partition)
        expected = self.next_offset.get(tp)
        if expected is None:
            expected = await self.baseline(raw.topic, raw.partition)
        self.next_offset[tp] = max(expected, raw.offset + 1)
        if raw.offset <= expected:
            return []
        missing = await self.fetch(raw.topic, raw.partition, expected, raw.offset)
        self.recovered += len(missing)
        log.warning("records_recovered_from_gap", topic=raw.topic, partition=raw.partition, first=expected,
                    last=raw.offset - 1, count=len(missing))
        return missing

    def handled(self, raw: RawRecord) -> None:
        tp = (raw.topic, raw.partition)
        self.handled_to[tp] = max(self.handled_to.get(tp, 0), raw.offset + 1)
        self.handled_total += 1

    async def wait_until_handled(self, topic: str, partitions: set[int], poll_seconds: float = 0.05) -> None:
        """Until the stream has handled every record that is on ``partitions`` of ``topic`` now."""
        assert self.end_offsets is not None
        waiting = await self.end_offsets(topic, partitions)
        before = {p: await self.baseline(topic, p) for p in waiting}  # handled before this assignment
        while waiting:
            waiting = {p: end for p, end in waiting.items() if max(self.handled_to.get((topic, p), 0), before[p]) < end}
            if waiting:
                await asyncio.sleep(poll_seconds)

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Partitions revoked: whoever gets them next starts from the committed offset."""
        for tp in partitions:
            self.next_offset.pop(tp, None)
            self.handled_to.pop(tp, None)


class StallWatch:
    """Which partitions the tail check seeks back: those with records past what was handled and no
    progress over a whole interval in which the worker handled nothing at all.

    Records are dropped only around a rebalance, and a drop is found at once when a later record
    arrives on the partition (``OffsetGuard.missing_before``); what is left is a partition whose last
    records were dropped. A partition that merely waits its turn looks the same from here (its
    records fetched and queued behind other partitions and topics, for many seconds in a backlog),
    and seeking it back threw its fetched records away to fetch them again, over and over, and held
    both copies in memory at once. So a partition is taken as stalled only while the worker is idle:
    a busy worker reaches every queued record by itself, and once it is idle a dropped tail is sought
    back within two intervals."""

    def __init__(self) -> None:
        self._last: dict[Any, tuple[int, int]] = {}
        self._handled_before: int | None = None

    def interval_ended(self, handled_total: int) -> bool:
        """Call once per check: True when the worker handled nothing since the last check."""
        idle = handled_total == self._handled_before
        self._handled_before = handled_total
        return idle

    def should_seek(self, tp: Any, expected: int | None, end: int | None, idle: bool) -> bool:
        if end is None or expected is None or end <= expected:
            self._last.pop(tp, None)
            return False
        if idle and self._last.get(tp) == (expected, end):  # no progress over a whole idle interval
            self._last.pop(tp, None)
            return True
        self._last[tp] = (expected, end)
        return False


class RecordsInFlight:
    """The records an agent has handled whose events are not all on the broker yet: at most ``limit``.

    Waiting for each record's writes before handling the next left the worker idle for a broker
    round trip per record. Here the next record is handled while the last one's events are still
    being written (the producer batches them), and a record is acknowledged only when every send of
    it, and of every record before it, has landed: acknowledgements go in offset order and never
    pass a record whose writes are not all on the broker.

    A failed send stops the acknowledgements at its record. That record and every one handled after
    it are handled again, in order, through the awaited path (retries, then the dead-letter topic),
    as a restart would redo them; handlers are idempotent, so the ones that had succeeded change
    nothing. ``lock`` keeps the agent's next record out while that happens."""

    def __init__(self, acknowledge: Callable[[Any, RawRecord], Awaitable[None]],
                 redo: Callable[[Any, RawRecord], Awaitable[Any]], limit: int = 256) -> None:
        """``redo(event, raw)`` handles a record again (the engine's event, and its bytes)."""
        self._acknowledge = acknowledge
        self._redo = redo
        self._queue: asyncio.Queue[tuple[Any, RawRecord, list[Awaitable[Any]]]] = asyncio.Queue(limit)
        self._task: asyncio.Task | None = None
        self.lock = asyncio.Lock()
        self.redone = 0

    async def add(self, event: Any, raw: RawRecord, sends: list[Awaitable[Any]]) -> None:
        """Called holding ``lock``, right after the handler: waits while ``limit`` records are in flight."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._acknowledge_in_order())
        await self._queue.put((event, raw, sends))

    async def settled(self) -> None:
        """Until every record added so far is acknowledged (tests, and a stream that must drain)."""
        await self._queue.join()

    async def close(self) -> None:
        """Stop acknowledging: what is still in flight is not acknowledged, so it is read again."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _acknowledge_in_order(self) -> None:
        while True:
            event, raw, sends = await self._queue.get()
            try:
                if any(isinstance(r, BaseException) for r in await asyncio.gather(*sends, return_exceptions=True)):
                    await self._redo_from(event, raw)
                else:
                    await self._acknowledge(event, raw)
            except Exception:
                # This task must outlive any one record, or the agent would wait on a full queue for
                # ever. A record not acknowledged is not committed: it is read again after a restart.
                log.exception("record_not_acknowledged", topic=raw.topic, partition=raw.partition, offset=raw.offset)
            finally:
                self._queue.task_done()

    async def _redo_from(self, event: Any, raw: RawRecord) -> None:
        async with self.lock:
            again = [(event, raw)]
            while not self._queue.empty():
                later_event, later_raw, later_sends = self._queue.get_nowait()
                await asyncio.gather(*later_sends, return_exceptions=True)  # settled before they are redone
                again.append((later_event, later_raw))
                self._queue.task_done()
            log.warning("sends_failed_records_handled_again", topic=raw.topic, partition=raw.partition,
                        first=raw.offset, count=len(again))
            for failed_event, failed_raw in again:
                await self._redo(failed_event, failed_raw)
                await self._acknowledge(failed_event, failed_raw)
            self.redone += len(again)
