"""An agent handles its next record while the last one's events are still being written, and
acknowledges records only in offset order, each once its writes (and those before it) landed; a
failed send stops the acknowledgements at its record, which is handled again with every record
after it, as a restart would."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.messaging.records import RawRecord, RecordsInFlight


def record(offset: int) -> RawRecord:
    return RawRecord("handoff.cad.referrals", 0, offset, b"k", b"v", [])


class Agent:
    """What ``consume`` gives ``RecordsInFlight``: an acknowledge and a redo (the awaited path)."""

    def __init__(self, limit: int = 256) -> None:
        self.acknowledged: list[int] = []
        self.redone: list[int] = []
        self.in_flight = RecordsInFlight(self.acknowledge, self.redo, limit)

    async def acknowledge(self, event, raw: RawRecord) -> None:
        assert event == f"event-{raw.offset}"
        self.acknowledged.append(raw.offset)

    async def redo(self, _event: Any, raw: RawRecord) -> bool:
        self.redone.append(raw.offset)
        return True

    async def handle(self, offset: int) -> asyncio.Future:
        """Handles a record whose one send is held until the test settles it."""
        send = asyncio.get_running_loop().create_future()
        async with self.in_flight.lock:
            await self.in_flight.add(f"event-{offset}", record(offset), [send])
        return send


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_record_is_acknowledged_only_after_its_writes_and_only_in_offset_order() -> None:
    agent = Agent()
    sends = [await agent.handle(offset) for offset in range(4)]  # all four handled, none waited for
    sends[2].set_result(None)
    sends[1].set_result(None)
    await settle()
    assert agent.acknowledged == []  # offset 0's write is not on the broker: nothing passes it
    sends[0].set_result(None)
    await settle()
    assert agent.acknowledged == [0, 1, 2]
    sends[3].set_result(None)
    await agent.in_flight.settled()
    assert agent.acknowledged == [0, 1, 2, 3] and agent.redone == []
    await agent.in_flight.close()


async def test_a_failed_send_has_its_record_and_every_later_one_handled_again_in_order() -> None:
    agent = Agent()
    sends = [await agent.handle(offset) for offset in range(4)]
    sends[0].set_result(None)
    sends[1].set_exception(ConnectionError("broker away"))
    await settle()
    assert agent.acknowledged == [0]  # the failed record holds the acknowledgements back
    sends[2].set_result(None)
    sends[3].set_exception(ConnectionError("broker away"))
    await agent.in_flight.settled()
    assert agent.redone == [1, 2, 3]
    assert agent.acknowledged == [0, 1, 2, 3] and agent.in_flight.redone == 3
    await agent.in_flight.close()


async def test_the_next_record_waits_while_records_are_redone() -> None:
    redo_may_finish = asyncio.Event()
    agent = Agent()

    async def slow_redo(_event: Any, raw: RawRecord) -> bool:
        agent.redone.append(raw.offset)
        await redo_may_finish.wait()
        return True

    agent.in_flight._redo = slow_redo
    first = await agent.handle(0)
    first.set_exception(ConnectionError("broker away"))
    await settle()
    assert agent.redone == [0]
    second = asyncio.ensure_future(agent.handle(1))
    await settle()
    assert not second.done()  # the agent's next record is not handled over a redo
    redo_may_finish.set()
    (await second).set_result(None)
    await agent.in_flight.settled()
    assert agent.acknowledged == [0, 1]
    await agent.in_flight.close()


async def test_no_more_than_the_limit_is_in_flight() -> None:
    agent = Agent(limit=2)
    sends = [await agent.handle(0), await agent.handle(1)]
    third = asyncio.ensure_future(agent.handle(2))
    await settle()
    # The acknowledging task holds offset 0 while it waits for its write, so 1 and 2 fit in the queue;
    # a fourth must wait.
    fourth = asyncio.ensure_future(agent.handle(3))
    await settle()
    assert third.done() and not fourth.done()
    sends[0].set_result(None)
    await settle()
    assert fourth.done()
    for send in [sends[1], third.result(), fourth.result()]:
        send.set_result(None)
    await agent.in_flight.settled()
    assert agent.acknowledged == [0, 1, 2, 3]
    await agent.in_flight.close()


async def test_what_is_in_flight_at_close_is_not_acknowledged() -> None:
    agent = Agent()
    send = await agent.handle(0)
    await agent.in_flight.close()
    send.set_result(None)
    await settle()
    assert agent.acknowledged == []  # read again after the restart; handlers are idempotent


@pytest.mark.parametrize("failing", [False, True])
async def test_a_record_with_no_sends_is_acknowledged_in_its_turn(failing: bool) -> None:
    agent = Agent()
    first = await agent.handle(0)
    async with agent.in_flight.lock:
        await agent.in_flight.add("event-1", record(1), [])  # a handler that published nothing
    await settle()
    assert agent.acknowledged == []
    first.set_exception(ConnectionError()) if failing else first.set_result(None)
    await agent.in_flight.settled()
    assert agent.acknowledged == [0, 1]
    assert agent.redone == ([0, 1] if failing else [])
    await agent.in_flight.close()


async def test_a_record_whose_acknowledgement_fails_stops_nothing_after_it() -> None:
    agent = Agent()
    acknowledge = agent.acknowledge

    async def failing_once(event, raw: RawRecord) -> None:
        if raw.offset == 0:
            raise RuntimeError("consumer gone")
        await acknowledge(event, raw)

    agent.in_flight._acknowledge = failing_once
    sends = [await agent.handle(offset) for offset in range(3)]
    for send in sends:
        send.set_result(None)
    await agent.in_flight.settled()
    assert agent.acknowledged == [1, 2]  # offset 0 is read again after a restart; the agent goes on
    await agent.in_flight.close()
