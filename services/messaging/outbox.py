"""Idempotent, concurrent delivery: an outbox of pending deliveries, sent off the stream.

Shared by pages and notices. A handler asks for a delivery with ``request`` while it processes
an event (the stream context): the delivery is written to ``deliveries`` as *pending* (the
outbox, a changelog-backed table in the worker) and sent by a background task, so a slow or
dead recipient holds up nothing else: not the partition's next event, not other deliveries.
At most ``concurrency`` sends are in flight at once.

Each try is reported through ``report``, given by the worker (it publishes the service's attempt
event: ``PageSent``, ``HwcNoticeDelivered``, ``HwcTriageAlerted``) and to ``audit`` as a ``DisclosureAudited`` record (kind of record,
recipient, channel, outcome; never the content). The last try is reported with ``final=True``;
once that event is on the broker the outcome is recorded (``settle``, written on the partition
that asked for the delivery), and the service's handler calls ``settle`` again when it reads the
event back on the owning partition, which changes nothing unless another worker sent it. So:

- a delivery already delivered (or pending) is not sent again: replays, retries, duplicates;
- a failed one is sent again when asked again (a replay completes what a crash interrupted);
- after a crash or a rebalance, ``resume`` re-sends what was pending on the partitions this
  worker now owns. The channels carry the attempt id as their idempotency key, so a receiver
  drops the copy of a send that completed just before the crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import uuid
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from services.delivery.channels import Channel, DeliveryFailed, Outgoing
from services.kernel.clock import Clock, SystemClock
from services.kernel.errors import InvalidRecord
from services.kernel.events import (
    PAGES_ONLY,
    DeliveryOutcome,
    DisclosureChannel,
)
from services.kernel.reference import QuietHours, Urgency, held_until
from services.kernel.store import JsonForm, KeyValueStore
from services.kernel.topics import TopicSpec
from services.messaging.events import DisclosedRecord, DisclosureAudited
from services.messaging.kafka import Publisher
from services.messaging.sealing import handled_subject
from services.platform.logs import correlation_scope, current_correlation_id, get_logger

log = get_logger(__name__)

PENDING = "pending"
#: The partition of the record being processed, set by the stream's record processor, so a
#: pending delivery remembers which partition's owner must finish it after a rebalance.
source_partition: ContextVar[int | None] = ContextVar("source_partition", default=None)


@dataclass(frozen=True)
class Disclosure:
    """What a delivery discloses, for the audit record: ids and roles, never the content."""

    record_kind: DisclosedRecord
    subject_id: str
    recipient_id: str
    recipient_role: str


@dataclass(frozen=True)
class Dispatch:
    """One delivery: what to send on which channel, what it discloses, and ``context``: what the
    service needs to report each try (page id and step, notice id and role...). JSON-serialisable,
    so that a pending delivery survives a restart in the outbox table."""

    channel: str
    outgoing: Outgoing
    disclosure: Disclosure
    context: dict[str, Any] = field(default_factory=dict)
    not_before: datetime | None = None  # held until then (a low-urgency message in its person's quiet hours)

    @property
    def attempt_id(self) -> str:
        return self.outgoing.attempt_id

    def to_dict(self) -> dict[str, Any]:
        return _DISPATCH.dump(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dispatch:
        return _DISPATCH.load(data)


_DISPATCH = JsonForm(Dispatch)


#: (dispatch, try number, outcome, error, final) -> publish the service's attempt event.
Report = Callable[[Dispatch, int, DeliveryOutcome, str | None, bool], Awaitable[None]]
Audit = Callable[[DisclosureAudited], Awaitable[None]]


class AttemptReporter:
    """Base of a service's ``Report``: publishes each delivery try as the service's own attempt event
    (the subclass's ``__call__``), through the worker's publisher, at the worker's time."""

    def __init__(self, publisher: Publisher, clock: Clock) -> None:
        self.publisher = publisher
        self.clock = clock


class MessageAttempts(AttemptReporter):
    """The report of a service whose attempt events have one shape: the subject's id (``key``, taken from
    the dispatch's context), attempt_id, recipient_id, channel, outcome, attempt, error, final, sent_at
    (``FollowUpAlertSent``, ``WalkInMessageSent``, ``FeedAlertSent``): published on ``topic``, keyed
    by the subject."""

    def __init__(self, publisher: Publisher, clock: Clock, topic: TopicSpec, event_type: type, key: str) -> None:
        super().__init__(publisher, clock)
        self.topic, self.event_type, self.key = topic, event_type, key

    async def __call__(self, dispatch: Dispatch, attempt: int, outcome: DeliveryOutcome, error: str | None,
                       final: bool) -> None:
        subject = dispatch.context[self.key]
        await self.publisher.publish(self.topic, subject, self.event_type(**{
            self.key: subject, "attempt_id": dispatch.attempt_id, "recipient_id": dispatch.context["recipient_id"],
            "channel": dispatch.channel, "outcome": outcome, "attempt": attempt, "error": error, "final": final,
            "sent_at": self.clock.now()}))


class IdempotentDelivery:
    def __init__(self, channels: dict[str, Channel], deliveries: KeyValueStore, attempts: int = 3,
                 backoff_seconds: float = 0.5, audit: Audit | None = None, service: str = "handoff",
                 concurrency: int = 64, report: Report | None = None,
                 written: Callable[[str], Awaitable[None]] | None = None, clock: Clock | None = None) -> None:
        self.channels = channels
        self.clock = clock or SystemClock()
        # Waits until an attempt's record in ``deliveries`` is on the broker: a delivery goes out only
        # once its "pending" record would survive a crash, so a restart resends only the sends in flight.
        self.written = written
        self.deliveries = deliveries  # attempt id -> {"outcome": ...} or {"outcome": "pending", "dispatch": ...}
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.audit = audit
        self.service = service
        self.report = report  # publishes the service's attempt event (PageSent, HwcNoticeDelivered, ...)
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: dict[str, asyncio.Task] = {}
        self._partition_of: dict[str, int | None] = {}  # attempt id in flight -> its source partition
        # Deliveries held until their time (``Dispatch.not_before``), soonest first: (due, attempt id, partition).
        # Pending in the table like any other, so a restart holds them again (``resume``).
        self._held: list[tuple[datetime, str, int | None]] = []
        self._held_ids: set[str] = set()

    # --- called in the stream context ---------------------------------------------------------
    def status(self, attempt_id: str) -> str | None:
        """``None`` (never asked), ``pending``, or a ``DeliveryOutcome`` value."""
        prior = self.deliveries.get(attempt_id)
        return prior.get("outcome") if prior else None

    async def request(self, dispatch: Dispatch) -> bool:
        """Queue ``dispatch`` unless it was delivered or is pending; True if it was queued."""
        if self.status(dispatch.attempt_id) in (DeliveryOutcome.delivered.value, PENDING):
            return False
        dispatch = replace(dispatch, outgoing=dispatch.outgoing.only_for(dispatch.channel))
        # Sealed under the key of whom it is about (a referral, a notice), from a record or a timer alike: one
        # data key per subject, not one per delivery.
        token = handled_subject.set(dispatch.disclosure.subject_id)
        try:
            self.deliveries[dispatch.attempt_id] = {"outcome": PENDING, "dispatch": dispatch.to_dict(),
                                                    "partition": source_partition.get(),
                                                    "correlation_id": current_correlation_id()}
        finally:
            handled_subject.reset(token)
        self._start_or_hold(dispatch, current_correlation_id(), source_partition.get())
        return True

    def _start_or_hold(self, dispatch: Dispatch, correlation_id: str | None, partition: int | None) -> None:
        if dispatch.not_before is not None and dispatch.not_before > self.clock.now():
            if dispatch.attempt_id in self._held_ids:  # held already (a second recovery keeps its partitions)
                return
            heapq.heappush(self._held, (dispatch.not_before, dispatch.attempt_id, partition))
            self._held_ids.add(dispatch.attempt_id)
            log.info("delivery_held", attempt_id=dispatch.attempt_id, channel=dispatch.channel,
                     until=dispatch.not_before.isoformat())
            return
        self._start(dispatch, correlation_id, partition)

    def release_held(self) -> int:
        """Send the held deliveries whose time has come (on a timer); those settled or sent meanwhile are passed
        over. Returns how many were started."""
        now, started = self.clock.now(), 0
        while self._held and self._held[0][0] <= now:
            _due, attempt_id, partition = heapq.heappop(self._held)
            self._held_ids.discard(attempt_id)
            record = self.deliveries.get(attempt_id)
            if not record or record.get("outcome") != PENDING or attempt_id in self._in_flight:
                continue
            self._start(Dispatch.from_dict(record["dispatch"]), record.get("correlation_id"), partition)
            started += 1
        return started

    @property
    def held(self) -> int:
        return len(self._held)

    async def refuse(self, dispatch: Dispatch, reason: str) -> None:
        """Record a disclosure that was not allowed (e.g. outside the person's consent): nothing is sent."""
        await self._report(dispatch, 1, DeliveryOutcome.skipped, reason, True)
        await self._audit(dispatch, 1, DeliveryOutcome.skipped)
        self.settle(dispatch.attempt_id, DeliveryOutcome.skipped)
        log.warning("disclosure_refused", attempt_id=dispatch.attempt_id, reason=reason)

    def settle(self, attempt_id: str, outcome: DeliveryOutcome) -> None:
        """Record a delivery's final outcome (once its final attempt event is on the broker, and again
        when the owning partition reads that event back: written only the first time)."""
        if self.status(attempt_id) != outcome.value:
            try:
                self.deliveries[attempt_id] = {"outcome": outcome.value}
            except InvalidRecord:  # its subject was erased meanwhile: nothing more is kept about it
                with contextlib.suppress(KeyError):
                    del self.deliveries[attempt_id]

    async def apply_attempt(self, event: Any) -> None:
        """An attempt event (``PageSent``, ``HwcNoticeDelivered``, ...) read back on the owner's partition: a
        final try settles its delivery (a try that will be tried again changes nothing). A service's handler
        table names it as ``"delivery.apply_attempt"``."""
        if event.final:
            self.settle(event.attempt_id, event.outcome)

    def forget(self, attempt_ids: list[str]) -> int:
        """Delete the records of these deliveries (their subject's retention ended); those in flight
        are left to finish and settle. Returns how many were deleted."""
        gone = 0
        for attempt_id in attempt_ids:
            if attempt_id in self.deliveries and attempt_id not in self._in_flight:
                del self.deliveries[attempt_id]
                gone += 1
        return gone

    def pending(self) -> set[str]:
        """The attempts recorded as pending and not being sent by this worker."""
        return {attempt_id for attempt_id, record in self.deliveries.items()
                if record and record.get("outcome") == PENDING and attempt_id not in self._in_flight}

    def resume(self, owns_partition: Callable[[int | None], bool] = lambda _p: True,
               among: set[str] | None = None) -> int:
        """Send again what was pending on partitions this worker owns and is not already sending
        (after recovery from the changelog, i.e. after a crash or a rebalance); ``among``: only those
        of these attempts (what was pending at recovery: a delivery requested since is this worker's own)."""
        resumed = 0
        for attempt_id in list(self.deliveries):  # keys only: one record decoded at a time
            record = self.deliveries.get(attempt_id)
            if not record or record.get("outcome") != PENDING or attempt_id in self._in_flight:
                continue
            if among is not None and attempt_id not in among:
                continue
            if owns_partition(record.get("partition")):
                self._start_or_hold(Dispatch.from_dict(record["dispatch"]), record.get("correlation_id"),
                                    record.get("partition"))
                resumed += 1
        if resumed:
            log.info("deliveries_resumed", count=resumed)
        return resumed

    # --- off the stream -------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def drain(self) -> None:
        """Wait until nothing is in flight (tests; a clean stop)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop sending; what was pending (or held) stays pending in the table, to be resumed."""
        self._held.clear()
        self._held_ids.clear()
        await self._cancel(list(self._in_flight))

    async def cancel(self, partitions: set[int]) -> None:
        """Stop sending (or holding) what was requested on ``partitions`` (revoked: their new owner resumes it)."""
        self._held = [held for held in self._held if held[2] not in partitions]
        heapq.heapify(self._held)
        self._held_ids = {attempt_id for _due, attempt_id, _partition in self._held}
        await self._cancel([key for key, partition in self._partition_of.items() if partition in partitions])

    async def _cancel(self, attempt_ids: list[str]) -> None:
        tasks = [self._in_flight[key] for key in attempt_ids if key in self._in_flight]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, dispatch: Dispatch, correlation_id: str | None, partition: int | None) -> None:
        key = dispatch.attempt_id
        # A context of its own: the send outlives the record that asked for it, so it must neither add
        # its events to that record's sends (left unawaited once the record was acknowledged) nor
        # write to the table as if it were handling that record.
        task = asyncio.get_running_loop().create_task(self._send(dispatch, correlation_id, partition),
                                                      name=f"deliver {key}", context=contextvars.Context())
        self._in_flight[key] = task
        self._partition_of[key] = partition

        def forget(_task: asyncio.Task) -> None:
            if self._in_flight.get(key) is _task:
                del self._in_flight[key]
                del self._partition_of[key]

        task.add_done_callback(forget)

    async def _send(self, dispatch: Dispatch, correlation_id: str | None, partition: int | None) -> None:
        source_partition.set(partition)  # where the outcome is written (this task's own context)
        handled_subject.set(dispatch.disclosure.subject_id)  # and under whose key it is sealed
        with correlation_scope(correlation_id):
            try:
                if self.written is not None:  # waiting for the broker is not sending: no slot taken
                    await self.written(dispatch.attempt_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery_record_not_written", attempt_id=dispatch.attempt_id)
                return  # stays pending: resumed after the next recovery
            try:
                await self._try_all(dispatch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Reporting failed (the broker is away): the delivery stays pending and is resumed.
                log.exception("delivery_report_failed", attempt_id=dispatch.attempt_id)

    async def _try_all(self, dispatch: Dispatch) -> None:
        channel = self.channels[dispatch.channel]
        outcome, error = DeliveryOutcome.failed, None
        for attempt in range(1, self.attempts + 1):
            permanent = False
            # A slot bounds the sends to recipients; writing the outcome and waiting to try again hold none.
            async with self._slots:
                try:
                    await channel.send(dispatch.outgoing)
                    outcome, error = DeliveryOutcome.delivered, None
                except DeliveryFailed as exc:
                    outcome, error, permanent = DeliveryOutcome.failed, exc.reason, exc.permanent
            final = outcome is DeliveryOutcome.delivered or permanent or attempt == self.attempts
            reported, audited = await asyncio.gather(self._report(dispatch, attempt, outcome, error, final),
                                                     self._audit(dispatch, attempt, outcome), return_exceptions=True)
            if final and not isinstance(reported, BaseException):
                # Recorded now, not only when the stream reads the final event back: behind a backlog
                # that takes minutes, and until then every delivery would wait in memory as pending.
                self.settle(dispatch.attempt_id, outcome)
            for result in (reported, audited):
                if isinstance(result, BaseException):
                    raise result
            if final:
                break
            await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        log.info("delivery", attempt_id=dispatch.attempt_id, channel=dispatch.channel, outcome=outcome.value,
                 error=error)

    async def _report(self, dispatch: Dispatch, attempt: int, outcome: DeliveryOutcome, error: str | None,
                      final: bool) -> None:
        if self.report is not None:
            await self.report(dispatch, attempt, outcome, error, final)

    async def _audit(self, dispatch: Dispatch, attempt: int, outcome: DeliveryOutcome) -> None:
        if self.audit is None:
            return
        d = dispatch.disclosure
        await self.audit(DisclosureAudited(
            audit_id=f"{dispatch.attempt_id}#{attempt}", record_kind=d.record_kind, subject_id=d.subject_id,
            recipient_id=d.recipient_id, recipient_role=d.recipient_role, channel=DisclosureChannel(dispatch.channel),
            outcome=outcome, attempt=attempt, service=self.service, disclosed_at=datetime.now(UTC),
            correlation_id=current_correlation_id()))


class Reachable(Protocol):
    """Someone a service messages: staff or a volunteer (their channels, the address on each, their quiet hours)."""

    role: str
    channels: tuple[Any, ...]
    quiet_hours: QuietHours | None

    def address_for(self, channel: Any) -> str | None: ...


async def message_each(delivery: IdempotentDelivery, people: Iterable[tuple[str, Reachable]], key: str, subject: str,
                       text: str, payload: dict[str, Any], record_kind: DisclosedRecord, subject_id: str,
                       context: dict[str, Any], urgency: Urgency = Urgency.high) -> int:
    """``text`` to each of ``people`` (id, person) on each of their channels, once per ``key``: the
    attempt id is ``key/person/channel``, so a replay or a second request sends nothing twice. The
    report's ``context`` gets the recipient's id. A ``low`` urgency message waits out each person's quiet
    hours. Returns how many deliveries were queued."""
    queued = 0
    for person_id, person in people:
        not_before = held_until(urgency, person.quiet_hours, delivery.clock.now())
        for channel in person.channels:
            if channel in PAGES_ONLY or person.address_for(channel) is None:  # push: the notifier's, per device
                continue
            outgoing = Outgoing(f"{key}/{person_id}/{channel.value}", person.address_for(channel) or "", subject, text,
                                text, payload, urgency=urgency.value)
            queued += await delivery.request(Dispatch(
                channel.value, outgoing, Disclosure(record_kind, subject_id, person_id, person.role),
                {**context, "recipient_id": person_id}, not_before))
    return queued


async def audit_shown(publisher: Publisher, clock: Clock, record_kind: DisclosedRecord, subject_id: str,
                      recipient_id: str, recipient_role: str, where: DisclosureChannel) -> None:
    """Someone read personal data on screen (a list, a name): who, what kind, when and where, never the data."""
    from services.kernel.topics import AUDIT

    with correlation_scope(current_correlation_id()) as cid:
        await publisher.publish(AUDIT, subject_id, DisclosureAudited(
            audit_id=f"{record_kind.value}/{subject_id}/{recipient_id}/{uuid.uuid4().hex}", record_kind=record_kind,
            subject_id=subject_id, recipient_id=recipient_id, recipient_role=recipient_role, channel=where,
            outcome=DeliveryOutcome.delivered, attempt=1, service="api", disclosed_at=clock.now(), correlation_id=cid))
