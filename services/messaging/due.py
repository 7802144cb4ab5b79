"""Timers that look only at what is due.

The escalation and flag timers used to read and parse every record of their table on every tick:
O(records) a second, a whole core while 100,000 notices waited. ``DueTable`` wraps a table (a
Faust table in the worker, a dict in unit tests) and keeps a heap of when each record next needs
the timer, updated on every write through it. A tick takes only what is due.

What the heap cannot see is caught by a full re-index: after every recovery of the table (start,
crash, rebalance: records that came from the changelog, not through a write) and at the next tick after
the live reference data it ``follows`` changes (a policy or a school closure moves deadlines without a
write). So a record is looked at when it falls due. A re-index decodes every record the table keeps (a
year's pages, tens of thousands): it hands the event loop back every ``REINDEX_TURN`` records, and it
runs only when one of those two things happened. A sweep every minute "besides" once took a notifier
holding 30,000 pages 20 to 50 seconds of every minute, its stream stalled behind it.

``ScheduledRecords`` adds the timer, the one every service with deadlines declares: its record type, what is
due for a record (``decide``), published once until its owner applies it, and how long a record is kept
(``Retention``): the end of a record's retention is one mechanism, not one per service.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.kernel.store import Owned, TypedRecords
from services.kernel.topics import TopicSpec
from services.platform.logs import correlation_scope, current_correlation_id, get_logger

log = get_logger(__name__)
NextDue = Callable[[Any], datetime | None]  # a record -> when the timer must look at it next, or never
REINDEX_TURN = 100  # records a re-index decodes between two turns of the event loop (about 0.1 s of work at most)


class DueTable(MutableMapping):
    def __init__(self, table: MutableMapping, next_due: NextDue, reindex_seconds: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic, follows: Any = None) -> None:
        self.table = table
        self.next_due = next_due
        # None: re-indexed after a recovery and a change of what it follows, only. A period adds a full sweep that
        # often, for a table written around it.
        self.reindex_seconds = reindex_seconds
        self.monotonic = monotonic
        self._heap: list[tuple[datetime, int, str]] = []
        self._due_at: dict[str, datetime] = {}  # the live heap entry of each key; others are stale
        self._order = itertools.count()
        self._indexed_at: float | None = None  # never: the first ``due`` indexes everything
        self._reindexes = 0  # a re-index under way stops when a newer one starts
        if hasattr(table, "on_recover"):
            table.on_recover(self._on_recover)
        if hasattr(follows, "on_replace"):  # live reference data: its changes move due times at once
            follows.on_replace(self.invalidate)

    # --- the mapping: reads pass through, writes also schedule --------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.table[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.table

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key] = value
        self._schedule(key, value)

    def put(self, key: str, value: Any) -> bool:
        """Write ``value`` unless ``key`` already holds it: every write to a table is a changelog record,
        and most events (a second channel's delivery, a replay) change nothing a record keeps."""
        if self.table.get(key) == value:
            return False
        self[key] = value
        return True

    def __delitem__(self, key: str) -> None:
        del self.table[key]
        self._due_at.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def items(self):
        return self.table.items()

    # --- the timer's side -----------------------------------------------------------------------
    def due(self, now: datetime) -> list[tuple[str, Any]]:
        """(key, record) of every record due at ``now``: what a scan of the whole table would find,
        at the cost of what is due. A record stays due until a write through this table moves its
        time (e.g. the escalation was applied), so a tick that could not act on it sees it again."""
        if self.needs_reindex:
            self.reindex()
        out, still_due = [], []
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            at, _, key = entry
            if self._due_at.get(key) != at:
                continue  # superseded by a later write
            record = self.table.get(key)
            if record is None:
                del self._due_at[key]
                continue
            still_due.append(entry)
            out.append((key, record))
        for entry in still_due:
            heapq.heappush(self._heap, entry)
        return out

    @property
    def needs_reindex(self) -> bool:
        return self._indexed_at is None or (self.reindex_seconds is not None
                                            and self.monotonic() - self._indexed_at >= self.reindex_seconds)

    def reindex(self) -> None:
        for _turn in self._reindexing():
            pass

    async def reindex_in_turns(self) -> None:
        """``reindex``, handing the event loop back every ``REINDEX_TURN`` records: records and timers go on
        meanwhile. A write meanwhile schedules its record as any write does; a record not reached yet is found
        when it is, at most one re-index late."""
        for _turn in self._reindexing():
            await asyncio.sleep(0)

    def _reindexing(self) -> Iterator[None]:
        self._reindexes += 1
        this = self._reindexes
        self._heap.clear()
        self._due_at.clear()
        self._indexed_at = self.monotonic()
        # One record decoded at a time: a list of every record at once held 100,000 decoded notices
        # (about 200 MB) for a moment, the backlog's peak memory.
        for count, key in enumerate(list(self.table), start=1):
            if this != self._reindexes:
                return  # a newer re-index (another recovery) started over
            self._schedule(key, self.table.get(key))
            if count % REINDEX_TURN == 0:
                yield

    def invalidate(self) -> None:
        """Re-index at the next ``due``: what ``next_due`` reads, besides the record, has changed."""
        self._indexed_at = None

    @property
    def scheduled(self) -> int:
        return len(self._due_at)

    def _schedule(self, key: str, record: Any) -> None:
        at = self.next_due(record) if record is not None else None
        if at is None:
            self._due_at.pop(key, None)
            return
        if self._due_at.get(key) == at:
            return
        self._due_at[key] = at
        heapq.heappush(self._heap, (at, next(self._order), key))

    async def _on_recover(self) -> None:
        await self.reindex_in_turns()


@dataclass(frozen=True)
class Due:
    """What a due record asks the timer to publish: ``event`` on ``topic``, once per ``marker`` (a step, a
    flag, "expired") until the record's owner applies it."""

    topic: TopicSpec
    marker: str
    event: Any


# (key, record, now) -> what is due for the record now (none, one, or several things)
Decide = Callable[[str, Any, datetime], Iterable[Due]]
EXPIRED = "expired"  # the marker of a published retention end


@dataclass(frozen=True)
class Retention:
    """How long a record is kept, and the event that says its time is up. The timer publishes ``ended`` (once)
    when ``ends_at(record)`` has passed, before anything else due for it; the owner, applying that event,
    calls ``expire``, which deletes the record (a tombstone in its changelog) unless its end moved meanwhile."""

    topic: TopicSpec
    ends_at: Callable[[Any], datetime | None]  # None: not yet known (a referral's ends only once it is closed)
    ended: Callable[[str, datetime], Any]  # (key, now) -> the event that ends the record

    def has_ended(self, record: Any, at: datetime) -> bool:
        end = self.ends_at(record)
        return end is not None and end <= at


class ScheduledRecords(DueTable):
    """The records a process owns with deadlines, and their timer: one mechanism for every service.

    Records are typed (``record_type``: a dataclass or model, ``Owned[State]`` for most), kept in the table
    as their JSON form; services read and write records, never dicts. The timer looks only at what is due,
    publishes what ``decide`` asks for under the record's correlation id, and publishes each (key, marker)
    once until the owner, applying the event on the record's partition, says ``applied``. The timer never
    changes a record: its owner does, so the changelog has one writer."""

    def __init__(self, table: MutableMapping, record_type: Any, next_due: NextDue, decide: Decide, publisher: Any, *,
                 retention: Retention | None = None, follows: Any = None, **options: Any) -> None:
        super().__init__(TypedRecords(table, record_type), self._with_retention(next_due, retention), follows=follows,
                         **options)
        self.publisher, self.decide, self.retention = publisher, decide, retention
        # A sealed table (sealing.SealedValues) erases a subject: at a retention's end its data key is destroyed,
        # so every copy of the record (the topics, the changelog, backups) is unreadable, not only this one gone.
        self._erase_subject = getattr(table, "erase_soon", None)
        self._requested: set[tuple[str, str]] = set()

    @staticmethod
    def _with_retention(next_due: NextDue, retention: Retention | None) -> NextDue:
        if retention is None:
            return next_due

        def next_due_or_end(record: Any) -> datetime | None:
            return min(filter(None, (next_due(record), retention.ends_at(record))), default=None)
        return next_due_or_end

    def _due_now(self, key: str, record: Any, now: datetime) -> Iterable[Due]:
        if self.retention is not None and self.retention.has_ended(record, now):
            return [Due(self.retention.topic, EXPIRED, self.retention.ended(key, now))]  # nothing else is due then
        return self.decide(key, record, now)

    def expire(self, key: str, at: datetime) -> Any:
        """Apply a retention's end published ``at``: delete the record and return it, or None when there is none
        or its end moved past ``at`` meanwhile (an acknowledgement, say): the timer publishes it again then."""
        self.applied(key, EXPIRED)
        record = self.get(key)
        if record is None or self.retention is None or not self.retention.has_ended(record, at):
            return None
        del self[key]
        if self._erase_subject is not None:
            self._erase_subject(key)
        return record

    # --- records of the form Owned[State] ---------------------------------------------------------------
    def state(self, key: str) -> Any:
        """The state kept under ``key``, or None."""
        record = self.get(key)
        return None if record is None else record.state

    def keep(self, key: str, state: Any) -> bool:
        """Keep ``state`` under ``key``, with the correlation id of the event that first wrote the record
        (the current one for a new record); False when it held that already."""
        prior = self.get(key)
        return self.put(key, Owned(state, prior.correlation_id if prior is not None else current_correlation_id()))

    async def tick(self, now: datetime) -> int:
        if self.needs_reindex:
            await self.reindex_in_turns()
        published = 0
        for key, record in self.due(now):
            for due in self._due_now(key, record, now):
                with correlation_scope(getattr(record, "correlation_id", None)):
                    published += await self.request(key, due)
        return published

    async def request(self, key: str, due: Due) -> bool:
        """Publish ``due`` for ``key`` unless it is published and not yet applied (also for an owner that
        must not wait for the tick, e.g. a step nobody can be reached at)."""
        if (key, due.marker) in self._requested:
            return False
        self._requested.add((key, due.marker))
        await self.publisher.publish(due.topic, key, due.event)
        log.info("timer_published", event_type=type(due.event).__name__, key=key, marker=due.marker)
        return True

    def applied(self, key: str, marker: str) -> None:
        """The owner applied the event for (key, marker): if it falls due again, publish it again."""
        self._requested.discard((key, marker))
