"""The triage desk in memory: the coordinator is told at once, reminded once before the deadline if the
child is still unplaced, and never told anything about the child or the incident."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.handle_with_care.events import (
    HwcTriageAlerted,
    HwcTriageOpened,
    HwcTriageResolved,
    HwcTriageStillUnplaced,
)
from services.handle_with_care.triage import DISPUTED, TriageAlertAttempts, TriageDesk
from services.kernel.clock import FakeClock
from services.kernel.errors import Rejected
from services.messaging.kafka import InMemoryPublisher
from services.messaging.outbox import IdempotentDelivery
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from tests.factories import child
from tests.fakes import SettledCalls, recording_channels

REF = load_reference_data(REPO_ROOT / "config" / "local")
DENVER = ZoneInfo("America/Denver")
FRIDAY_NIGHT = datetime(2027, 1, 15, 22, 30, tzinfo=DENVER)
TUESDAY_START = datetime(2027, 1, 19, 7, 45, tzinfo=DENVER)


def opened(cad_event_id: str = "CAD-T") -> HwcTriageOpened:
    return HwcTriageOpened(cad_event_id=cad_event_id, agency_id="apd", district_id="abq-ps", child=child(),
                           school_name_hint="the school by the park", encountered_at=FRIDAY_NIGHT,
                           opened_at=FRIDAY_NIGHT, school_id_given="zzz-unknown", due_at=TUESDAY_START)


class Placements(list):
    """HandleWithCare.place as the desk sees it: records each placement, or refuses it as a school gone would."""

    refuse: str | None = None

    async def __call__(self, placed: HwcTriageResolved) -> None:
        if self.refuse:
            raise Rejected("school_id", self.refuse)
        self.append(placed)


def desk(place: Placements | None = None) -> tuple[TriageDesk, FakeClock, InMemoryPublisher, dict]:
    clock, publisher, channels = FakeClock(FRIDAY_NIGHT), InMemoryPublisher(), recording_channels()
    delivery = IdempotentDelivery(channels, {}, attempts=2, backoff_seconds=0,
                                  report=TriageAlertAttempts(publisher, clock))
    service = TriageDesk(REF, {}, delivery, publisher, clock, "https://handoff.test", timedelta(minutes=45),
                         place=place if place is not None else Placements())
    return SettledCalls(service, delivery, publisher, HwcTriageAlerted, service.on_triage_event), clock, publisher, channels


def placed(school_id: str = "lincoln-es") -> HwcTriageResolved:
    return HwcTriageResolved(cad_event_id="CAD-T", school_id=school_id, resolved_by="coord-abq",
                             resolved_at=FRIDAY_NIGHT + timedelta(hours=1), agency_id="apd", child=child(),
                             encountered_at=FRIDAY_NIGHT)


async def feed(d, publisher) -> None:
    for event in publisher.events(HwcTriageStillUnplaced):
        await d.on_triage_event(event)


async def test_the_coordinator_is_told_at_once_and_reminded_once_before_the_deadline() -> None:
    d, clock, publisher, channels = desk()
    for _ in range(2):  # a replay sends nothing twice
        await d.on_triage_event(opened())
    [alert] = channels["email"].sent
    assert alert.address == "hwc-coordinator@district.example.org" and alert.subject.endswith("needs a school")
    assert "https://handoff.test/console/triage" in alert.body and "Tue 19 Jan 07:45 MST" in alert.body
    assert "school is not known" in alert.body
    assert alert.text == "" and alert.payload == {}  # an email carries only what email sends
    for private in ("Philippa", "Quackenbush", "2016", "park", "zzz-unknown"):
        assert private not in alert.subject + alert.body

    clock.set(TUESDAY_START - timedelta(minutes=46))
    assert await d.publish_due_reminders() == 0
    clock.set(TUESDAY_START - timedelta(minutes=45))
    assert await d.publish_due_reminders() == 1
    assert await d.publish_due_reminders() == 0  # in flight
    await feed(d, publisher)
    await feed(d, publisher)
    assert [m.subject for m in channels["email"].sent][1:] == ["Handle With Care: a child is still waiting for a school"]
    clock.advance(hours=5)
    assert await d.publish_due_reminders() == 0


async def test_a_placed_child_is_sent_once_and_brings_no_reminder() -> None:
    placements = Placements()
    d, clock, publisher, channels = desk(placements)
    await d.on_triage_event(opened())
    for _ in range(2):  # a replay places nothing twice
        await d.on_triage_event(placed())
    assert [p.school_id for p in placements] == ["lincoln-es"]
    clock.set(TUESDAY_START)
    assert await d.publish_due_reminders() == 0
    assert len(channels["email"].sent) == 1


async def test_a_disputed_school_says_so_to_the_coordinator() -> None:
    d, _clock, _publisher, channels = desk()
    await d.on_triage_event(opened().model_copy(update={"school_id_given": "lincoln-es", "roster_school_id": "sunrise-dc",
                                                        "reason": DISPUTED}))
    [alert] = channels["email"].sent
    assert "not known" not in alert.body and "roster does not have the child at" in alert.body
    assert "Lincoln" not in alert.body and "Sunrise" not in alert.body  # which schools: behind sign-in


async def test_a_placement_that_cannot_be_sent_goes_back_to_triage_with_the_reason() -> None:
    placements = Placements()
    placements.refuse = "school 'lincoln-es' is no longer in the directory"
    d, clock, publisher, channels = desk(placements)
    await d.on_triage_event(opened())
    await d.on_triage_event(placed())
    [reopened] = [e for e in publisher.events(HwcTriageOpened) if e.reopened]
    assert "no longer in the directory" in reopened.reason and reopened.child == child()
    assert reopened.due_at == TUESDAY_START
    await d.on_triage_event(reopened)
    await d.on_triage_event(reopened)  # a replay tells nobody twice
    emails = channels["email"].sent
    assert [m.subject for m in emails][1:] == ["Handle With Care: a child you placed was not sent to the school"]
    assert "no longer in the directory" in emails[1].body and "Philippa" not in emails[1].body
    clock.set(TUESDAY_START - timedelta(minutes=45))  # still unplaced: the reminder comes as for any item
    assert await d.publish_due_reminders() == 1
    placements.refuse = None
    await d.on_triage_event(placed("sunrise-dc"))  # placed again, elsewhere: sent
    assert [p.school_id for p in placements] == ["sunrise-dc"]
    await d.on_triage_event(opened())  # the encounter replayed by CAD does not reopen a placed child
    assert len(channels["email"].sent) == 2
