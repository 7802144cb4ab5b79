"""Stream processing: the Faust app factory and the one way every service consumes a topic.

Faust acks a message whose agent raised, which would drop it silently. Here agents never raise:
``RecordProcessor`` decodes each record, runs the handler with bounded retries, and sends what
cannot be processed to the dead-letter topic with the reason and the original bytes. If even the
dead-letter topic cannot be written, it keeps trying (holding the partition) rather than move on:
nothing valid is lost and nothing invalid disappears.

``RecordProcessor`` knows nothing of Faust, so unit tests drive it with plain ``RawRecord``s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
from faust.streams import current_event
from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, stop_never, wait_exponential

from services.kernel.bus import Subscription, dispatch
from services.kernel.errors import InvalidRecord
from services.kernel.events import DeadLetterRecorded, Header
from services.kernel.logs import correlation_from_headers, correlation_of, correlation_scope, get_logger
from services.kernel.settings import Settings
from services.kernel.store import CompactValues
from services.kernel.topics import DEAD_LETTER, TopicSpec
from services.messaging.avro import AvroCodec
from services.messaging.kafka import Publisher, client_options, correlation_headers, ensure_topics
from services.messaging.outbox import source_partition

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


# A letter copies the record whole up to this size: the broker's default max.message.bytes (1 MiB)
# less room for the letter's own fields. Past it the letter would be refused: it goes reduced at once.
DEAD_LETTER_MAX_VALUE_BYTES = 1_000_000 - 32 * 1024


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
    """

    def __init__(self, publisher: Publisher, service: str, max_wait_seconds: float = 30.0, *,
                 max_value_bytes: int = DEAD_LETTER_MAX_VALUE_BYTES, full_attempts: int = 5, prefix_bytes: int = 1024,
                 retry_base_seconds: float = 0.5) -> None:
        self.publisher = publisher
        self.service = service
        self.max_wait_seconds = max_wait_seconds
        self.max_value_bytes = max_value_bytes
        self.full_attempts = full_attempts
        self.prefix_bytes = prefix_bytes
        self.retry_base_seconds = retry_base_seconds
        self.count = 0
        self.reduced = 0

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
        key = (raw.key or f"{raw.topic}:{raw.partition}:{raw.offset}".encode())[:256].decode("utf-8", "replace")
        # Whole if it fits; then reduced with a prefix; then reduced to where it is and why, which is
        # retried until it lands (see the class docstring).
        attempts = [(None, stop_after_attempt(self.full_attempts))] if self._fits(raw) else []
        attempts += [(self.prefix_bytes, stop_after_attempt(self.full_attempts)), (0, stop_never)]
        for prefix, stop in attempts:
            try:
                await self._write(key, self._letter(raw, error_type, reason, correlation_id, prefix), stop)
            except Exception as exc:
                log.warning("dead_letter_write_failed", topic=raw.topic, partition=raw.partition, offset=raw.offset,
                            reduced=prefix is not None, error_type=type(exc).__name__)
                continue
            self.count += 1
            self.reduced += prefix is not None
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
        try:
            return await self._process(raw, handler, expected, sends)
        finally:
            source_partition.reset(partition_token)

    async def _process(self, raw: RawRecord, handler: Handler, expected: tuple[type, ...] | None,
                       sends: list[Awaitable[Any]] | None) -> bool:
        given = correlation_from_headers(raw.headers)
        with contextlib.ExitStack() as scopes:
            cid = scopes.enter_context(correlation_scope(given))
            try:
                event = await self.codec.decode(raw.value, expected)
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


# The sends a record's handler made and has not awaited: set only while a record is handled.
_sends_in_flight: ContextVar[list[Awaitable[Any]] | None] = ContextVar("sends_in_flight", default=None)


@contextlib.asynccontextmanager
async def sends_awaited_together(handing_on_to: list[Awaitable[Any]] | None = None) -> AsyncIterator[None]:
    """Within: the publisher hands each event to the producer without waiting for it (in order, so
    the producer batches them); on the way out every one is awaited, or, given ``handing_on_to``,
    added to it for the caller to await (``RecordsInFlight`` awaits them before it acknowledges the
    record). Either way a record is acknowledged only after all its events are written, and a
    failed send fails the record as an awaited one did."""
    pending: list[Awaitable[Any]] = []
    token = _sends_in_flight.set(pending)
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
        _sends_in_flight.reset(token)


class FaustPublisher:
    """Publishes from inside a Faust worker through the app's own producer (acks=all). While a record
    is handled its events are sent together (``sends_awaited_together``); elsewhere (timers) each is
    awaited before the next."""

    def __init__(self, app: faust.App, codec: AvroCodec, prefix: str = "") -> None:
        self.app = app
        self.codec = codec
        self.prefix = prefix

    async def publish(self, topic: TopicSpec, key: str, event: Any) -> None:
        value = await self.codec.encode(event)
        sent = await self.app.producer.send(topic.qualified(self.prefix), key.encode(), value, None, None,
                                            correlation_headers(topic))
        pending = _sends_in_flight.get()
        if pending is None:
            await sent
        else:
            pending.append(sent)


def create_app(service: str, settings: Settings, **overrides: Any) -> faust.App:
    """A Faust app with Handoff's conventions: raw bytes in (our codec decodes), memory store whose
    tables recover from their changelog topics, acks=all, earliest offsets.

    Faust declares only its own internal topics (changelogs, leader); ours are ``internal=False``
    and created by ``ensure_topics`` with their partition counts."""
    opts = client_options(settings)
    credentials = None
    if "ssl_context" in opts and not settings.kafka_security_protocol.startswith("SASL"):
        credentials = faust.SSLCredentials(opts["ssl_context"])
    elif settings.kafka_security_protocol.startswith("SASL"):
        credentials = faust.SASLCredentials(username=opts["sasl_plain_username"], password=opts["sasl_plain_password"],
                                            mechanism=opts["sasl_mechanism"], ssl_context=opts.get("ssl_context"))
    config: dict[str, Any] = dict(
        broker=[f"kafka://{hp}" for hp in settings.kafka_bootstrap_servers.split(",")],
        broker_credentials=credentials,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        datadir=str(settings.data_dir / service),
        web_enabled=False,
        broker_commit_interval=1.0,
        # Faust turns every record one poll returns into objects at once and holds them until its
        # agents take them: unbounded, a backlog's first poll held 50,000 records in memory. The rest
        # wait in aiokafka as fetched bytes (at most ``consumer_max_fetch_size`` per partition).
        broker_max_poll_records=1000,
        # A SIGKILLed worker keeps its partitions until its session expires: keep that short.
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.kafka_session_timeout_seconds / 3),
    )
    config.update(overrides)
    (settings.data_dir / service).mkdir(parents=True, exist_ok=True)
    app = faust.App(f"{settings.topic_prefix}handoff-{service}", **config)
    stop_fetching_unread_changelogs(app)
    return app


# --- fetches: only what the worker reads ---------------------------------------------------------
def unread_changelogs(app: faust.App) -> set[Any]:
    """The changelog partitions assigned to this worker that it does not read now: its own tables'
    (written by it, read only to recover) but not the standbys it keeps up to date."""
    recovery = app.tables.recovery
    return {tp for tp in app.consumer.assignment()
            if recovery._is_changelog_tp(tp) and tp not in recovery.standby_tps}


def stop_fetching_unread_changelogs(app: faust.App) -> None:
    """After every recovery, pause the unread changelog partitions in aiokafka itself.

    Faust assigns a worker its tables' changelog partitions and, once recovered, stops reading them,
    but its pause never reaches aiokafka: the fetcher goes on fetching them, and a fetched record
    nobody reads holds back the next fetch from that broker (aiokafka's ``prefetch_backoff``,
    100 ms): on one broker, every topic waits. It happened at the first write to each changelog
    partition after a start or rebalance. A rebalance gives aiokafka a fresh assignment (nothing
    paused), so the next recovery reads its changelogs as usual and this runs again after it.

    Faust's livelock detector then finds those partitions unfetched and logs "Aiokafka has not sent
    fetch request for TP(...-changelog...)" at ERROR every few seconds, all night: alerting on ERROR
    would page an operator for what is meant. The check skips the partitions paused here, and still
    checks every other one (``skip_in_liveness_check``)."""
    paused: set[Any] = set()

    @app.on_rebalance_complete.connect
    async def _pause_unread(_app: Any, **_kw: Any) -> None:
        unread = unread_changelogs(app)
        paused.clear()
        if unread:
            await app.consumer._thread.call_thread(_pause_in_aiokafka, app.consumer._thread._ensure_consumer(), unread)
            paused.update(unread)
            skip_in_liveness_check(app.consumer._thread, paused)
            log.debug("changelog_fetches_paused", partitions=len(unread))


def skip_in_liveness_check(thread: Any, partitions: set[Any]) -> None:
    """Make the consumer thread's ``verify_event_path`` (the livelock detector's check of one partition)
    pass over ``partitions`` (a set this worker keeps current): nobody fetches them, on purpose."""
    if getattr(thread, "_handoff_skips", None) is partitions:
        return
    check = type(thread).verify_event_path.__get__(thread)

    def verify_event_path(now: float, tp: Any) -> None:
        return None if tp in partitions else check(now, tp)

    thread.verify_event_path = verify_event_path
    thread._handoff_skips = partitions


async def _pause_in_aiokafka(consumer: Any, partitions: set[Any]) -> None:
    """In the consumer's thread: pause ``partitions`` and drop what was fetched of them already."""
    from aiokafka import TopicPartition

    tps = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    consumer.pause(*tps)
    for tp in tps:
        consumer._fetcher._records.pop(tp, None)


def fetch_state(app: faust.App) -> tuple[set[Any], set[Any]]:
    """(unread changelog partitions aiokafka may still fetch, unread changelog partitions it holds
    fetched records of): both empty when nothing can stall this worker's fetches."""
    consumer = app.consumer._thread._ensure_consumer()
    unread = {(tp.topic, tp.partition) for tp in unread_changelogs(app)}
    paused = {(tp.topic, tp.partition) for tp in consumer.paused()}
    held = {(tp.topic, tp.partition) for tp in consumer._fetcher._records}
    return unread - paused, unread & held


def internal_topics(app: faust.App, settings: Settings) -> tuple[TopicSpec, ...]:
    """Faust's own topics for ``app``: one compacted changelog per table, and the assignor's leader topic."""
    specs = [TopicSpec(table.changelog_topic.get_topic_name(), f"changelog of table {table.name}",
                       partitions=table.partitions or settings.topic_partitions,
                       config={"cleanup.policy": "compact"}) for table in app.tables.values()]
    specs.append(TopicSpec(f"{app.conf.id}-__assignor-__leader", "Faust leader election", partitions=1))
    return tuple(specs)


async def prepare_and_start(worker: Worker, settings: Settings) -> None:
    """Create our topics and the app's changelog topics with their partition counts, catch up the
    worker's read models, then start its app.

    Faust would declare its changelogs itself, but a table written in the moment after creation,
    while metadata still shows no partitions, fails with PartitionsMismatch.
    """
    app, followers = worker.app, worker.followers
    await ensure_topics(settings)
    await ensure_topics(settings, internal_topics(app, settings), qualify=False)
    for follower in followers:
        await follower.start()
        await follower.caught_up.wait()

    @app.on_before_shutdown.connect
    async def _stop_followers(_app, **_kw) -> None:
        for follower in followers:
            await follower.stop()

    await app.start()


def raw_topic(app: faust.App, spec: TopicSpec, settings: Settings) -> faust.TopicT:
    return app.topic(spec.qualified(settings.topic_prefix), key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=spec.partitions or settings.topic_partitions, internal=False)


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


TAIL_CHECK_SECONDS = 5.0


class BrokerGapReader:
    """The broker side of ``OffsetGuard``: the group's committed offset, read through the admin API
    (never joining or writing the group), and a range of offsets read by a consumer outside any
    group. Every call is bounded: a client that stops answering is replaced, and the caller retries."""

    TIMEOUT_SECONDS = 30.0

    def __init__(self, settings: Settings, group_id: str) -> None:
        self.settings = settings
        self.group_id = group_id
        self._admin = None
        self._consumer = None
        self._lock = asyncio.Lock()

    async def _clients(self):
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        if self._admin is None:
            self._admin = AIOKafkaAdminClient(**client_options(self.settings))
            await self._admin.start()
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(**client_options(self.settings), group_id=None,
                                              enable_auto_commit=False, auto_offset_reset="earliest")
            await self._consumer.start()
        return self._admin, self._consumer

    async def _bounded(self, work):
        async with self._lock:
            try:
                return await asyncio.wait_for(work(), self.TIMEOUT_SECONDS)
            except BaseException:
                await self.stop()  # start afresh on the retry
                raise

    async def baseline(self, topic: str, partition: int) -> int:
        from aiokafka import TopicPartition

        tp = TopicPartition(topic, partition)

        async def work() -> int:
            admin, consumer = await self._clients()
            committed = (await admin.list_consumer_group_offsets(self.group_id, partitions=[tp])).get(tp)
            if committed is not None and committed.offset >= 0:
                return committed.offset
            return (await consumer.beginning_offsets([tp]))[tp]

        return await self._bounded(work)

    async def end_offsets(self, topic: str, partitions: set[int]) -> dict[int, int]:
        """The offset after the last record of each of ``partitions`` now."""
        from aiokafka import TopicPartition

        async def work() -> dict[int, int]:
            _admin, consumer = await self._clients()
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            return {tp.partition: end for tp, end in ends.items()}

        return await self._bounded(work) if partitions else {}

    async def fetch(self, topic: str, partition: int, start: int, end: int) -> list[RawRecord]:
        from aiokafka import TopicPartition

        tp = TopicPartition(topic, partition)

        async def work() -> list[RawRecord]:
            _admin, consumer = await self._clients()
            consumer.assign([tp])
            consumer.seek(tp, start)
            records: list[RawRecord] = []
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if record.offset < end:
                        records.append(RawRecord(topic, partition, record.offset, record.key, record.value,
                                                 list(record.headers or [])))
            return records

        return await self._bounded(work)

    async def stop(self) -> None:
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        with contextlib.suppress(Exception):
            if consumer is not None:
                await consumer.stop()
        with contextlib.suppress(Exception):
            if admin is not None:
                await admin.close()


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


def offset_guard(app: faust.App, settings: Settings) -> OffsetGuard:
    """The app's one guard (its ``WorkerKit`` makes it once and passes it to every agent).

    A gap is seen when a later record arrives; records dropped at the tail of a partition (nothing
    after them yet) are caught by a check every few seconds (``StallWatch``): such a partition is
    sought back to the first record not processed, so the stream delivers them again (in the stream
    context, as usual)."""
    reader = BrokerGapReader(settings, app.conf.id)
    guard = OffsetGuard(reader.fetch, reader.baseline, reader.end_offsets)
    watch = StallWatch()

    @app.timer(TAIL_CHECK_SECONDS, on_leader=False, name="offset-guard-tail-check")
    async def _tail_check() -> None:
        idle = watch.interval_ended(guard.handled_total)
        for tp in list(app.consumer.assignment()):
            if tp.topic not in guard.topics:
                continue
            try:
                end = app.consumer.highwater(tp)
                expected = guard.next_offset.get((tp.topic, tp.partition))
                if expected is None and end:
                    # Asked once per assignment, not every tick: the stream's first record
                    # checks against the same committed offset.
                    expected = guard.next_offset[(tp.topic, tp.partition)] = await reader.baseline(
                        tp.topic, tp.partition)
            except Exception:
                log.warning("offset_guard_tail_check_failed", topic=tp.topic, partition=tp.partition)
                continue
            if watch.should_seek(tp, expected, end, idle):
                log.warning("partition_stalled_sought_back", topic=tp.topic, partition=tp.partition,
                            offset=expected, end=end)
                await app.consumer.seek(tp, expected)

    @app.on_partitions_revoked.connect
    async def _forget(_app, revoked, **_kw) -> None:
        guard.forget({(tp.topic, tp.partition) for tp in revoked})

    @app.on_before_shutdown.connect
    async def _stop_reader(_app, **_kw) -> None:
        await reader.stop()
    return guard


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
                 redo: Callable[[RawRecord], Awaitable[Any]], limit: int = 256) -> None:
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
                await self._redo(failed_raw)
                await self._acknowledge(failed_event, failed_raw)
            self.redone += len(again)


def consume(app: faust.App, spec: TopicSpec, settings: Settings, processor: RecordProcessor, guard: OffsetGuard,
            handler: Handler, expected: tuple[type, ...] | None = None, name: str | None = None) -> Any:
    """Register an agent that feeds every record of ``spec`` through ``processor`` to ``handler``,
    none passed over (see ``OffsetGuard``), acknowledged only once its events are written (see
    ``RecordsInFlight``)."""
    guard.topics.add(spec.qualified(settings.topic_prefix))

    async def agent(stream: faust.StreamT) -> None:
        async def acknowledge(event: Any, raw: RawRecord) -> None:
            await stream.ack(event)
            guard.handled(raw)

        in_flight = RecordsInFlight(acknowledge, lambda raw: processor.process(raw, handler, expected),
                                    settings.records_in_flight)
        stream.enable_acks = False  # acknowledged by ``in_flight``, after the record's writes
        try:
            async for event in stream.events():
                msg = event.message
                raw = RawRecord(msg.topic, msg.partition, msg.offset, msg.key, msg.value, _header_list(msg.headers))
                async for attempt in AsyncRetrying(wait=wait_exponential(multiplier=0.5, max=30), stop=stop_never,
                                                   reraise=True, before_sleep=lambda s: log.warning(
                                                       "offset_guard_retry", attempt=s.attempt_number)):
                    with attempt:  # the broker may be away: hold the partition rather than pass over records
                        missed_records = await guard.missing_before(raw)
                async with in_flight.lock:
                    for missed in missed_records:
                        await processor.process(missed, handler, expected)
                    if missed_records:
                        await acknowledge_recovered(app.consumer, raw.topic, raw.partition,
                                                    missed_records[0].offset, missed_records[-1].offset)
                    sends: list[Awaitable[Any]] = []
                    await processor.process(raw, handler, expected, sends=sends)
                    await in_flight.add(event, raw, sends)
        finally:
            await in_flight.close()

    return app.agent(raw_topic(app, spec, settings), name=name or f"consume-{spec.name}")(agent)


async def acknowledge_recovered(consumer: Any, topic: str, partition: int, first: int, last: int) -> None:
    """Offsets ``first``..``last`` were processed from the OffsetGuard's own read, so Faust holds no
    ack for them; and Faust commits nothing for a partition whose earliest ack lies beyond the
    committed offset. Without this, a partition whose first records after an assignment were
    recovered would never commit again (every restart would redo it, and its acks pile up in
    memory). Faust's gap bookkeeping, which it keeps for offsets its stream never sees, is the
    way to say "done" for them (pinned by tests/unit/test_offset_guard.py)."""
    from faust.types import TP

    await consumer._add_gap(TP(topic, partition), first, last)


def _header_list(headers: Any) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    return [(k, v) for k, v in items]


class OutboxTable(faust.Table):
    """A table that can tell when a key's last write is on the broker (its changelog record
    acknowledged). The outbox sends a delivery only then, so a crash can lose no "pending" record of a
    send that went out: after a restart, only the sends in flight at the crash go out again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_write: dict[Any, asyncio.Future] = {}

    def send_changelog(self, partition: int | None, key: Any, value: Any, key_serializer: Any = None,
                       value_serializer: Any = None) -> Any:
        sent = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self._last_write[key] = sent
        sent.add_done_callback(lambda done: self._last_write.pop(key, None) if self._last_write.get(key) is done else None)
        return sent

    def partition_for_key(self, key: Any) -> int | None:
        # A delivery records its outcome off the stream (no current event): on the partition whose
        # record asked for it, which its task carries (a revoked partition's deliveries are cancelled
        # before it goes, so this worker still owns it).
        if current_event() is None and (partition := source_partition.get()) is not None:
            return partition
        return super().partition_for_key(key)

    async def written(self, key: str) -> None:
        """Returns once ``key``'s last write is acknowledged by the broker (raises if it failed)."""
        sent = self._last_write.get(key)
        if sent is not None:
            await asyncio.shield(sent)


@dataclass
class Worker:
    """A built worker: its Faust app, and what it runs beside it, held here rather than pinned on the
    app: the record processor (counts, dead letters), the read models to catch up before it starts
    (``followers``), and its services by name (what tests and operators look inside)."""

    app: faust.App
    processor: RecordProcessor
    followers: list[Any] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)

    async def stop(self) -> None:
        await self.app.stop()


@dataclass
class WorkerKit:
    """What every service's worker is made of: its Faust app, the Avro codec, a publisher through the
    app's producer, a dead-lettering record processor and the offset guard, plus helpers for tables,
    consumers and audited delivery. ``build_worker`` functions then say only what is particular to
    them, and end with ``kit.worker()``."""

    service: str
    settings: Settings
    app: faust.App
    codec: AvroCodec
    publisher: FaustPublisher
    processor: RecordProcessor
    guard: OffsetGuard
    followers: list[Any] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, service: str, settings: Settings) -> WorkerKit:
        from services.messaging.avro import registry_from_url

        app = create_app(service, settings)
        codec = AvroCodec(registry_from_url(settings.schema_registry_url), max_record_bytes=settings.max_record_bytes)
        publisher = FaustPublisher(app, codec, settings.topic_prefix)
        dead_letters = DeadLetterSink(publisher, service, retry_base_seconds=settings.processing_retry_base_seconds)
        processor = RecordProcessor(codec, dead_letters, retries=settings.processing_retries,
                                    retry_base_seconds=settings.processing_retry_base_seconds)
        return cls(service, settings, app, codec, publisher, processor, offset_guard(app, settings))

    def worker(self) -> Worker:
        return Worker(self.app, self.processor, self.followers, self.services)

    def follow(self, follower: Any) -> None:
        """A read model this worker's services consult: caught up before the worker starts, stopped with it."""
        self.followers.append(follower)

    def table(self, name: str) -> CompactValues:
        """A changelog-backed table, partitioned like the topics (JSON keys and values, the values
        held in memory as their JSON bytes)."""
        # value_type=bytes: the changelog takes the values as they are. They are the JSON bytes Faust's
        # JSON serializer wrote for the dicts before, so changelogs written before still recover.
        return CompactValues(self.app.Table(name, default=None, partitions=self.settings.topic_partitions,
                                            value_type=bytes))

    def outbox_table(self, name: str) -> CompactValues:
        """The table of an outbox (``delivery``): one that can tell when a write is on the broker."""
        return CompactValues(self.app.tables.add(OutboxTable(
            self.app, name=name, default=None, beacon=self.app.tables.beacon,
            partitions=self.settings.topic_partitions, value_type=bytes)))

    def consume(self, spec: TopicSpec, handler: Handler, expected: tuple[type, ...], name: str | None = None) -> Any:
        return consume(self.app, spec, self.settings, self.processor, self.guard, handler, expected, name)

    def subscribe(self, subscriptions: tuple[Subscription, ...], owners: dict[str, Any]) -> None:
        """Consume each subscription's topic, every event going to its owner's registered handler."""
        self.services.update(owners)
        for sub in subscriptions:
            owner, handlers = owners[sub.owner], sub.handlers

            async def handle(event: Any, owner: Any = owner, handlers: Any = handlers) -> Any:
                return await dispatch(owner, handlers, event)

            self.consume(sub.topic, handle, sub.event_types, sub.name)

    def every(self, seconds: float, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fn`` on a timer on every worker (each acts only on what its own tables hold)."""

        async def tick() -> None:
            await fn()

        self.app.timer(seconds, on_leader=False, name=f"{self.service}-{fn.__name__}")(tick)

    def delivery(self, deliveries, source: TopicSpec, channels: dict | None = None, report=None):
        """Idempotent delivery over the real channels (or ``channels``), every attempt audited.

        ``deliveries`` is the outbox table; ``source`` the topic whose events request deliveries
        (the outbox is partitioned like it). After every recovery (start, crash, rebalance) what
        was pending on the partitions this worker now owns is sent again; on a revocation what is
        in flight stops, for the new owner to finish."""
        from services.delivery.channels import build_channels, delivery_http_client
        from services.kernel.topics import AUDIT
        from services.messaging.outbox import IdempotentDelivery

        http = delivery_http_client(self.settings)
        channels = channels or build_channels(self.settings, http)

        @self.app.on_before_shutdown.connect
        async def _close_connections(_app, **_kw) -> None:
            await http.aclose()
            for channel in channels.values():
                if hasattr(channel, "close"):
                    await channel.close()

        async def audit(record) -> None:
            await self.publisher.publish(AUDIT, record.subject_id, record)

        delivery = IdempotentDelivery(channels, deliveries,
                                      self.settings.delivery_attempts, self.settings.delivery_backoff_seconds,
                                      audit=audit, service=self.service,
                                      concurrency=self.settings.delivery_concurrency, report=report,
                                      written=deliveries.written if isinstance(getattr(deliveries, "raw", None), OutboxTable) else None)
        topic_name = source.qualified(self.settings.topic_prefix)
        resuming: set[asyncio.Task] = set()

        async def resume_once_read(owned: set[int], recovered: set[str]) -> None:
            # What is pending in the recovered table includes deliveries that completed just before a
            # crash: their final attempt events lie on the source partitions past the committed offset.
            # Read those first (they settle them); what is still pending of ``recovered`` then was in
            # flight, and only that is sent again, so a crash resends no more than the sends it
            # interrupted. (A delivery requested since recovery is sent by its request, not here.)
            async for attempt in AsyncRetrying(wait=wait_exponential(multiplier=0.5, max=30), stop=stop_never,
                                               reraise=True):
                with attempt:  # the broker may be away: keep trying rather than leave them pending
                    await self.guard.wait_until_handled(topic_name, owned)
            delivery.resume(lambda partition: partition is None or partition in owned, among=recovered)

        def stop_resuming() -> None:
            for task in resuming:
                task.cancel()

        @deliveries.on_recover
        async def _resume_pending() -> None:
            owned = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic_name}
            stop_resuming()
            task = asyncio.get_running_loop().create_task(resume_once_read(owned, delivery.pending()),
                                                          name=f"resume {deliveries.name}")
            resuming.add(task)
            task.add_done_callback(resuming.discard)

        @self.app.on_partitions_revoked.connect
        async def _stop_revoked(_app, revoked, **_kw) -> None:
            stop_resuming()  # the next recovery starts it again for what this worker then owns
            await delivery.cancel({tp.partition for tp in revoked if tp.topic == topic_name})

        @self.app.on_before_shutdown.connect
        async def _stop_sending(_app, **_kw) -> None:
            stop_resuming()
            await delivery.close()

        return delivery
