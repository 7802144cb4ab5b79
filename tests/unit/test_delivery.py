"""The delivery outbox: concurrent sends, settling once the final try is published, resume after a crash."""

from __future__ import annotations

import asyncio

import faust
import pytest

from services.delivery.channels import Outgoing
from services.kernel.errors import InvalidRecord
from services.kernel.events import (
    DeliveryOutcome,
)
from services.kernel.lead import PageSent
from services.kernel.topics import PAGES
from services.messaging.events import DisclosedRecord
from services.messaging.outbox import PENDING, Disclosure, Dispatch, IdempotentDelivery, source_partition
from services.messaging.records import sends_awaited_together
from services.messaging.streams import OutboxTable
from tests.factories import one_of_each
from tests.fakes import HeldProducer, RecordingChannel, faust_publisher


class SlowChannel(RecordingChannel):
    """Answers only when ``release`` is set: a recipient that hangs."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = asyncio.Event()
        self.waiting = 0

    async def send(self, message: Outgoing) -> None:
        self.waiting += 1
        await self.release.wait()
        await super().send(message)


def dispatch(attempt_id: str, channel: str = "sms") -> Dispatch:
    return Dispatch(channel, Outgoing(attempt_id, "+15055550100", "s", "t", "b", {"k": 1}),
                    Disclosure(DisclosedRecord.lead_page, "r-1", "cm-1", "case_manager"), {"page_id": "pg-1"})


class Reports:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, DeliveryOutcome, bool]] = []

    async def __call__(self, d: Dispatch, attempt: int, outcome: DeliveryOutcome, error, final: bool) -> None:
        self.seen.append((d.attempt_id, attempt, outcome, final))


async def test_a_hanging_recipient_holds_up_no_other_delivery() -> None:
    slow, fast = SlowChannel("sms"), RecordingChannel("email")
    delivery = IdempotentDelivery({"sms": slow, "email": fast}, {}, attempts=1, backoff_seconds=0)
    delivery.report = Reports()
    assert await delivery.request(dispatch("a/sms", "sms"))  # returns at once: queued, not sent
    for n in range(20):
        await delivery.request(dispatch(f"b{n}/email", "email"))
    await asyncio.wait_for(_until(lambda: len(fast.sent) == 20), 2)
    assert slow.waiting == 1 and slow.sent == [] and delivery.status("a/sms") == PENDING
    slow.release.set()
    await delivery.drain()
    assert [m.attempt_id for m in slow.sent] == ["a/sms"]


async def test_pending_or_delivered_is_not_sent_again_but_failed_is() -> None:
    channel = RecordingChannel("sms", fail_times=2)
    store: dict = {}
    delivery = IdempotentDelivery({"sms": channel}, store, attempts=2, backoff_seconds=0)
    delivery.report = reports = Reports()
    await delivery.request(dispatch("a"))
    assert not await delivery.request(dispatch("a"))  # pending: a replay changes nothing
    await delivery.drain()
    assert reports.seen == [("a", 1, DeliveryOutcome.failed, False), ("a", 2, DeliveryOutcome.failed, True)]
    delivery.settle("a", DeliveryOutcome.failed)  # the final event, handled on the owning partition
    assert await delivery.request(dispatch("a"))  # asked again after a failure: tried again
    await delivery.drain()
    delivery.settle("a", DeliveryOutcome.delivered)
    assert not await delivery.request(dispatch("a"))
    await delivery.drain()
    assert len(channel.sent) == 1 and channel.tries == 3


async def test_pending_deliveries_survive_a_crash_and_resume_on_owned_partitions_only() -> None:
    store: dict = {}
    hung = SlowChannel("sms")
    before = IdempotentDelivery({"sms": hung}, store, attempts=1)
    for partition, attempt_id in ((0, "p0"), (1, "p1")):
        token = source_partition.set(partition)
        await before.request(dispatch(attempt_id))
        source_partition.reset(token)
    await asyncio.wait_for(_until(lambda: hung.waiting == 2), 2)
    await before.close()  # the process dies mid-send; the table (changelog) keeps what was pending

    channel = RecordingChannel("sms")
    after = IdempotentDelivery({"sms": channel}, store, attempts=1)
    after.report = Reports()
    assert after.resume(lambda partition: partition == 1) == 1
    await after.drain()
    assert [m.attempt_id for m in channel.sent] == ["p1"]
    assert store["p0"]["outcome"] == PENDING  # for partition 0's owner to finish


async def test_after_recovery_only_what_was_pending_then_and_is_still_pending_is_resent() -> None:
    store: dict = {}
    hung = SlowChannel("sms")
    before = IdempotentDelivery({"sms": hung}, store, attempts=1)
    for attempt_id in ("settled-meanwhile", "in-flight"):
        await before.request(dispatch(attempt_id))
    await asyncio.wait_for(_until(lambda: hung.waiting == 2), 2)
    await before.close()  # killed: both recorded as pending

    channel = RecordingChannel("sms")
    after = IdempotentDelivery({"sms": channel}, store, attempts=1, report=Reports())
    recovered = after.pending()
    assert recovered == {"settled-meanwhile", "in-flight"}
    after.settle("settled-meanwhile", DeliveryOutcome.delivered)  # its final attempt event, read while catching up
    await after.request(dispatch("new"))  # requested since recovery and sent
    await after.drain()
    assert after.status("new") == DeliveryOutcome.delivered.value  # recorded once its final event was published
    assert after.resume(among=recovered) == 1
    await after.drain()
    assert sorted(m.attempt_id for m in channel.sent) == ["in-flight", "new"]  # each once


async def test_revoked_partitions_stop_sending() -> None:
    hung = SlowChannel("sms")
    delivery = IdempotentDelivery({"sms": hung}, {}, attempts=1)
    for partition in (0, 1):
        token = source_partition.set(partition)
        await delivery.request(dispatch(f"p{partition}"))
        source_partition.reset(token)
    await asyncio.wait_for(_until(lambda: hung.waiting == 2), 2)
    await delivery.cancel({0})
    assert delivery.in_flight == 1
    hung.release.set()
    await delivery.drain()
    assert [m.attempt_id for m in hung.sent] == ["p1"]


async def test_concurrency_is_bounded() -> None:
    hung = SlowChannel("sms")
    delivery = IdempotentDelivery({"sms": hung}, {}, attempts=1, concurrency=3)
    for n in range(10):
        await delivery.request(dispatch(f"a{n}"))
    await asyncio.wait_for(_until(lambda: hung.waiting == 3), 2)
    await asyncio.sleep(0.05)
    assert hung.waiting == 3
    hung.release.set()
    await delivery.drain()
    assert len(hung.sent) == 10


def test_a_dispatch_round_trips_through_json() -> None:
    import json

    d = dispatch("a/b/c")
    assert Dispatch.from_dict(json.loads(json.dumps(d.to_dict()))) == d


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.005)


async def test_nothing_is_sent_before_its_pending_record_is_on_the_broker() -> None:
    channel = RecordingChannel("sms")
    on_broker = asyncio.Event()
    asked: list[str] = []

    async def written(attempt_id: str) -> None:
        asked.append(attempt_id)
        await on_broker.wait()

    delivery = IdempotentDelivery({"sms": channel}, {}, attempts=1, backoff_seconds=0, report=Reports(),
                                  written=written)
    await delivery.request(dispatch("a"))
    await _until(lambda: asked == ["a"])
    assert channel.sent == [] and delivery.status("a") == PENDING  # a crash now resends nothing: nothing went out
    on_broker.set()
    await delivery.drain()
    assert [m.attempt_id for m in channel.sent] == ["a"]


async def test_the_outbox_table_knows_when_a_write_is_on_the_broker(monkeypatch) -> None:
    acks: list[asyncio.Future] = []

    def send_changelog(self, partition, key, value, key_serializer=None, value_serializer=None):
        acks.append(asyncio.get_running_loop().create_future())
        return acks[-1]

    monkeypatch.setattr(faust.Table, "send_changelog", send_changelog)
    app = faust.App("outbox-table-check", broker="kafka://127.0.0.1:1", store="memory://")
    table = OutboxTable(app, name="deliveries", default=None, beacon=app.tables.beacon)
    table.send_changelog(0, "a", {"outcome": "pending"})
    waiting = asyncio.ensure_future(table.written("a"))
    await asyncio.sleep(0)
    assert not waiting.done()
    acks[0].set_result(None)  # the broker acknowledged the changelog record
    await asyncio.wait_for(waiting, 1)
    await asyncio.wait_for(table.written("never-written"), 1)  # nothing outstanding: at once


async def test_a_delivery_keeps_and_sends_only_the_form_its_channel_sends() -> None:
    channels = {name: RecordingChannel(name) for name in ("sms", "email", "webhook")}
    store: dict = {}
    delivery = IdempotentDelivery(channels, store, attempts=1, backoff_seconds=0, report=Reports())
    for name in channels:
        await delivery.request(dispatch(f"a/{name}", name))
        kept = Dispatch.from_dict(store[f"a/{name}"]["dispatch"]).outgoing  # what waits in the outbox
        assert (kept.subject, kept.text, kept.body, kept.payload) == {
            "sms": ("", "t", "", {}), "email": ("s", "", "b", {}), "webhook": ("", "", "", {"k": 1})}[name]
    await delivery.drain()
    assert [channels[name].sent[0].text for name in ("sms", "email")] == ["t", ""]


async def test_the_outcome_is_recorded_once_the_final_report_is_published_and_only_once() -> None:
    published = asyncio.Event()
    writes: list[str] = []

    class Store(dict):
        def __setitem__(self, key, value) -> None:
            writes.append(value["outcome"])
            super().__setitem__(key, value)

    async def report(d: Dispatch, attempt: int, outcome: DeliveryOutcome, error, final: bool) -> None:
        await published.wait()

    delivery = IdempotentDelivery({"sms": RecordingChannel("sms")}, Store(), attempts=1, report=report)
    await delivery.request(dispatch("a"))
    await asyncio.sleep(0.01)
    assert delivery.status("a") == PENDING  # sent, but its final event is not on the broker yet
    published.set()
    await delivery.drain()
    assert delivery.status("a") == DeliveryOutcome.delivered.value  # not waiting for the stream to read it back
    delivery.settle("a", DeliveryOutcome.delivered)  # the stream reads the final event back: nothing to write
    assert writes == [PENDING, DeliveryOutcome.delivered.value]


async def test_a_delivery_awaits_its_own_reports_not_the_record_that_asked_for_it() -> None:
    producer = HeldProducer()
    publisher = faust_publisher(producer)

    async def report(d: Dispatch, attempt: int, outcome: DeliveryOutcome, error, final: bool) -> None:
        await publisher.publish(PAGES, d.attempt_id, next(e for e in one_of_each() if isinstance(e, PageSent)))

    delivery = IdempotentDelivery({"sms": RecordingChannel("sms")}, {}, attempts=1, report=report)
    record_sends: list = []
    async with sends_awaited_together(handing_on_to=record_sends):  # a record asks for the delivery
        await delivery.request(dispatch("a"))
    await _until(lambda: producer.futures)
    assert record_sends == []  # the record is acknowledged without the delivery's report...
    await asyncio.sleep(0.01)
    assert delivery.in_flight == 1 and delivery.status("a") == PENDING  # ...which the delivery itself waits for
    producer.futures[0].set_result(None)
    await delivery.drain()
    assert delivery.status("a") == DeliveryOutcome.delivered.value


def test_the_outbox_table_writes_off_the_stream_on_the_partition_that_asked() -> None:
    app = faust.App("outbox-partition-check", broker="kafka://127.0.0.1:1", store="memory://")
    table = OutboxTable(app, name="deliveries", default=None, beacon=app.tables.beacon)
    token = source_partition.set(3)  # a delivery's task carries the partition of the record that asked
    try:
        assert table.partition_for_key("a") == 3
    finally:
        source_partition.reset(token)
    with pytest.raises(TypeError):  # anywhere else, as any table: only from a stream
        table.partition_for_key("a")


async def test_waiting_to_try_again_or_to_write_the_outcome_holds_no_sending_slot() -> None:
    down, up = RecordingChannel("sms", fail_times=1), RecordingChannel("email")
    writing = asyncio.Event()

    async def report(d: Dispatch, attempt: int, outcome: DeliveryOutcome, error, final: bool) -> None:
        if d.attempt_id == "slow-write":
            await writing.wait()  # the broker is slow to take this one's attempt event

    delivery = IdempotentDelivery({"sms": down, "email": up}, {}, attempts=2, backoff_seconds=30, concurrency=1,
                                  report=report)
    await delivery.request(dispatch("retrying", "sms"))  # fails, then waits 30 s to try again
    await delivery.request(dispatch("slow-write", "email"))
    await delivery.request(dispatch("next", "email"))
    # One slot, and both went out while the first waits to try again and the second for its write.
    await asyncio.wait_for(_until(lambda: [m.attempt_id for m in up.sent] == ["slow-write", "next"]), 2)
    assert delivery.status("retrying") == delivery.status("slow-write") == PENDING
    writing.set()
    await asyncio.wait_for(_until(lambda: delivery.status("slow-write") == DeliveryOutcome.delivered.value), 2)
    await delivery.close()


async def test_a_sealed_outbox_keeps_each_delivery_under_the_key_of_whom_it_is_about() -> None:
    """Asked from a timer (no record handled) and settled in the send's own task alike: one data key per referral,
    not one per delivery (each key is a record every process reads), and none once the referral was erased."""
    from services.messaging.sealing import SealedValues
    from tests.unit.test_sealing_codec import KeysInMemory

    keys, raw = KeysInMemory(), {}
    channel = RecordingChannel("sms")
    delivery = IdempotentDelivery({"sms": channel}, SealedValues(raw, keys, "deliveries"), attempts=1,
                                  backoff_seconds=0)
    delivery.report = Reports()
    for n in range(3):
        await delivery.request(dispatch(f"pg-1/{n}/sms"))
    await delivery.drain()
    assert len(channel.sent) == 3 and {delivery.status(f"pg-1/{n}/sms") for n in range(3)} == {"delivered"}
    assert [subject for subject, _key_id in keys.keys] == ["r-1"]  # the dispatches' Disclosure subject

    slow = SlowChannel("sms")
    delivery.channels["sms"] = slow
    await delivery.request(dispatch("pg-1/3/sms"))
    await asyncio.wait_for(_until(lambda: slow.waiting == 1), 2)
    keys.destroy("r-1")  # erased while its last delivery is in flight
    slow.release.set()
    await delivery.drain()
    assert delivery.status("pg-1/3/sms") is None and "pg-1/3/sms" not in raw  # nothing more kept about it
    with pytest.raises(InvalidRecord, match="erased"):
        await delivery.request(dispatch("pg-1/4/sms"))  # nothing more is sent about it either
    assert len(slow.sent) == 1


async def test_a_held_delivery_waits_for_its_time_and_a_revoked_partition_leaves_its_holding_to_the_new_owner() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from services.kernel.clock import FakeClock

    clock = FakeClock(datetime(2026, 11, 20, 17, 0, tzinfo=UTC))
    sms = RecordingChannel("sms")
    delivery = IdempotentDelivery({"sms": sms}, {}, attempts=1, backoff_seconds=0, clock=clock)
    delivery.report = Reports()
    later = clock.now() + timedelta(hours=1)
    for partition, attempt in ((0, "a/sms"), (1, "b/sms")):
        token = source_partition.set(partition)
        try:
            assert await delivery.request(replace(dispatch(attempt), not_before=later))
        finally:
            source_partition.reset(token)
    assert delivery.held == 2 and delivery.status("a/sms") == PENDING and delivery.release_held() == 0
    await delivery.cancel({1})  # partition 1 revoked: its owner holds it now
    clock.advance(hours=1)
    assert delivery.release_held() == 1
    await delivery.drain()
    assert [m.attempt_id for m in sms.sent] == ["a/sms"] and delivery.status("b/sms") == PENDING
