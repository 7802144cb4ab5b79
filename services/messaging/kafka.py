"""Kafka adapters: client options, explicit topic creation, and event publishers.

``Publisher`` is the one way code outside Faust agents puts an event on a topic: it encodes with
the Avro codec, keys the record, and copies the current correlation id into the headers.
``InMemoryPublisher`` records instead of sending, for unit tests of entrypoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.kernel.topics import TopicSpec, retention_overrides
from services.messaging.avro import AvroCodec
from services.messaging.sealing import subject_of
from services.platform.logs import CORRELATION_HEADER, current_correlation_id, get_logger
from services.platform.settings import Settings

log = get_logger(__name__)
TOPIC_AUTHORIZATION_FAILED = 29  # the Kafka protocol's error code


class TopicMismatch(RuntimeError):
    pass


class TopicAccessRefused(TopicMismatch):
    """The broker refused this process's principal a topic: not one of its service's (see services.access)."""


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every aiokafka client (TLS and SASL from settings)."""
    opts: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers,
                            "security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
        if settings.kafka_ssl_certfile:
            ctx.load_cert_chain(str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
        opts["ssl_context"] = ctx
    if settings.kafka_security_protocol.startswith("SASL"):
        opts["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        opts["sasl_plain_username"] = settings.kafka_sasl_username
        opts["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    return opts


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec], qualify: bool = True) -> list[str]:
    """Create missing topics with their partition counts and configs; refuse a partition mismatch. ``specs``:
    every topic of the system comes from the composition root (``services.runtime.TOPICS``), which imports
    every service and so knows every topic; a process that imported fewer would create fewer.

    ``qualify=False`` takes the names as they are (Faust's own topics already carry the prefix).
    Returns the names of the topics it created.
    """
    prefix = settings.topic_prefix if qualify else ""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        specs = list(specs)
        overrides = retention_overrides(settings.audit_retention_days, settings.child_data_retention_days)
        wanted = [
            NewTopic(spec.qualified(prefix), spec.partitions or settings.topic_partitions,
                     settings.topic_replication_factor,
                     topic_configs={"min.insync.replicas": str(settings.min_insync_replicas), **spec.config,
                                    **overrides.get(spec.name, {})})
            for spec in specs if spec.qualified(prefix) not in existing
        ]
        refused = await _create(admin, wanted)
        specs = [spec for spec in specs if spec.qualified(prefix) not in refused]
        counts = await _partition_counts(admin, [s.qualified(prefix) for s in specs])
        for spec in specs:
            expected = spec.partitions or settings.topic_partitions
            name = spec.qualified(prefix)
            if counts[name] != expected:
                raise TopicMismatch(f"topic {name} has {counts[name]} partitions; settings say {expected}")
        created = [t.name for t in wanted if t.name not in refused]
        if created:
            log.info("topics_created", topics=created)
        return created
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, wanted: list[NewTopic]) -> set[str]:
    """Create ``wanted``; return those the broker refused this principal. Under ACLs a service may neither see nor
    create another service's topics: the administrator creates them (handoff topics create), and this process
    checks its own."""
    if not wanted:
        return set()
    try:
        response = await admin.create_topics(wanted)
    except TopicAlreadyExistsError:
        response = None  # another process created them first
    refused = set()
    for name, code, *rest in getattr(response, "topic_errors", []):
        if code == TOPIC_AUTHORIZATION_FAILED:
            refused.add(name)
        elif code not in (0, TopicAlreadyExistsError.errno):
            raise TopicMismatch(f"creating topic {name} failed: error {code} {rest[-1] if rest else ''}")
    if refused:
        log.info("topics_left_to_the_administrator", topics=sorted(refused))
    return refused


async def create_acls(settings: Settings, grants: Iterable[Any], timeout: float = 30.0) -> int:
    """Grant each ``grant`` (principal, resource, name, pattern, operation: ``services.access.Grant``) as an ALLOW
    ACL, as the broker's administrator (``settings`` carry its credentials). aiokafka has no ACL API: this sends
    the protocol's CreateAcls request (API 30, version 1 up: prefixed patterns) that it defines, all the grants in
    one request (one at a time, each waits for its own commit to the cluster metadata), then waits until the
    broker's authorizer applies them (DescribeAcls shows the last), so that a service started next is not
    refused. Returns the count."""
    from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest

    allow, any_host = 3, "*"
    creations = [(int(g.resource), g.name, int(g.pattern), g.principal, any_host, int(g.operation), allow)
                 for g in grants]

    class CreateAclsAtOnce(CreateAclsRequest):
        def build(self, request_struct_class):
            return request_struct_class(creations)

    if not creations:
        return 0
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        response = await admin._send_request(CreateAclsAtOnce(*creations[0]))
        for creation, (code, message) in zip(creations, response.creation_responses, strict=True):
            if code:
                raise RuntimeError(f"granting {creation} failed: error {code} {message}")
        deadline = asyncio.get_running_loop().time() + timeout
        while not (await admin._send_request(DescribeAclsRequest(*creations[-1]))).resources:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the broker had not applied the grants after {timeout}s")
            await asyncio.sleep(0.05)
        return len(creations)
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> dict[str, int]:
    """Partition count per topic, waiting out the moment after creation when metadata is not yet complete."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(names)
        refused = sorted(t["topic"] for t in described if t["error_code"] == TOPIC_AUTHORIZATION_FAILED)
        if refused:
            log.warning("topic_access_refused", topics=refused, action="describe")
            raise TopicAccessRefused(f"the broker refuses this principal the topics {refused}")
        counts = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0 and t["partitions"]}
        if len(counts) == len(names) or asyncio.get_running_loop().time() > deadline:
            missing = set(names) - set(counts)
            if missing:
                raise TopicMismatch(f"topics not available after {timeout}s: {sorted(missing)}")
            return counts
        await asyncio.sleep(0.1)


async def topic_partition_counts(settings: Settings, names: list[str], timeout: float = 30.0) -> dict[str, int]:
    """Partition count of each named topic, waiting up to ``timeout`` for them to exist."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return await _partition_counts(admin, names, timeout)
    finally:
        await admin.close()


def correlation_headers(topic: TopicSpec, extra: list[tuple[str, bytes]] | None = None) -> list[tuple[str, bytes]]:
    """The headers of a record on ``topic``: ``extra`` and the current correlation id, or none at all on a
    de-identified topic (a correlation id there would link a public report back to its event)."""
    if topic.deidentified:
        return []
    headers = list(extra or [])
    cid = current_correlation_id()
    if cid and not any(k == CORRELATION_HEADER for k, _ in headers):
        headers.append((CORRELATION_HEADER, cid.encode()))
    return headers


# The sends a record's handler made and has not awaited: set only while a record is handled.
sends_in_flight: ContextVar[list[Awaitable[Any]] | None] = ContextVar("sends_in_flight", default=None)


# The last send of the record being handled that waits for something (``hand_to_producer``): later ones go behind it.
_held_back: ContextVar[asyncio.Future[None] | None] = ContextVar("_held_back", default=None)


async def hand_to_producer(send: Callable[[], Awaitable[Awaitable[Any]]], after: Awaitable[Any] | None) -> None:
    """Hand one record to the producer (``send`` enqueues it and gives back its acknowledgement), once ``after`` (the
    write of the key it is sealed under, still under way) is done. The producer sends each partition on its own, so
    a record handed over beside its key can land first; a crash between the two would leave a record nobody can
    open. While a record is handled this holds nothing up: the send waits in a task among the record's sends (the
    record is acknowledged once it is written), and the handler's later sends queue behind it, in order."""
    pending = sends_in_flight.get()
    if pending is None:
        if after is not None:
            await asyncio.shield(after)
        await (await send())
        return
    before = _held_back.get()
    if before is not None and before.done():
        before = None
    if after is None and before is None:
        pending.append(await send())
        return
    handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def held_back() -> None:
        try:
            for waiting in (before, after):
                if waiting is not None:
                    await asyncio.shield(waiting)
            acknowledged = await send()
        finally:
            if not handed.done():
                handed.set_result(None)
        await acknowledged

    _held_back.set(handed)
    pending.append(asyncio.get_running_loop().create_task(held_back()))


class Publisher(Protocol):
    async def publish(self, topic: TopicSpec, key: str, event: Any) -> None: ...


class KafkaPublisher:
    """Publishes events with an idempotent, acks=all aiokafka producer."""

    def __init__(self, settings: Settings, codec: AvroCodec, **producer_options: Any) -> None:
        self.codec = codec
        self.prefix = settings.topic_prefix
        self.options = {"acks": "all", "enable_idempotence": True, "linger_ms": settings.kafka_producer_linger_ms,
                        "request_timeout_ms": 15000,
                        **client_options(settings), **producer_options}
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # aiokafka binds to the running loop, so the producer is made here, not in __init__.
        self.producer = AIOKafkaProducer(**self.options)
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def publish(self, topic: TopicSpec, key: str, event: Any) -> None:
        value = await self.codec.encode(event, topic.qualified(self.prefix), key)
        await hand_to_producer(lambda: self.producer.send(topic.qualified(self.prefix), value=value, key=key.encode(),
                                                          headers=correlation_headers(topic)),
                               after=self.codec.landing(key))

    async def send_raw(self, topic: TopicSpec, value: bytes | None, key: bytes | None = None,
                       headers: list[tuple[str, bytes]] | None = None) -> None:
        await self.producer.send_and_wait(topic.qualified(self.prefix), value=value, key=key,
                                          headers=correlation_headers(topic, headers))


@dataclass
class PublishedRecord:
    topic: str
    key: str
    event: Any
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class InMemoryPublisher:
    """Keeps what would have been published; the same interface as ``KafkaPublisher``."""

    def __init__(self) -> None:
        self.records: list[PublishedRecord] = []

    async def publish(self, topic: TopicSpec, key: str, event: Any) -> None:
        self.records.append(PublishedRecord(topic.name, key, event, correlation_headers(topic)))

    def events(self, cls: type | None = None) -> list[Any]:
        return [r.event for r in self.records if cls is None or isinstance(r.event, cls)]


# Enough that the broker holds a follower's fetch for its whole wait at any rate a site sees; a catch-up after a
# start, with more than this to read, is answered at once.
FOLLOWER_FETCH_MIN_BYTES = 1024 * 1024


def follower_fetch_options(settings: Settings) -> dict[str, Any]:
    """A read model's fetches: held by the broker up to ``kafka_follower_fetch_wait_ms`` for more records (none: aiokafka's
    defaults, answered as soon as one record is there)."""
    wait = settings.kafka_follower_fetch_wait_ms
    return {"fetch_min_bytes": FOLLOWER_FETCH_MIN_BYTES, "fetch_max_wait_ms": wait} if wait else {}


class TopicFollower:
    """Reads topics from the beginning on every partition (no consumer group) and hands each decoded
    event to ``on_event``: the feed of a read model that every API replica keeps in full.

    ``caught_up`` is set once everything that existed at start has been read. Records that do not
    decode are skipped here: the owning worker dead-letters them.

    With ``fetch_every`` (seconds), once caught up it fetches only when asked (``sync``) and that often: a
    consumer that fetches all the time answers each record written one at a time with a fetch of its own (about
    a millisecond of a process's time each), where a sync reads everything written since in one.
    """

    def __init__(self, settings: Settings, codec: AvroCodec, specs: tuple[TopicSpec, ...], on_event,
                 on_idle=None, fetch_every: float | None = None,
                 personal: bool | frozenset[str] = True) -> None:
        self.settings = settings
        self.codec = codec
        self.names = [s.qualified(settings.topic_prefix) for s in specs]
        self.on_event = on_event
        # False: a read model that needs no personal value never opens one; a set of leaves: it opens only those
        self.personal = personal
        self.on_idle = on_idle  # called after each batch (and before caught_up is set)
        self.fetch_every = fetch_every
        self.caught_up = asyncio.Event()
        self._consumer = None
        self._task: asyncio.Task | None = None
        self._refresh: asyncio.Task | None = None
        self._handing_on = False  # a batch taken from the consumer is being handed on
        self._asked = 0  # syncs waiting: while there are any, a follower that fetches when asked fetches

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        # A follower that fetches when asked (the keys) is one a record waits for: the broker answers it at once.
        held = follower_fetch_options(self.settings) if self.fetch_every is None else {}
        self._consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest",
                                          **client_options(self.settings), **held)
        await self._consumer.start()
        # The topics may not exist yet (a worker creates them as it starts): wait for them, briefly.
        counts = await topic_partition_counts(self.settings, self.names, timeout=60)
        partitions = [TopicPartition(name, p) for name in self.names for p in range(counts[name])]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._partitions = partitions
        ends = await self._consumer.end_offsets(partitions)
        self._task = asyncio.create_task(self._run(ends))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def sync(self, timeout: float = 10.0, topics: set[str] | None = None) -> bool:
        """Wait until everything written to the topics (or to those of ``topics`` it follows) before this call has
        been handed on (False if that took longer than ``timeout``): a record that names another just written (a
        key) finds it here, and a page that confirms an action shows its effect (``runtime.caught_up``)."""
        self._asked += 1
        self._fetching()
        try:
            ends = await self._consumer.end_offsets(
                [tp for tp in self._partitions if topics is None or tp.topic in topics])
            deadline = asyncio.get_running_loop().time() + timeout
            for tp, end in ends.items():
                while self._handing_on or await self._consumer.position(tp) < end:
                    if asyncio.get_running_loop().time() > deadline:
                        return False
                    await asyncio.sleep(0.005)
            return True
        finally:
            self._asked -= 1
            self._fetching()

    def _fetching(self) -> None:
        """A follower that fetches when asked fetches while a sync waits (and until it has caught up at start)."""
        if self.fetch_every is None or self._consumer is None or not self.caught_up.is_set():
            return
        if self._asked:
            self._consumer.resume(*self._partitions)
        else:
            self._consumer.pause(*self._partitions)

    async def _refreshed(self) -> None:
        from services.platform.logs import get_logger

        while True:
            await asyncio.sleep(self.fetch_every)
            try:
                await self.sync()
            except Exception as exc:  # the broker away: the next round tries again
                get_logger(__name__).warning("follower_refresh_failed", topics=self.names, error_type=type(exc).__name__)

    async def _run(self, ends) -> None:
        from services.kernel.errors import InvalidRecord
        from services.platform.logs import correlation_from_headers, correlation_scope, get_logger

        # Caught up by position, not by the offset of the last record read: a compacted or retention-trimmed
        # partition may have no record left at its last offsets (a follower waited for them for ever).
        pending = set(ends)
        while True:
            for tp in list(pending):
                if await self._consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if not pending and not self.caught_up.is_set():
                self.caught_up.set()
                if self.fetch_every is not None:
                    self._fetching()
                    self._refresh = asyncio.create_task(self._refreshed())
            batch = await self._consumer.getmany(timeout_ms=500)
            self._handing_on = True  # set as the positions move past the batch: sync waits for its end
            for records in batch.values():
                for record in records:
                    try:
                        event = await self.codec.decode(record.value, topic=record.topic,
                                                        subject=subject_of(record.key),
                                                        erased_ok=True, personal=self.personal)
                    except InvalidRecord:
                        continue
                    except Exception as exc:  # a reader that stops reads nothing more: log it and go on
                        get_logger(__name__).error("follower_record_unreadable", topic=record.topic,
                                                   offset=record.offset, error_type=type(exc).__name__)
                        continue
                    with correlation_scope(correlation_from_headers(record.headers)):
                        try:
                            self.on_event(event)
                        except Exception as exc:  # one record a read model cannot take must not stop its feed
                            get_logger(__name__).error("follower_record_not_applied", topic=record.topic,
                                                       offset=record.offset, error_type=type(exc).__name__)
            self._handing_on = False
            if self.on_idle is not None and batch:
                self.on_idle()

    async def stop(self) -> None:
        for task in (self._refresh, self._task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._consumer:
            await self._consumer.stop()
