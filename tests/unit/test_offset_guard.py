"""OffsetGuard: a record the stream passed over is read from the broker and processed first."""

from __future__ import annotations

from services.core.streams import OffsetGuard, RawRecord


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
