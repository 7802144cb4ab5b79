"""Feed heartbeats: silence counts only in the agency's active hours; the program managers hear once per
silence, and once when the feed is back; a replayed or second worker's report tells nobody twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.cad_gateway.domain.feeds import active_hours_between, is_silent
from services.cad_gateway.events import CadFeedResumed, CadFeedSilent, FeedAlertSent
from services.cad_gateway.service import FeedWatch, feed_alerts
from services.kernel.bus import dispatch
from services.kernel.clock import FakeClock
from services.kernel.reference import (
    FeedExpectation,
)
from services.messaging.kafka import InMemoryPublisher
from services.messaging.outbox import IdempotentDelivery
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from tests.factories import cad_referral
from tests.fakes import SettledCalls, recording_channels

REF = load_reference_data(REPO_ROOT / "config" / "local")  # apd: every 6 hours, 06:00-22:00 Albuquerque
DAYTIME = FeedExpectation(every_hours=6, from_hour=6, until_hour=22, timezone="America/Denver")
MORNING = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)  # 06:00 in Albuquerque


def test_only_the_active_hours_count() -> None:
    evening = MORNING - timedelta(hours=9, minutes=30)  # 20:30 the day before
    assert active_hours_between(evening, MORNING + timedelta(hours=1), DAYTIME) == 2.5  # 20:30-22:00, 06:00-07:00
    assert not is_silent(evening, MORNING + timedelta(hours=4), DAYTIME)  # 5.5 active hours
    assert is_silent(evening, MORNING + timedelta(hours=4, minutes=31), DAYTIME)
    assert active_hours_between(MORNING, MORNING - timedelta(hours=1), DAYTIME) == 0
    assert active_hours_between(MORNING - timedelta(days=3), MORNING, DAYTIME) == 48


class Watch:
    def __init__(self, start: datetime) -> None:
        self.clock, self.publisher, self.channels = FakeClock(start), InMemoryPublisher(), recording_channels()
        self.table: dict = {}
        delivery = IdempotentDelivery(self.channels, {}, attempts=1, backoff_seconds=0,
                                      report=feed_alerts(self.publisher, self.clock))
        service = FeedWatch(REF, self.table, delivery, self.publisher, self.clock)
        self.watch = SettledCalls(service, delivery, self.publisher, FeedAlertSent, self.handle)
        self.service = service

    async def handle(self, event) -> None:
        await dispatch(self.service, FeedWatch.EVENTS, event)

    async def tick(self) -> list:
        before = len(self.publisher.records)
        await self.watch.check()
        new = [r.event for r in self.publisher.records[before:]]
        for event in new:
            await self.handle(event)
        await self.watch.settle()
        return new

    def told(self) -> list:
        return [m for ch in self.channels.values() for m in ch.sent]


async def test_a_silent_feed_tells_the_program_managers_once_and_again_when_it_is_back() -> None:
    w = Watch(MORNING - timedelta(hours=2))
    w.service.seen(cad_referral("CAD-1", occurred_at=MORNING - timedelta(hours=2)))  # 05:00: outside the window
    w.clock.set(MORNING + timedelta(hours=6))
    assert await w.tick() == []  # six active hours exactly: not yet
    w.clock.advance(minutes=1)
    [silent] = await w.tick()
    assert isinstance(silent, CadFeedSilent) and silent.last_event_at == MORNING - timedelta(hours=2)
    [mail] = w.told()
    assert mail.address == "pm@lead.example.org" and "Albuquerque Police Department" in mail.body
    assert "Sam" not in mail.body  # no one named
    w.clock.advance(hours=1)
    assert await w.tick() == []  # told once
    await w.handle(silent)  # another worker's copy
    await w.watch.settle()
    assert len(w.told()) == 1
    w.service.seen(cad_referral("CAD-2", occurred_at=w.clock.now()))
    [back] = await w.tick()
    assert isinstance(back, CadFeedResumed) and len(w.told()) == 2 and "arriving again" in w.told()[1].body
    assert await w.tick() == []


async def test_nothing_since_the_start_counts_from_the_start_and_overnight_is_quiet() -> None:
    night = MORNING - timedelta(hours=8)  # 22:00
    w = Watch(night)
    w.clock.set(MORNING + timedelta(hours=5))  # 11:00: five active hours since the start
    assert await w.tick() == []
    w.clock.set(MORNING + timedelta(hours=6, minutes=1))
    [silent] = await w.tick()
    assert silent.last_event_at is None and silent.silent_since == night
