"""The triage desk in memory: the coordinator is told at once, reminded once before the deadline if the
child is still unplaced, and never told anything about the child or the incident."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.handle_with_care.triage import TriageAlertAttempts, TriageDesk
from services.kernel.clock import FakeClock
from services.kernel.events import HwcTriageAlerted, HwcTriageOpened, HwcTriageResolved, HwcTriageStillUnplaced
from services.kernel.reference import load_reference_data
from services.kernel.settings import REPO_ROOT
from services.messaging.kafka import InMemoryPublisher
from services.messaging.outbox import IdempotentDelivery
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


def desk() -> tuple[TriageDesk, FakeClock, InMemoryPublisher, dict]:
    clock, publisher, channels = FakeClock(FRIDAY_NIGHT), InMemoryPublisher(), recording_channels()
    delivery = IdempotentDelivery(channels, {}, attempts=2, backoff_seconds=0,
                                  report=TriageAlertAttempts(publisher, clock))
    service = TriageDesk(REF, {}, delivery, publisher, clock, "https://handoff.test", timedelta(minutes=45))
    return SettledCalls(service, delivery, publisher, HwcTriageAlerted, service.on_triage_event), clock, publisher, channels


async def feed(d, publisher) -> None:
    for event in publisher.events(HwcTriageStillUnplaced):
        await d.on_triage_event(event)


async def test_the_coordinator_is_told_at_once_and_reminded_once_before_the_deadline() -> None:
    d, clock, publisher, channels = desk()
    for _ in range(2):  # a replay sends nothing twice
        await d.on_triage_event(opened())
    [alert] = channels["email"].sent
    assert alert.address == "hwc-coordinator@district.example.org" and alert.subject.endswith("needs a school")
    assert "https://handoff.test/console/triage" in alert.body and "Tue 19 Jan 07:45" in alert.body
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


async def test_a_placed_child_brings_no_reminder() -> None:
    d, clock, publisher, channels = desk()
    await d.on_triage_event(opened())
    await d.on_triage_event(HwcTriageResolved(cad_event_id="CAD-T", school_id="lincoln-es", resolved_by="coord-abq",
                                              resolved_at=FRIDAY_NIGHT + timedelta(hours=1)))
    clock.set(TUESDAY_START)
    assert await d.publish_due_reminders() == 0
    assert len(channels["email"].sent) == 1
