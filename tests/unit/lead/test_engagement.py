"""Engagement tracking: the lifecycle authority, deadline flags, and the funnel figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.kernel.clock import FakeClock
from services.kernel.errors import Rejected
from services.kernel.events import (
    AcknowledgedVia,
    Channel,
    DeliveryOutcome,
    Milestone,
    ReferralFlag,
    ReferralStatus,
    ReferralType,
    StatusReason,
)
from services.kernel.lead import (
    ConsentRevoked,
    EngagementRecorded,
    EngagementWithdrawn,
    PageAcknowledged,
    PageEscalated,
    PageRequested,
    PageSent,
    ReferralFlagged,
    ReferralRetentionEnded,
    ReferralStatusChanged,
)
from services.messaging.events import ErasureReason
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.domain.model import open_referral
from services.referral_intake.domain.views import ReferralView, funnel, iso_week
from services.referral_intake.service import EngagementTracker
from tests.factories import cad_referral, one_of_each

REF = load_reference_data(REPO_ROOT / "config" / "local")
T0 = datetime(2026, 11, 16, 17, 0, tzinfo=UTC)  # a Monday


def engagement(referral_id: str, milestone: Milestone, at: datetime, reason=None) -> EngagementRecorded:
    return EngagementRecorded(engagement_id=f"e-{milestone.value}-{at.timestamp()}", referral_id=referral_id,
                              site_id="abq", milestone=milestone, reason=reason, occurred_at=at, recorded_at=at,
                              recorded_by="cm-ana")


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock(T0)
        self.publisher = InMemoryPublisher()
        self.tracker = EngagementTracker(REF, {}, self.publisher, self.clock, warn_before=timedelta(days=2))
        self.referral = open_referral(cad_referral(occurred_at=T0), REF.sites["abq"], REF.agencies["apd"], T0)

    async def replay_published(self) -> None:
        for record in list(self.publisher.records):
            await self.tracker.on_event(record.event)

    def view(self) -> ReferralView:
        return self.tracker.views[self.referral.referral_id].view

    def statuses(self) -> list[str]:
        return [e.status.value for e in self.publisher.events(ReferralStatusChanged)]


@pytest.fixture
async def h() -> Harness:
    h = Harness()
    await h.tracker.on_event(h.referral)
    return h


async def test_a_consent_revocation_erases_the_referral_and_keeps_its_lifecycle(h) -> None:
    erased: list[tuple[str, ErasureReason]] = []
    h.tracker.erase = lambda subject, reason: erased.append((subject, reason))
    await h.tracker.on_event(h.referral)
    await h.tracker.on_event(ConsentRevoked(referral_id=h.referral.referral_id, site_id="abq", revoked_at=T0,
                                            recorded_by="cm-ana"))
    assert erased == [(h.referral.referral_id, ErasureReason.consent_revoked)]
    assert h.view().status == ReferralStatus.requested.value  # the figures keep it


async def test_a_closed_referral_is_erased_when_its_retention_ends_and_an_open_one_never(h) -> None:
    erased: list[tuple[str, ErasureReason]] = []
    h.tracker.erase = lambda subject, reason: erased.append((subject, reason))
    rid = h.referral.referral_id
    h.clock.advance(days=900)  # open: however long it stays open, its retention has not begun
    await h.tracker.publish_due_flags()
    assert h.publisher.events(ReferralRetentionEnded) == []

    closed_at = h.clock.now()
    await h.tracker.on_event(ReferralStatusChanged(referral_id=rid, site_id="abq", status=ReferralStatus.cancelled,
                                                   previous_status=ReferralStatus.requested,
                                                   reason=StatusReason.other, changed_at=closed_at))
    assert h.view().closed_at == closed_at
    h.clock.advance(seconds=(h.tracker.retention - timedelta(minutes=1)).total_seconds())
    await h.tracker.publish_due_flags()
    assert h.publisher.events(ReferralRetentionEnded) == []

    h.clock.advance(minutes=1)
    await h.tracker.publish_due_flags()
    [ended] = h.publisher.events(ReferralRetentionEnded)
    assert (ended.referral_id, ended.ended_at) == (rid, closed_at + h.tracker.retention)
    await h.tracker.on_event(ended)
    assert erased == [(rid, ErasureReason.retention_ended)]
    assert rid not in h.tracker.views
    await h.tracker.on_event(ended)  # a replay erases nothing twice
    assert len(erased) == 1


async def test_acknowledged_page_accepts_the_referral(h) -> None:
    page = next(e for e in one_of_each() if isinstance(e, PageRequested))
    await h.tracker.on_event(page.model_copy(update={"referral_id": h.referral.referral_id,
                                                     "requested_at": T0 + timedelta(minutes=2)}))
    await h.tracker.on_event(PageAcknowledged(page_id="p", referral_id=h.referral.referral_id, acknowledged_by="cm-ana",
                                              via=AcknowledgedVia.link, acknowledged_at=T0 + timedelta(minutes=12)))
    assert h.statuses() == ["accepted"]
    assert h.view().seconds_to_acknowledge() == 10 * 60  # from the page, not from the CAD event
    assert h.view().seconds_from_event_to_page() == 2 * 60
    assert h.view().acknowledged_by == "cm-ana"


async def test_milestones_move_the_status_and_inactive_is_not_failure(h) -> None:
    rid = h.referral.referral_id
    await h.tracker.on_event(engagement(rid, Milestone.contacted, T0 + timedelta(hours=3)))
    await h.tracker.on_event(engagement(rid, Milestone.enrolled, T0 + timedelta(days=2)))
    await h.tracker.on_event(engagement(rid, Milestone.inactive, T0 + timedelta(days=20), StatusReason.could_not_contact))
    await h.tracker.on_event(engagement(rid, Milestone.engaged, T0 + timedelta(days=25)))
    assert h.statuses() == ["in_progress", "on_hold", "in_progress"]
    assert h.view().status == "in_progress" and h.view().seconds_to_contact() == 3 * 3600


async def test_replaying_every_event_changes_nothing(h) -> None:
    await h.tracker.on_event(engagement(h.referral.referral_id, Milestone.contacted, T0 + timedelta(hours=3)))
    before, published = h.view(), len(h.publisher.records)
    await h.replay_published()
    await h.tracker.on_event(engagement(h.referral.referral_id, Milestone.contacted, T0 + timedelta(hours=3)))
    assert h.view() == before and len(h.publisher.records) == published


async def test_illegal_engagement_from_a_case_management_system_is_refused(h) -> None:
    rid = h.referral.referral_id
    await h.tracker.on_event(ReferralStatusChanged(referral_id=rid, site_id="abq", status=ReferralStatus.completed,
                                                   previous_status=ReferralStatus.in_progress, changed_at=T0))
    with pytest.raises(Rejected) as err:
        await h.tracker.on_event(engagement(rid, Milestone.contacted, T0 + timedelta(hours=1)))
    assert err.value.field == "milestone" and "completed" in err.value.detail


async def test_engagement_for_an_unknown_referral_is_refused(h) -> None:
    with pytest.raises(Rejected, match="no such referral"):
        await h.tracker.on_event(engagement("nope", Milestone.contacted, T0))


async def test_deadline_and_no_contact_flags_are_raised_once_on_time(h) -> None:
    # abq: 30-day intake deadline, no-contact flag after 7 days; warn 2 days before the deadline.
    h.clock.set(T0 + timedelta(days=6, hours=23))
    assert await h.tracker.publish_due_flags() == 0
    h.clock.set(T0 + timedelta(days=7))
    assert await h.tracker.publish_due_flags() == 1
    assert await h.tracker.publish_due_flags() == 0
    await h.replay_published()
    h.clock.set(h.referral.intake_due_at - timedelta(days=2))
    await h.tracker.publish_due_flags()
    h.clock.set(h.referral.intake_due_at + timedelta(seconds=1))
    await h.tracker.publish_due_flags()
    flags = [e.flag for e in h.publisher.events(ReferralFlagged)]
    assert flags == [ReferralFlag.no_contact, ReferralFlag.intake_deadline_near, ReferralFlag.intake_deadline_missed]


async def test_contact_clears_the_no_contact_flag_and_intake_stops_deadline_flags(h) -> None:
    rid = h.referral.referral_id
    h.clock.set(T0 + timedelta(days=8))
    await h.tracker.publish_due_flags()
    await h.replay_published()
    assert h.view().flags == ["no_contact"]
    await h.tracker.on_event(engagement(rid, Milestone.intake_scheduled, T0 + timedelta(days=8)))
    assert h.view().flags == []
    h.clock.set(h.referral.intake_due_at + timedelta(days=1))
    await h.tracker.publish_due_flags()
    assert {e.flag for e in h.publisher.events(ReferralFlagged)} == {ReferralFlag.no_contact}


def test_funnel_rates_against_the_program_targets() -> None:
    views = []
    for i in range(5):
        view = ReferralView(f"r{i}", "abq", ReferralType.arrest_diversion.value, T0, T0 + timedelta(days=30))
        if i < 4:
            view.apply(engagement(f"r{i}", Milestone.contacted, T0 + timedelta(minutes=30 * (i + 1))))
        if i < 3:
            view.apply(engagement(f"r{i}", Milestone.enrolled, T0 + timedelta(days=1)))
        if i < 2:
            view.apply(engagement(f"r{i}", Milestone.engaged, T0 + timedelta(days=9)))
        views.append(view)
    views.append(ReferralView("other", "santa-fe", "social_contact", T0, T0))
    [row] = funnel(views, site_id="abq")
    assert (row.week, row.referrals, row.contacted, row.enrolled, row.engaged) == (iso_week(T0), 5, 4, 3, 2)
    assert row.enrollment_rate == 0.6 and row.meets_enrollment_target is True
    assert row.engagement_rate == pytest.approx(2 / 3) and row.meets_engagement_target is False
    assert row.median_seconds_to_contact == 75 * 60


class CountingStore(dict):
    """A table that counts its writes: each one is a changelog record."""

    writes = 0

    def __setitem__(self, key, value) -> None:
        self.writes += 1
        super().__setitem__(key, value)


async def test_the_lifecycle_is_written_once_per_change_not_once_per_event() -> None:
    h = Harness()
    store = CountingStore()
    h.tracker = EngagementTracker(REF, store, h.publisher, h.clock, warn_before=timedelta(days=2))
    await h.tracker.on_event(h.referral)
    rid = h.referral.referral_id
    sent = [PageSent(page_id="p", referral_id=rid, attempt_id=f"a-{channel}", step_index=0, loop=0, target_id="cm-ana",
                     channel=channel, outcome=DeliveryOutcome.delivered, attempt=1, sent_at=T0) for channel in Channel]
    escalated = PageEscalated(page_id="p", referral_id=rid, from_step=0, to_step=1, loop=0, escalated_at=T0)
    for event in (*sent, escalated, *sent):
        await h.tracker.on_event(event)
    assert store.writes == 2  # opened, then cm-ana paged; the other channels and the escalation change nothing
    assert h.view().paged_case_managers == ["cm-ana"]


def withdrawal(of: EngagementRecorded, at: datetime) -> EngagementWithdrawn:
    return EngagementWithdrawn(engagement_id=of.engagement_id, referral_id=of.referral_id, site_id=of.site_id,
                               milestone=of.milestone, withdrawn_at=at, withdrawn_by="cm-ana")


async def test_undoing_the_last_step_puts_the_referral_back_where_the_step_found_it(h) -> None:
    rid = h.referral.referral_id
    await h.tracker.on_event(PageAcknowledged(page_id="p", referral_id=rid, acknowledged_by="cm-ana",
                                              via=AcknowledgedVia.link, acknowledged_at=T0 + timedelta(minutes=3)))
    await h.tracker.on_event(engagement(rid, Milestone.contact_attempted, T0 + timedelta(minutes=10)))
    contacted = engagement(rid, Milestone.contacted, T0 + timedelta(minutes=20))
    await h.tracker.on_event(contacted)
    await h.replay_published()
    assert h.view().status == "in_progress" and h.view().seconds_to_contact() == 20 * 60

    await h.tracker.on_event(withdrawal(contacted, T0 + timedelta(minutes=25)))
    view = h.view()
    assert (view.status, view.seconds_to_contact(), view.last_contact_at) == ("accepted", None, None)
    assert not view.has("contacted") and view.has("contact_attempted")  # the step before it stays
    correction = h.publisher.events(ReferralStatusChanged)[-1]
    assert (correction.status, correction.previous_status, correction.changed_by) == (
        ReferralStatus.accepted, ReferralStatus.in_progress, "cm-ana")
    [row] = funnel([view])
    assert row.contacted == 0  # the figures no longer count a contact that did not happen

    with pytest.raises(Rejected, match="only the last step recorded can be undone, and only once"):
        await h.tracker.on_event(withdrawal(contacted, T0 + timedelta(minutes=26)))


async def test_a_step_cannot_be_undone_once_the_referral_has_moved_on(h) -> None:
    rid = h.referral.referral_id
    enrolled = engagement(rid, Milestone.enrolled, T0 + timedelta(hours=1))
    await h.tracker.on_event(enrolled)
    await h.tracker.on_event(ReferralStatusChanged(referral_id=rid, site_id="abq", status=ReferralStatus.on_hold,
                                                   previous_status=ReferralStatus.in_progress,
                                                   changed_at=T0 + timedelta(hours=2), changed_by="cm-ana"))
    with pytest.raises(Rejected, match=r"the referral has moved on since \(it is on hold now\)"):
        await h.tracker.on_event(withdrawal(enrolled, T0 + timedelta(hours=3)))
    assert h.view().has("enrolled")


def test_a_replayed_step_keeps_what_the_first_one_changed() -> None:
    referral = open_referral(cad_referral(occurred_at=T0), REF.sites["abq"], REF.agencies["apd"], T0)
    view = ReferralView.opened(referral)
    contacted = engagement(referral.referral_id, Milestone.contacted, T0 + timedelta(minutes=5))
    view.apply(contacted)
    view.apply(contacted)
    view.apply(withdrawal(contacted, T0 + timedelta(minutes=6)))
    assert (view.status, view.has("contacted")) == ("requested", False)
