"""Handle With Care in memory: merging, minimal disclosure on every channel, escalation by lead time."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.delivery.links import AckLinks
from services.handle_with_care.domain.escalation import EscalationLeads
from services.handle_with_care.domain.notice import notice_id_for
from services.handle_with_care.events import (
    HwcNoticeAcknowledged,
    HwcNoticeDelivered,
    HwcNoticeEscalated,
    HwcNoticeRequested,
    HwcTriageOpened,
    RecipientRole,
)
from services.handle_with_care.service import CalendarDirectory, HandleWithCare, NoticeAttempts
from services.kernel.clock import FakeClock
from services.kernel.events import (
    AcknowledgedVia,
    Child,
)
from services.kernel.identity import normalize_name
from services.messaging.kafka import InMemoryPublisher
from services.messaging.outbox import IdempotentDelivery
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from tests.factories import cad_child, child
from tests.fakes import SettledCalls, recording_channels

REF = load_reference_data(REPO_ROOT / "config" / "local")
DENVER = ZoneInfo("America/Denver")
FRIDAY_NIGHT = datetime(2027, 1, 15, 22, 30, tzinfo=DENVER)  # Monday 2027-01-18 is MLK Day
TUESDAY_START = datetime(2027, 1, 19, 7, 45, tzinfo=DENVER)
INCIDENT_WORDS = ["DOMESTIC", "WEAPON", "Mockingbird", "1313", "broken glass", "shouting", "Mortimer", "Marlowe",
                  "apd", "Albuquerque Police", "INC-77", "cad-"]


class Harness:
    def __init__(self, disclose_agency: bool = False, reference=REF) -> None:
        self.clock = FakeClock(FRIDAY_NIGHT + timedelta(minutes=1))
        self.publisher = InMemoryPublisher()
        self.channels = recording_channels()
        delivery = IdempotentDelivery(self.channels, {}, attempts=2, backoff_seconds=0,
                                      report=NoticeAttempts(self.publisher, self.clock))
        hwc = HandleWithCare(
            reference, CalendarDirectory(reference), {}, delivery, AckLinks("k", "https://h.test", 3600),
            self.publisher, self.clock, EscalationLeads(timedelta(minutes=90), timedelta(minutes=45)),
            disclose_agency=disclose_agency)
        self.hwc = SettledCalls(hwc, delivery, self.publisher, HwcNoticeDelivered, hwc.on_notice_event)

    async def encounter(self, event) -> None:
        """Both steps, as the two topics would run them (CAD reports an encounter as it happens)."""
        if event.encountered_at > self.clock.now():
            self.clock.set(event.encountered_at)
        request = await self.hwc.on_encounter(event)
        if request is not None:
            await self.hwc.on_notice_event(request)

    async def feed_escalations(self) -> None:
        for record in [r for r in self.publisher.records if isinstance(r.event, HwcNoticeEscalated)]:
            await self.hwc.on_notice_event(record.event)

    def everything_sent(self) -> str:
        out = []
        for channel in self.channels.values():
            for m in channel.sent:
                out += [m.subject, m.text, m.body, repr(m.payload), m.address]
        return "\n".join(out)


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_friday_night_encounter_is_due_tuesday_and_sent_at_once(h) -> None:
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    [request] = h.publisher.events(HwcNoticeRequested)
    assert request.due_at == TUESDAY_START and request.school_id == "lincoln-es"
    assert [m.address for m in h.channels["email"].sent] == ["counselor@lincoln.example.org"]
    assert [m.address for m in h.channels["webhook"].sent] == ["http://127.0.0.1:8025/webhooks/sis"]


async def test_no_incident_detail_reaches_any_channel(h) -> None:
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    h.clock.set(TUESDAY_START)  # through every escalation stage too
    await h.hwc.publish_due_escalations()
    await h.feed_escalations()
    sent = h.everything_sent()
    assert {"email", "webhook"} <= {c for c, ch in h.channels.items() if ch.sent}
    for word in INCIDENT_WORDS:
        assert word.lower() not in sent.lower(), word
    for required in ["Handle With Care", "Philippa", "Quackenbush", "2016-09-02", "Lincoln Elementary"]:
        assert required in sent
    assert "Philippa" not in " ".join(m.subject for ch in h.channels.values() for m in ch.sent)


async def test_agency_named_only_when_the_program_opts_in() -> None:
    h = Harness(disclose_agency=True)
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    assert "Sent by: apd" in h.channels["email"].sent[0].body
    assert "Mockingbird" not in h.everything_sent()


async def test_same_child_from_two_incidents_before_one_deadline_is_one_notice(h) -> None:
    await h.encounter(cad_child("cad-1", encountered_at=FRIDAY_NIGHT))
    same_child_other_spelling = Child(first_name="  PHILIPPA ", last_name="Quackenbush", date_of_birth=date(2016, 9, 2))
    await h.encounter(cad_child("cad-2", incident_id="INC-99", child=same_child_other_spelling,
                                encountered_at=FRIDAY_NIGHT + timedelta(hours=12)))
    assert len({e.notice_id for e in h.publisher.events(HwcNoticeRequested)}) == 1
    assert len(h.channels["email"].sent) == 1
    [record] = h.hwc.notices.values()
    assert record.state.merged_encounters == 2


async def test_replay_sends_nothing_twice(h) -> None:
    for _ in range(3):
        await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    assert len(h.channels["email"].sent) == 1 and len(h.channels["webhook"].sent) == 1


async def test_different_deadlines_are_different_notices(h) -> None:
    await h.encounter(cad_child("cad-1", encountered_at=FRIDAY_NIGHT))
    await h.encounter(cad_child("cad-2", encountered_at=TUESDAY_START + timedelta(hours=3)))
    assert len({e.notice_id for e in h.publisher.events(HwcNoticeRequested)}) == 2


async def test_unacknowledged_notice_goes_to_backup_then_coordinator_then_is_reported(h) -> None:
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    h.clock.set(TUESDAY_START - timedelta(minutes=91))
    assert await h.hwc.publish_due_escalations() == 0
    h.clock.set(TUESDAY_START - timedelta(minutes=90))
    assert await h.hwc.publish_due_escalations() == 1
    await h.feed_escalations()
    assert h.channels["email"].sent[-1].address == "principal@lincoln.example.org"
    h.clock.set(TUESDAY_START - timedelta(minutes=45))
    await h.hwc.publish_due_escalations()
    await h.feed_escalations()
    assert h.channels["email"].sent[-1].address == "hwc-coordinator@district.example.org"
    h.clock.set(TUESDAY_START)
    await h.hwc.publish_due_escalations()
    await h.feed_escalations()
    escalations = h.publisher.events(HwcNoticeEscalated)
    assert [(e.to_role, e.overdue) for e in escalations] == [
        (RecipientRole.backup, False), (RecipientRole.coordinator, False), (RecipientRole.coordinator, True)]
    roles = {e.recipient_role for e in h.publisher.events(HwcNoticeDelivered)}
    assert roles == {RecipientRole.primary, RecipientRole.backup, RecipientRole.coordinator}


async def test_acknowledged_notice_never_escalates(h) -> None:
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    [request] = h.publisher.events(HwcNoticeRequested)
    await h.hwc.on_notice_event(HwcNoticeAcknowledged(notice_id=request.notice_id, contact_id="lincoln-counselor",
                                                      via=AcknowledgedVia.link, acknowledged_at=h.clock.now()))
    h.clock.set(TUESDAY_START + timedelta(days=1))
    assert await h.hwc.publish_due_escalations() == 0


async def test_home_educated_child_goes_to_the_local_authority(h) -> None:
    await h.encounter(cad_child(school_id=None, home_educated=True, encountered_at=FRIDAY_NIGHT))
    [request] = h.publisher.events(HwcNoticeRequested)
    assert request.school_id == "abq-home-education"
    assert h.channels["email"].sent[0].address == "home-education@district.example.org"


async def test_unknown_school_goes_to_the_coordinators_triage_without_incident_details(h) -> None:
    await h.encounter(cad_child(school_id=None, school_name_hint="the school by the park", encountered_at=FRIDAY_NIGHT))
    assert h.publisher.events(HwcNoticeRequested) == []
    [item] = h.publisher.events(HwcTriageOpened)
    assert item.district_id == "abq-ps" and item.school_name_hint == "the school by the park"
    assert "Mockingbird" not in repr(item) and "DOMESTIC" not in repr(item)


def test_name_normalization_merges_spelling_variants() -> None:
    assert normalize_name("  José  O'Neil-Smith ") == "joseoneilsmith"
    base = notice_id_for(child(), "lincoln-es", TUESDAY_START)
    assert notice_id_for(child().model_copy(update={"first_name": "PHILIPPA"}), "lincoln-es", TUESDAY_START) == base
    assert notice_id_for(child(), "sunrise-dc", TUESDAY_START) != base


async def test_replay_after_a_partial_delivery_completes_it_without_resending(h) -> None:
    h.channels["webhook"].fail_times = -1  # the school portal is down during the first run
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    assert len(h.channels["email"].sent) == 1 and h.channels["webhook"].sent == []
    h.channels["webhook"].fail_times = 0
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))  # replay, or the handler's retry
    assert len(h.channels["email"].sent) == 1 and len(h.channels["webhook"].sent) == 1


async def test_a_notice_is_forgotten_when_its_retention_ends_after_the_deadline_or_a_later_acknowledgement(h) -> None:
    from services.handle_with_care.events import HwcNoticeExpired

    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    [notice_id] = list(h.hwc.notices.keys())
    deliveries = h.hwc.delivery.deliveries
    assert [k for k in deliveries if k.startswith(notice_id)]
    h.clock.set(TUESDAY_START + timedelta(days=29))  # acknowledged late, a day before 30 days after the deadline
    await h.hwc.on_notice_event(HwcNoticeAcknowledged(notice_id=notice_id, contact_id="lincoln-counselor",
                                                      via=AcknowledgedVia.link, acknowledged_at=h.clock.now()))
    h.clock.set(TUESDAY_START + timedelta(days=30))
    assert [e for e in h.publisher.events() if isinstance(e, HwcNoticeExpired)] == []
    await h.hwc.publish_due_escalations()
    assert [e for e in h.publisher.events() if isinstance(e, HwcNoticeExpired)] == []  # 30 days after the ack
    h.clock.set(TUESDAY_START + timedelta(days=60))
    await h.hwc.publish_due_escalations()
    [expired] = [e for e in h.publisher.events() if isinstance(e, HwcNoticeExpired)]
    await h.hwc.on_notice_event(expired)
    assert list(h.hwc.notices.keys()) == []
    assert [k for k in deliveries if k.startswith(notice_id)] == []
    await h.hwc.on_notice_event(expired)  # a replay changes nothing
    await h.hwc.publish_due_escalations()
    assert len([e for e in h.publisher.events() if isinstance(e, HwcNoticeExpired)]) == 1


async def test_a_late_notice_goes_to_the_primary_first_marked_late_then_escalates_step_by_step(h) -> None:
    monday_night = datetime(2027, 1, 19, 22, 0, tzinfo=DENVER) - timedelta(days=1)  # reported Tuesday morning
    h.clock.set(TUESDAY_START + timedelta(hours=1, minutes=15))
    await h.encounter(cad_child(encountered_at=monday_night))
    [first] = h.channels["email"].sent
    assert first.address == "counselor@lincoln.example.org" and first.subject.startswith("LATE Handle With Care")
    assert "This notice is late" in first.body and "primary contact" not in first.body
    assert await h.hwc.publish_due_escalations() == 0  # not everyone at once
    h.clock.advance(minutes=29)
    assert await h.hwc.publish_due_escalations() == 0
    h.clock.advance(minutes=1)
    assert await h.hwc.publish_due_escalations() == 1
    await h.feed_escalations()
    backup = h.channels["email"].sent[-1]
    assert backup.address == "principal@lincoln.example.org"
    assert "because the school's primary contact has not acknowledged it" in backup.body
    h.clock.advance(minutes=30)
    await h.hwc.publish_due_escalations()
    await h.feed_escalations()
    coordinator = h.channels["email"].sent[-1]
    assert coordinator.address == "hwc-coordinator@district.example.org"
    assert "as the district's coordinator because nobody at the school has acknowledged it" in coordinator.body
    assert "Mockingbird" not in h.everything_sent()


async def test_a_district_sets_its_own_lead_times() -> None:
    from services.kernel.reference import ReferenceData

    district = REF.districts["abq-ps"].model_copy(update={"hwc_backup_lead_minutes": 600})
    h = Harness()
    h.hwc.reference = ReferenceData(**{**REF.__dict__, "districts": {**REF.districts, "abq-ps": district}})
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    h.clock.set(TUESDAY_START - timedelta(minutes=600))
    assert await h.hwc.publish_due_escalations() == 1  # ten hours before, not the default ninety minutes


async def test_a_closure_added_after_the_notice_moves_its_deadline_and_every_stage_with_it() -> None:
    """Tuesday is made a snow day after the notice for Tuesday was sent: the timer publishes the new deadline
    (Wednesday) before any stage, the owner applies it, the backup contact is told on Wednesday's schedule, and
    the read model (the console, the on-time figures) shows Wednesday."""
    from services.handle_with_care.domain.figures import HwcReadModel
    from services.handle_with_care.events import HwcNoticeRescheduled
    from services.kernel.reference import LiveReference

    live = LiveReference(REF.model_copy(update={"closures": {}}))
    h = Harness(reference=live)
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    [request] = h.publisher.events(HwcNoticeRequested)
    assert request.due_at == TUESDAY_START
    h.clock.set(FRIDAY_NIGHT + timedelta(hours=2))
    assert await h.hwc.publish_due_escalations() == 0

    live.replace(live.current.model_copy(update={"closures": {"lincoln-es": {date(2027, 1, 19): "snow day"}}}))
    wednesday = TUESDAY_START + timedelta(days=1)
    assert await h.hwc.publish_due_escalations() == 1
    [moved] = h.publisher.events(HwcNoticeRescheduled)
    assert (moved.notice_id, moved.due_at, moved.previous_due_at, moved.reason) == (
        request.notice_id, wednesday, TUESDAY_START, "closure: snow day")
    assert await h.hwc.publish_due_escalations() == 0  # published once, until its owner applies it
    await h.hwc.on_notice_event(moved)
    await h.hwc.on_notice_event(moved)  # a replay moves nothing further

    h.clock.set(TUESDAY_START - timedelta(minutes=90))  # the old schedule's backup time: nothing now
    assert await h.hwc.publish_due_escalations() == 0
    h.clock.set(wednesday - timedelta(minutes=91))
    assert await h.hwc.publish_due_escalations() == 0
    h.clock.set(wednesday - timedelta(minutes=90))
    assert await h.hwc.publish_due_escalations() == 1
    [escalated] = h.publisher.events(HwcNoticeEscalated)
    assert escalated.to_role is RecipientRole.backup and not escalated.overdue

    model = HwcReadModel(lambda school_id: "abq-ps")
    for event in h.publisher.events():
        model.apply(event)
    assert model.notices[request.notice_id].due_at == wednesday
    assert model.requests[request.notice_id].due_at == wednesday


async def test_an_acknowledged_notice_keeps_its_deadline_when_a_closure_is_added() -> None:
    from services.handle_with_care.events import HwcNoticeRescheduled
    from services.kernel.reference import LiveReference

    live = LiveReference(REF.model_copy(update={"closures": {}}))
    h = Harness(reference=live)
    await h.encounter(cad_child(encountered_at=FRIDAY_NIGHT))
    [request] = h.publisher.events(HwcNoticeRequested)
    await h.hwc.on_notice_event(HwcNoticeAcknowledged(notice_id=request.notice_id, contact_id="lincoln-counselor",
                                                      via=AcknowledgedVia.link, acknowledged_at=h.clock.now()))
    live.replace(live.current.model_copy(update={"closures": {"lincoln-es": {date(2027, 1, 19): "snow day"}}}))
    h.clock.set(TUESDAY_START)
    await h.hwc.publish_due_escalations()
    assert h.publisher.events(HwcNoticeRescheduled) == []
