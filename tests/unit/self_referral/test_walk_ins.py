"""Self-referral walk-ins in memory: the nearest available volunteers are paged (never the person's
name), the first to accept takes it and the others are told, nobody accepting tells the coordinator
once, a walk-in not placed within the target tells them again, and retention deletes it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from services.kernel.clock import FakeClock
from services.kernel.errors import Rejected
from services.kernel.reference import (
    Availability,
)
from services.messaging.kafka import InMemoryPublisher
from services.messaging.outbox import IdempotentDelivery
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.self_referral.domain.walk_in import case_id_for
from services.self_referral.events import (
    EscalationReason,
    WalkInAccepted,
    WalkInEscalated,
    WalkInExpired,
    WalkInMessageSent,
    WalkInMilestone,
    WalkInMilestoneRecorded,
    WalkInOpened,
)
from services.self_referral.service import SelfReferrals, walk_in_messages
from tests.factories import NOW, walk_in
from tests.fakes import SettledCalls, recording_channels

# abq, Friday 08:30 local: Dana (12 min from Foothills), Eli (20), Faye (25) can go; Gus only on
# Friday and Saturday nights. Coordinator: cm-cruz. 10 minutes to accept, 24 hours to placement.
REF = load_reference_data(REPO_ROOT / "config" / "local")
CASE = case_id_for("w-1")


class Program:
    def __init__(self, reference=REF) -> None:
        self.clock, self.publisher, self.channels = FakeClock(NOW), InMemoryPublisher(), recording_channels()
        self.deliveries: dict = {}
        delivery = IdempotentDelivery(self.channels, self.deliveries, attempts=2, backoff_seconds=0,
                                      report=walk_in_messages(self.publisher, self.clock))
        self.store: dict = {}
        service = SelfReferrals(reference, self.store, delivery, self.publisher, self.clock,
                                lambda case_id, volunteer_id: f"https://handoff.test/walk-in/{case_id}.{volunteer_id}",
                                "https://handoff.test", retention=timedelta(days=60))
        self.walk_ins = SettledCalls(service, delivery, self.publisher, WalkInMessageSent, service.on_case_event)

    async def walk_in(self, **kw) -> WalkInOpened:
        await self.walk_ins.on_walk_in_event(walk_in(**kw))
        opened = self.publisher.events(WalkInOpened)[-1]
        await self.walk_ins.on_case_event(opened)
        return opened

    async def tick(self) -> list:
        before = len(self.publisher.records)
        await self.walk_ins.publish_due()
        new = [r.event for r in self.publisher.records[before:]]
        for event in new:
            await self.walk_ins.on_case_event(event)
        return new

    def sent(self, to: str | None = None) -> list:
        return [m for ch in self.channels.values() for m in ch.sent if to is None or m.attempt_id.split("/")[2] == to]


async def test_the_three_nearest_available_volunteers_are_paged_with_the_station_and_their_own_link() -> None:
    program = Program()
    opened = await program.walk_in()
    assert opened.paged == ["vol-dana", "vol-eli", "vol-faye"]  # nearest first; Gus is not available now
    assert opened.accept_by == NOW + timedelta(minutes=10)
    assert opened.placement_due_at == NOW + timedelta(hours=24)
    pages = program.sent()
    assert {m.address for m in pages} == {"+15055550201", "+15055550202", "eli@angels.example.org", "+15055550203"}
    dana = program.sent("vol-dana")[0]
    assert "Foothills Area Command" in dana.text and "08:30" in dana.text
    assert "https://handoff.test/walk-in/wi-w-1.vol-dana" in dana.text  # her own link, nobody else's
    for message in pages:
        assert "Sam" not in message.subject + message.text + message.body + repr(message.payload)
    await program.walk_ins.on_case_event(opened)  # a replay pages nobody again
    assert len(program.sent()) == 4


async def test_the_first_to_accept_takes_it_and_the_others_are_told_it_is_taken() -> None:
    program = Program()
    await program.walk_in()
    for volunteer in ("vol-eli", "vol-dana", "vol-eli"):  # Eli first; Dana a moment later; Eli again
        await program.walk_ins.on_case_event(WalkInAccepted(case_id=CASE, volunteer_id=volunteer, accepted_at=NOW))
    assert program.store[CASE]["state"]["accepted_by"] == "vol-eli"
    taken = [m for m in program.sent() if "/taken/" in m.attempt_id]
    assert {m.attempt_id.split("/")[2] for m in taken} == {"vol-dana", "vol-faye"}
    assert all("taken by another volunteer" in m.text for m in taken)
    program.clock.advance(minutes=11)
    assert [e for e in await program.tick() if isinstance(e, WalkInEscalated)] == []  # taken: nobody to tell


async def test_nobody_accepting_tells_the_coordinator_once_then_not_placed_in_time_tells_them_again() -> None:
    program = Program()
    await program.walk_in()
    program.clock.advance(minutes=10, seconds=-1)
    assert await program.tick() == []
    program.clock.advance(seconds=1)
    [escalated] = await program.tick()
    assert escalated.reason is EscalationReason.unanswered
    told = program.sent("cm-cruz")
    assert {m.address for m in told} == {"+15055550103", "http://127.0.0.1:8025/webhooks/outreach"}
    assert "3 volunteers paged, nobody accepted" in told[0].text and "Sam" not in told[0].text
    program.clock.advance(minutes=5)
    assert await program.tick() == []  # told once
    await program.walk_ins.on_case_event(escalated)  # a replay sends nothing again
    assert len(program.sent("cm-cruz")) == 2
    await program.walk_ins.on_case_event(WalkInAccepted(case_id=CASE, volunteer_id="vol-faye",
                                                        accepted_at=program.clock.now()))
    assert program.store[CASE]["state"]["accepted_by"] == "vol-faye"  # a late acceptance still takes it
    program.clock.set(NOW + timedelta(hours=24))
    [overdue] = await program.tick()
    assert overdue.reason is EscalationReason.placement_overdue
    assert any("not placed in treatment within 24 hours" in m.text for m in program.sent("cm-cruz"))


async def test_placed_closes_the_walk_in_and_nobody_is_told_after() -> None:
    program = Program()
    await program.walk_in()
    await program.walk_ins.on_case_event(WalkInAccepted(case_id=CASE, volunteer_id="vol-dana", accepted_at=NOW))
    for i, milestone in enumerate((WalkInMilestone.volunteer_arrived, WalkInMilestone.placed)):
        await program.walk_ins.on_case_event(WalkInMilestoneRecorded(
            milestone_id=f"m{i}", case_id=CASE, site_id="abq", milestone=milestone, recorded_by="vol-dana", at=NOW))
    assert program.store[CASE]["state"]["closed_by"] == "placed"
    program.clock.advance(hours=30)
    assert await program.tick() == []


async def test_with_nobody_to_page_the_coordinator_is_told_at_once() -> None:
    lapsed = {i: v.model_copy(update={"cleared_until": date(2026, 1, 1)}) for i, v in REF.volunteers.items()}
    program = Program(REF.model_copy(update={"volunteers": lapsed}))  # every background check out of date
    opened = await program.walk_in()
    assert opened.paged == [] and opened.accept_by == NOW
    [escalated] = await program.tick()
    assert escalated.reason is EscalationReason.no_volunteer
    assert "no volunteer is available" in program.sent("cm-cruz")[0].text


async def test_retention_deletes_the_walk_in_and_its_message_records() -> None:
    program = Program()
    await program.walk_in()
    await program.walk_ins.on_case_event(WalkInAccepted(case_id=CASE, volunteer_id="vol-dana", accepted_at=NOW))
    await program.walk_ins.on_case_event(WalkInMilestoneRecorded(
        milestone_id="m", case_id=CASE, site_id="abq", milestone=WalkInMilestone.declined, recorded_by="vol-dana",
        at=NOW))
    assert program.deliveries
    program.clock.set(NOW + timedelta(days=60))
    events = await program.tick()
    assert [type(e) for e in events] == [WalkInExpired]
    assert CASE not in program.store and program.deliveries == {}


@pytest.mark.parametrize("changes, field", [
    ({"station_id": "airport"}, "station_id"),
    ({"site_id": "santa-fe"}, "site_id"),  # runs no self-referral pathway (and apd does not serve it)
    ({"agency_id": "nobody"}, "agency_id"),
    ({"occurred_at": NOW + timedelta(days=1)}, "occurred_at"),
])
async def test_a_bad_walk_in_is_refused_naming_the_field(changes, field) -> None:
    program = Program()
    with pytest.raises(Rejected, match=field):
        await program.walk_ins.on_walk_in_event(walk_in(**changes))
    assert program.publisher.records == []


def test_availability_runs_past_midnight_and_eligibility_ends_with_the_background_check() -> None:
    nights = Availability(days=frozenset({4, 5}), start=time(18), end=time(6))  # Friday and Saturday nights
    friday = date(2026, 11, 20)
    assert nights.covers(datetime.combine(friday, time(23)))
    assert nights.covers(datetime.combine(friday + timedelta(days=1), time(5, 59)))  # Saturday early: Friday's night
    assert not nights.covers(datetime.combine(friday, time(5)))  # Friday early: Thursday's night, not covered
    assert not nights.covers(datetime.combine(friday + timedelta(days=2), time(12)))
    gus, faye = REF.volunteers["vol-gus"], REF.volunteers["vol-faye"]
    assert gus.can_go("abq", "foothills", datetime.combine(friday, time(22)), 60)
    assert not gus.can_go("abq", "valley", datetime.combine(friday, time(22)), 60)  # no travel time: not near
    assert not gus.can_go("abq", "foothills", datetime.combine(friday, time(22)), 30)  # 40 minutes away
    assert not faye.can_go("abq", "foothills", datetime(2027, 4, 1, 12), 60)  # check lapsed on 2027-03-31
