"""The delivery outbox: concurrent sends, settling by event, resume after a crash."""

from __future__ import annotations

import asyncio

from services.delivery.channels import Outgoing
from services.kernel.events import DeliveryOutcome, DisclosedRecord
from services.messaging.outbox import PENDING, Disclosure, Dispatch, IdempotentDelivery, source_partition
from tests.fakes import RecordingChannel


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
