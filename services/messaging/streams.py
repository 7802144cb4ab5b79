"""Stream processing on Faust: the app factory, the one way every service consumes a topic, and
everything that touches Faust's or aiokafka's internals (pinned, and checked by
tests/unit/test_faust_internals.py).

Faust acks a message whose agent raised, which would drop it silently. Here agents never raise: each
record goes through ``records.RecordProcessor`` (retries, then the dead-letter topic), which knows
nothing of Faust; moving to another engine would change this module only.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.streams import _current_event, current_event
from tenacity import AsyncRetrying, stop_never, wait_exponential

from services.kernel.bus import Subscription, dispatch
from services.kernel.clock import Clock
from services.kernel.store import CompactValues
from services.kernel.topics import TopicSpec
from services.messaging.avro import AvroCodec
from services.messaging.kafka import client_options, correlation_headers, ensure_topics, hand_to_producer
from services.messaging.outbox import source_partition
from services.messaging.records import (
    DeadLetterSink,
    OffsetGuard,
    RawRecord,
    RecordProcessor,
    RecordsInFlight,
    StallWatch,
    handled_headers,
)
from services.messaging.sealing import SealedValues, Sealer, handled_subject
from services.messaging.subject_keys import LetterSealer, SubjectKeys
from services.platform.crypto import key_provider
from services.platform.logs import get_logger
from services.platform.settings import Settings

log = get_logger(__name__)

Handler = Callable[[Any], Awaitable[None]]


class FaustPublisher:
    """Publishes from inside a Faust worker through the app's own producer (acks=all). While a record
    is handled its events are sent together (``sends_awaited_together``); elsewhere (timers) each is
    awaited before the next."""

    def __init__(self, app: faust.App, codec: AvroCodec, prefix: str = "") -> None:
        self.app = app
        self.codec = codec
        self.prefix = prefix

    async def publish(self, topic: TopicSpec, key: str, event: Any,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
        value = await self.codec.encode(event, topic.qualified(self.prefix), key)
        await hand_to_producer(lambda: self.app.producer.send(topic.qualified(self.prefix), key.encode(), value, None,
                                                              None, correlation_headers(topic, headers)),
                               after=self.codec.landing(key))


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
        producer_linger=settings.kafka_producer_linger_ms / 1000,
        datadir=str(settings.data_dir / service),
        web_enabled=False,
        broker_commit_interval=settings.kafka_commit_interval_seconds,
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
    """Make Faust's pause and resume of its changelog partitions reach aiokafka.

    Faust pauses a changelog partition once it has recovered it (and resumes it to recover it again
    after a rebalance), but only in its own bookkeeping: the aiokafka fetcher goes on fetching it, and a
    fetched record nobody reads holds back the next fetch from that broker (aiokafka's
    ``prefetch_backoff``, 100 ms): on one broker, every topic waits. It happened at the first write to
    each changelog partition after a start or rebalance.

    So every time Faust pauses or resumes partitions, and when a recovery ends, the aiokafka consumer is
    brought to the same state, in its own thread (``_match_faust_pauses``): a changelog partition is
    paused there exactly while Faust has it paused. The state is read when the change is made, not when
    it was asked for: a pause asked for at the end of one recovery and carried out after the next
    rebalance began cannot keep the next recovery from reading (it did: a worker that took over a
    stopped worker's partitions waited for its changelogs for minutes, its timers with it), because the
    next recovery's resume brings the state back.

    Faust's livelock detector would find the paused partitions unfetched and log "Aiokafka has not sent
    fetch request for TP(...-changelog...)" at ERROR every few seconds, all night: alerting on ERROR
    would page an operator for what is meant. The check skips the partitions paused here, and still
    checks every other one (``skip_in_liveness_check``)."""
    consumer = app.consumer
    paused: set[Any] = set()
    syncs: set[asyncio.Future[Any]] = set()

    async def match() -> None:
        thread = consumer._thread
        try:
            await thread.call_thread(_match_faust_pauses, app, thread._ensure_consumer(), paused)
        except Exception as exc:  # not started, or stopping: the next pause, resume or recovery matches again
            log.debug("changelog_pauses_not_matched", error=type(exc).__name__)
            return
        skip_in_liveness_check(thread, paused)

    def match_soon() -> None:
        sync = asyncio.ensure_future(match())
        syncs.add(sync)
        sync.add_done_callback(syncs.discard)

    def matched(change: Callable[[Iterable[Any]], None]) -> Callable[[Iterable[Any]], None]:
        def change_then_match(tps: Iterable[Any]) -> None:
            change(tps)
            match_soon()
        return change_then_match

    consumer.pause_partitions = matched(consumer.pause_partitions)
    consumer.resume_partitions = matched(consumer.resume_partitions)

    @app.on_rebalance_complete.connect
    async def _match_after_recovery(_app: Any, **_kw: Any) -> None:
        await match()


async def _match_faust_pauses(app: faust.App, consumer: Any, paused: set[Any]) -> None:
    """In the consumer's thread: pause in aiokafka the changelog partitions Faust has paused (dropping
    what was fetched of them already), resume the others, and leave ``paused`` naming the paused ones.
    Nothing here awaits: it sees one state of the assignment and of Faust's bookkeeping."""
    recovery = app.tables.recovery
    faust_paused = set(app.consumer._paused_partitions)
    already = consumer.paused()
    changelogs = [tp for tp in consumer.assignment() if recovery._is_changelog_tp(tp)]
    want = {tp for tp in changelogs if tp in faust_paused and tp not in recovery.standby_tps}
    for tp in changelogs:
        if tp in want and tp not in already:
            consumer.pause(tp)
            consumer._fetcher._records.pop(tp, None)
        elif tp not in want and tp in already:
            consumer.resume(tp)
    paused.clear()
    paused.update(want)


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


async def prepare_and_start(worker: Worker, settings: Settings, topics: Iterable[TopicSpec]) -> None:
    """Create our ``topics`` (every topic of the system: the composition root's) and the app's changelog topics
    with their partition counts, catch up the worker's read models, then start its app.

    Faust would declare its changelogs itself, but a table written in the moment after creation,
    while metadata still shows no partitions, fails with PartitionsMismatch.
    """
    app, followers = worker.app, worker.followers
    await ensure_topics(settings, topics)
    await ensure_topics(settings, internal_topics(app, settings), qualify=False)
    await asyncio.gather(*(follower.start() for follower in followers))  # at once: round trips, not work
    await asyncio.gather(*(follower.caught_up.wait() for follower in followers))

    @app.on_before_shutdown.connect
    async def _stop_followers(_app, **_kw) -> None:
        for follower in followers:
            await follower.stop()

    await app.start()


def raw_topic(app: faust.App, spec: TopicSpec, settings: Settings) -> faust.TopicT:
    return app.topic(spec.qualified(settings.topic_prefix), key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=spec.partitions or settings.topic_partitions, internal=False)



TAIL_CHECK_SECONDS = 5.0
HELD_RELEASE_SECONDS = 30.0  # how often held deliveries are looked at: quiet hours end on the minute, not the second


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

        async def handled_again(event: Any, raw: RawRecord) -> bool:
            # Records are handled again in the acknowledging task, whose Faust current event is the one
            # current when that task started: a table written then would take that record's partition (or,
            # its event gone, refuse the write). It is this record's while it is handled again.
            token = _current_event.set(weakref.ref(event))
            try:
                return await processor.process(raw, handler, expected)
            finally:
                _current_event.reset(token)

        in_flight = RecordsInFlight(acknowledge, handled_again, settings.records_in_flight)
        stream.enable_acks = False  # acknowledged by ``in_flight``, after the record's writes
        try:
            async for event in stream.events():
                msg = event.message
                raw = RawRecord.of(msg.topic, msg.partition, msg.offset, msg.key, msg.value, msg.headers)
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


MOVED_HEADER = "handoff_moved_from_partition"  # a record moved to its key's partition is never moved again


def key_partition(key: str, partitions: int) -> int:
    """The partition Handoff's producers (aiokafka's default, as Java clients) write ``key`` to: murmur2."""
    return DefaultPartitioner()(key.encode(), list(range(partitions)), [])


def on_its_keys_partition(spec: TopicSpec, handler: Handler, publisher: FaustPublisher, partitions: int) -> Handler:
    """``handler`` for a topic outside producers write (a CAD's own Kafka client), behind a check of the record's
    partition. Deduplication by key (one referral per CAD event) needs every copy of an event on one partition,
    but clients disagree on where a key goes: librdkafka (Confluent's clients) hashes with CRC32 by default,
    Java clients and aiokafka with murmur2. A record on a partition its key does not map to is written again,
    sealed like anything Handoff writes, under its key (so to the key's partition) and handled there, once; the
    common case (the HTTP intake, a Java or aiokafka producer) costs nothing more."""

    async def handle(event: Any) -> None:
        key, partition = handled_subject.get(), source_partition.get()
        moved = any(name == MOVED_HEADER for name, _ in handled_headers.get())
        home = None if key is None else key_partition(key, partitions)
        if home is None or partition is None or moved or home == partition:
            await handler(event)
            return
        await publisher.publish(spec, key, event, headers=[(MOVED_HEADER, str(partition).encode())])
        log.info("record_moved_to_its_keys_partition", topic=spec.name, partition=partition, to=home)

    return handle


async def acknowledge_recovered(consumer: Any, topic: str, partition: int, first: int, last: int) -> None:
    """Offsets ``first``..``last`` were processed from the OffsetGuard's own read, so Faust holds no
    ack for them; and Faust commits nothing for a partition whose earliest ack lies beyond the
    committed offset. Without this, a partition whose first records after an assignment were
    recovered would never commit again (every restart would redo it, and its acks pile up in
    memory). Faust's gap bookkeeping, which it keeps for offsets its stream never sees, is the
    way to say "done" for them (pinned by tests/unit/test_offset_guard.py)."""
    from faust.types import TP

    await consumer._add_gap(TP(topic, partition), first, last)


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
    keys: SubjectKeys
    followers: list[Any] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, service: str, settings: Settings) -> WorkerKit:
        from services.messaging.avro import registry_from_url

        app = create_app(service, settings)
        provider = key_provider(settings)
        keys = SubjectKeys(settings, provider)  # followed first: every record read or written may need a key
        codec = AvroCodec(registry_from_url(settings.schema_registry_url), max_record_bytes=settings.max_record_bytes,
                          sealer=Sealer(keys, settings.topic_prefix) if settings.seal_personal_values else None)
        publisher = FaustPublisher(app, codec, settings.topic_prefix)
        keys.writes_with(publisher)
        dead_letters = DeadLetterSink(publisher, service, retry_base_seconds=settings.processing_retry_base_seconds,
                                      sealer=LetterSealer(publisher, provider))
        processor = RecordProcessor(codec, dead_letters, retries=settings.processing_retries,
                                    retry_base_seconds=settings.processing_retry_base_seconds)

        @app.on_before_shutdown.connect
        async def _stop_keys(_app, **_kw) -> None:  # prepare_and_start stops them too; a bare test's app does not
            await keys.stop()

        return cls(service, settings, app, codec, publisher, processor, offset_guard(app, settings), keys,
                   followers=[keys])

    def worker(self) -> Worker:
        return Worker(self.app, self.processor, self.followers, self.services)

    def follow(self, follower: Any) -> None:
        """A read model this worker's services consult: caught up before the worker starts, stopped with it."""
        self.followers.append(follower)

    def table(self, name: str, personal: bool = True) -> CompactValues:
        """A changelog-backed table, partitioned like the topics (JSON keys and values, the values
        held in memory as their JSON bytes), sealed when it holds ``personal`` values: a table of states and
        times only (figures, which an erasure leaves as they are) is not."""
        # value_type=bytes: the changelog takes the values as they are. They are the JSON bytes Faust's
        # JSON serializer wrote for the dicts before, so changelogs written before still recover.
        table = self.app.Table(name, default=None, partitions=self.settings.topic_partitions, value_type=bytes)
        return self._sealed(table, name, keyed_by_subject=True) if personal else CompactValues(table)

    def _sealed(self, table: Any, name: str, keyed_by_subject: bool = False) -> CompactValues:
        """Sealed, unless the benchmark's comparison turned sealing off. A service's table is keyed by the subject
        of its entries (a referral, a notice, a walk-in): each entry under that subject's key."""
        if not self.settings.seal_personal_values:
            return CompactValues(table)
        return SealedValues(table, self.keys, name, keyed_by_subject=keyed_by_subject)

    def outbox_table(self, name: str) -> CompactValues:
        """The table of an outbox (``delivery``): one that can tell when a write is on the broker."""
        return self._sealed(self.app.tables.add(OutboxTable(
            self.app, name=name, default=None, beacon=self.app.tables.beacon,
            partitions=self.settings.topic_partitions, value_type=bytes)), name)

    def consume(self, spec: TopicSpec, handler: Handler, expected: tuple[type, ...], name: str | None = None) -> Any:
        if spec.plain_from_outside:  # outside producers partition by their own client's rule
            handler = on_its_keys_partition(spec, handler, self.publisher, self.settings.topic_partitions)
        return consume(self.app, spec, self.settings, self.processor, self.guard, handler, expected, name)

    def subscribe(self, subscriptions: tuple[Subscription, ...], owners: dict[str, Any]) -> None:
        """Consume each subscription's topic, every event going to its owner's registered handler."""
        self.services.update(owners)
        for sub in subscriptions:
            owner, handlers = owners[sub.owner], sub.handlers

            async def handle(event: Any, owner: Any = owner, handlers: Any = handlers) -> Any:
                return await dispatch(owner, handlers, event)

            self.consume(sub.topic, handle, sub.event_types, sub.name)

    def owner_of(self, spec: TopicSpec) -> Callable[[str], bool]:
        """Whether this worker owns the partition of ``spec`` a key lands on (it must consume ``spec``): for a timer
        that acts for keys it keeps no table of, so that one worker acts for each."""
        name, partitions = spec.qualified(self.settings.topic_prefix), spec.partitions or self.settings.topic_partitions

        def owns(key: str) -> bool:
            return any(tp.topic == name and tp.partition == key_partition(key, partitions)
                       for tp in self.app.assignor.assigned_actives())
        return owns

    def every(self, seconds: float, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fn`` on a timer on every worker (each acts only on what its own tables hold)."""

        async def tick() -> None:
            await fn()

        self.app.timer(seconds, on_leader=False, name=f"{self.service}-{fn.__name__}")(tick)

    def delivery(self, deliveries, source: TopicSpec, channels: dict | None = None, report=None,
                 clock: Clock | None = None):
        """Idempotent delivery over the real channels (or ``channels``), every attempt audited.

        ``deliveries`` is the outbox table; ``source`` the topic whose events request deliveries
        (the outbox is partitioned like it). After every recovery (start, crash, rebalance) what
        was pending on the partitions this worker now owns is sent again; on a revocation what is
        in flight stops, for the new owner to finish. What is held (a low-urgency message in its person's
        quiet hours) goes out on a timer once its time comes, at the worker's ``clock``."""
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
                                      written=deliveries.written if isinstance(getattr(deliveries, "raw", None), OutboxTable) else None,
                                      clock=clock)

        async def release_held() -> None:
            delivery.release_held()

        release_held.__name__ = f"release_held_{deliveries.name}"
        self.every(HELD_RELEASE_SECONDS, release_held)
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
