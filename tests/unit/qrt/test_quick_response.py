"""Quick Response Team follow-ups in memory: an overdose opens a follow-up due exactly at the site's
window and a de-identified report; the team lead hears before the window closes unless someone was
engaged; attempts are recorded once; fatal overdoses open family support only where offered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.kernel.clock import FakeClock
from services.kernel.errors import Rejected
from services.messaging.kafka import InMemoryPublisher
from services.messaging.outbox import IdempotentDelivery
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.quick_response.domain.follow_up import task_id_for
from services.quick_response.events import (
    AttemptOutcome,
    FollowUpAlertSent,
    FollowUpAttempted,
    FollowUpEscalated,
    FollowUpKind,
    FollowUpOpened,
    OverdoseReported,
)
from services.quick_response.service import QuickResponse, follow_up_alerts
from tests.factories import NOW, overdose
from tests.fakes import SettledCalls, recording_channels

REF = load_reference_data(REPO_ROOT / "config" / "local")  # abq: 72-hour window, warned 12 hours before, cm-cruz


class Team:
    def __init__(self, reference=REF) -> None:
        self.clock, self.publisher, self.channels = FakeClock(NOW), InMemoryPublisher(), recording_channels()
        delivery = IdempotentDelivery(self.channels, {}, attempts=2, backoff_seconds=0,
                                      report=follow_up_alerts(self.publisher, self.clock))
        self.store: dict = {}
        service = QuickResponse(reference, self.store, delivery, self.publisher, self.clock, b"test-key",
                                "https://handoff.test")
        self.qrt = SettledCalls(service, delivery, self.publisher, FollowUpAlertSent, service.on_follow_up_event)

    async def overdose(self, **kw) -> None:
        await self.qrt.on_overdose_event(overdose(**kw))
        for event in self.publisher.events(FollowUpOpened):
            await self.qrt.on_follow_up_event(event)

    async def tick(self) -> list[FollowUpEscalated]:
        before = len(self.publisher.events(FollowUpEscalated))
        await self.qrt.publish_due_warnings()
        new = self.publisher.events(FollowUpEscalated)[before:]
        for event in new:
            await self.qrt.on_follow_up_event(event)
        return new

    def sent_to_lead(self) -> list:
        return [m for ch in self.channels.values() for m in ch.sent]


async def test_an_overdose_opens_a_follow_up_due_exactly_at_the_sites_window_and_a_report() -> None:
    team = Team()
    await team.overdose()
    [opened] = team.publisher.events(FollowUpOpened)
    assert opened.task_id == task_id_for("od-1") and opened.kind is FollowUpKind.outreach
    assert opened.due_at == NOW + timedelta(hours=72)
    assert opened.person is not None and opened.person.contact_address  # the team needs to know where to go
    [report] = team.publisher.events(OverdoseReported)
    assert report.site_id == "abq" and report.fatal is False
    assert team.store[opened.task_id]["state"]["due_at"].startswith("2026-11-23T15:30")


async def test_the_team_lead_hears_once_just_before_the_window_closes_and_nothing_personal() -> None:
    team = Team()
    await team.overdose()
    team.clock.advance(hours=60, seconds=-1)  # 12 hours before the window closes, less a second
    assert await team.tick() == []
    team.clock.advance(seconds=1)
    [escalated] = await team.tick()
    assert escalated.due_at == NOW + timedelta(hours=72)
    alerts = team.sent_to_lead()
    assert {m.address for m in alerts} == {"+15055550103", "http://127.0.0.1:8025/webhooks/outreach"}  # cm-cruz
    for message in alerts:
        shown = message.subject + message.text + message.body + repr(message.payload)
        for private in ("Bartholomew", "Quackenbush", "1994", "Central", "+15055550177", "motel"):
            assert private not in shown
    team.clock.advance(hours=1)
    assert await team.tick() == []  # told once
    await team.qrt.on_follow_up_event(escalated)  # a replayed escalation sends nothing again
    assert len(team.sent_to_lead()) == 2


async def test_an_engaged_person_closes_the_follow_up_and_nobody_is_warned() -> None:
    team = Team()
    await team.overdose()
    task_id = task_id_for("od-1")
    for attempt_id, outcome in (("a1", AttemptOutcome.not_home), ("a2", AttemptOutcome.engaged),
                                ("a2", AttemptOutcome.engaged)):  # a retried tap is one attempt
        await team.qrt.on_follow_up_event(FollowUpAttempted(
            attempt_id=attempt_id, task_id=task_id, site_id="abq", outcome=outcome, recorded_by="cm-cruz",
            attempted_at=NOW))
    state = team.store[task_id]["state"]
    assert state["attempts"] == ["not_home", "engaged"] and state["closed_by"] == "engaged"
    team.clock.advance(hours=71)
    assert await team.tick() == [] and team.sent_to_lead() == []


@pytest.mark.parametrize("family_support, kind", [(True, FollowUpKind.family_support), (False, None)])
async def test_a_fatal_overdose_opens_family_support_only_where_the_site_offers_it(family_support, kind) -> None:
    site = REF.sites["abq"]
    reference = REF.model_copy(update={"sites": {**REF.sites, "abq": site.model_copy(update={
        "quick_response": site.quick_response.model_copy(update={"family_support": family_support})})}})
    team = Team(reference)
    await team.overdose(fatal=True, naloxone_given=False, naloxone_doses=0)
    assert [e.kind for e in team.publisher.events(FollowUpOpened)] == ([kind] if kind else [])
    assert len(team.publisher.events(OverdoseReported)) == 1  # the public-health report either way


async def test_a_site_without_a_team_still_reports_and_an_unknown_site_is_refused() -> None:
    team = Team()
    await team.qrt.on_overdose_event(overdose(agency_id="sfpd", site_id="santa-fe"))
    assert team.publisher.events(FollowUpOpened) == [] and len(team.publisher.events(OverdoseReported)) == 1
    with pytest.raises(Rejected, match="site_id"):
        await team.qrt.on_overdose_event(overdose(site_id="santa-fe"))  # apd does not serve Santa Fe


async def test_a_follow_up_is_deleted_with_its_alerts_when_its_retention_ends() -> None:
    from services.quick_response.events import FollowUpExpired

    team = Team()
    await team.overdose()
    team.clock.advance(hours=60)
    await team.tick()  # the lead is told: alert records exist
    team.clock.advance(hours=12)
    await team.tick()  # the window closed, nobody engaged: the program managers are told
    task_id = task_id_for("od-1")
    delivery = team.qrt._service.delivery
    assert any(key.startswith(f"{task_id}/overdue/pm-abq/") for key in delivery.deliveries)
    team.clock.set(NOW + timedelta(hours=72) + timedelta(days=60, seconds=-1))
    await team.qrt.publish_due_warnings()
    assert team.publisher.events(FollowUpExpired) == []
    team.clock.advance(seconds=1)
    await team.qrt.publish_due_warnings()
    [expired] = team.publisher.events(FollowUpExpired)
    await team.qrt.on_follow_up_event(expired)
    assert task_id not in team.store and not any(key.startswith(task_id) for key in delivery.deliveries)


async def test_a_window_that_closes_with_nobody_engaged_goes_to_the_program_managers_once() -> None:
    team = Team()
    await team.overdose()
    team.clock.advance(hours=60)
    [warning] = await team.tick()
    assert not warning.overdue
    team.clock.advance(hours=12, seconds=-1)
    assert await team.tick() == []  # a second before the window closes
    team.clock.advance(seconds=1)
    [overdue] = await team.tick()
    assert overdue.overdue
    told = [m for m in team.sent_to_lead() if "closed" in m.subject]
    pm = REF.case_managers["pm-abq"]
    assert {m.address for m in told} >= {pm.address_for(c) for c in pm.channels}
    for message in told:
        assert "Quackenbush" not in message.subject + message.text + message.body + repr(message.payload)
    team.clock.advance(days=1)
    assert await team.tick() == []  # once


async def test_an_engaged_person_before_the_window_closes_means_nobody_hears_it_closed() -> None:
    team = Team()
    await team.overdose()
    team.clock.advance(hours=60)
    await team.tick()
    await team.qrt.on_follow_up_event(FollowUpAttempted(
        attempt_id="a1", task_id=task_id_for("od-1"), site_id="abq", outcome=AttemptOutcome.referred_to_treatment,
        recorded_by="cm-cruz", attempted_at=team.clock.now()))
    team.clock.advance(hours=13)
    assert await team.tick() == []
