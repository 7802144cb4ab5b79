"""OffsetGuard: a record the stream passed over is read from the broker and processed first."""

from __future__ import annotations

import asyncio

from services.messaging.records import OffsetGuard, RawRecord, StallWatch


class Log:
    """A partition's log as the broker holds it, and what the guard asked of it."""

    def __init__(self, committed: int) -> None:
        self.committed = committed
        self.fetched: list[tuple[int, int]] = []

    async def fetch(self, topic: str, partition: int, start: int, end: int) -> list[RawRecord]:
        self.fetched.append((start, end))
        return [record(n, partition) for n in range(start, end)]

    async def baseline(self, topic: str, partition: int) -> int:
        return self.committed


def record(offset: int, partition: int = 0) -> RawRecord:
    return RawRecord("t", partition, offset, b"k", b"v")


async def test_a_jump_in_offsets_is_filled_from_the_broker() -> None:
    log = Log(committed=0)
    guard = OffsetGuard(log.fetch, log.baseline)
    assert await guard.missing_before(record(0)) == []
    assert [r.offset for r in await guard.missing_before(record(4))] == [1, 2, 3]
    assert await guard.missing_before(record(5)) == []
    assert log.fetched == [(1, 4)] and guard.recovered == 3


async def test_the_first_record_after_an_assignment_is_checked_against_the_committed_offset() -> None:
    log = Log(committed=10)
    guard = OffsetGuard(log.fetch, log.baseline)
    assert [r.offset for r in await guard.missing_before(record(12))] == [10, 11]
    guard.forget({("t", 0)})
    log.committed = 13
    assert await guard.missing_before(record(13)) == []


async def test_replayed_records_pass_and_partitions_are_tracked_apart() -> None:
    log = Log(committed=0)
    guard = OffsetGuard(log.fetch, log.baseline)
    for offset in (0, 1, 2):
        await guard.missing_before(record(offset))
    assert await guard.missing_before(record(1)) == []  # a replay after a rebalance: processed again, no fetch
    assert await guard.missing_before(record(3)) == []
    assert [r.offset for r in await guard.missing_before(record(2, partition=1))] == [0, 1]
    assert log.fetched == [(0, 2)]


async def test_recovered_records_let_faust_commit_past_them() -> None:
    """Pins the Faust internals ``acknowledge_recovered`` relies on: with the committed offset at 598
    and the stream's first record at 610, Faust commits nothing until 598..609 are marked done."""
    import faust
    from faust.types import TP

    from services.messaging.streams import acknowledge_recovered

    consumer = faust.App("offset-guard-unit", broker="kafka://127.0.0.1:1").consumer
    tp = TP("t", 0)
    consumer._committed_offset[tp] = 598
    for offset in (610, 611):  # what Faust's stream acked
        consumer._acked[tp].append(offset)
        consumer._acked_index[tp].add(offset)
    assert consumer._new_offset(tp) is None
    await acknowledge_recovered(consumer, "t", 0, 598, 609)
    assert consumer._new_offset(tp) == 612


async def test_waiting_until_handled_ends_when_the_stream_has_handled_what_was_there() -> None:
    log = Log(committed=3)

    async def end_offsets(topic: str, partitions: set[int]) -> dict[int, int]:
        return {0: 6, 1: 3}  # partition 1: nothing past the committed offset

    guard = OffsetGuard(log.fetch, log.baseline, end_offsets)
    waiting = asyncio.ensure_future(guard.wait_until_handled("t", {0, 1}, poll_seconds=0))
    for offset in (3, 4):
        guard.handled(record(offset))
        await asyncio.sleep(0)
        assert not waiting.done()  # offset 5 is still to be handled
    guard.handled(record(5))
    await asyncio.wait_for(waiting, 1)


def test_a_partition_is_sought_back_only_after_a_whole_idle_interval_without_progress() -> None:
    watch = StallWatch()
    tp = ("encounters", 2)
    handled = 100
    assert not watch.should_seek(tp, 7, 9, watch.interval_ended(handled))  # first sight of records past 7
    handled += 50  # the worker is busy elsewhere: the partition waits its turn, its records are not re-fetched
    assert not watch.should_seek(tp, 7, 9, watch.interval_ended(handled))
    assert not watch.should_seek(tp, 7, 9, watch.interval_ended(handled + 1))
    # Idle for a whole interval, and the partition still holds records nobody handed over: a dropped tail.
    assert watch.should_seek(tp, 7, 9, watch.interval_ended(handled + 1))


def test_progress_or_nothing_left_is_never_a_stall() -> None:
    watch = StallWatch()
    tp = ("notices", 0)
    assert not watch.should_seek(tp, 7, 9, watch.interval_ended(0))
    assert not watch.should_seek(tp, 8, 9, watch.interval_ended(0))  # it moved on
    assert not watch.should_seek(tp, 9, 9, watch.interval_ended(0))  # all handled
    assert not watch.should_seek(tp, 9, 9, watch.interval_ended(0))
    assert not watch.should_seek(tp, None, 9, watch.interval_ended(0))  # nothing known yet
