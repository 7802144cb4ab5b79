from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.kernel.events import Milestone, StatusReason
from services.kernel.events import ReferralStatus as S
from services.referral_intake.domain.lifecycle import IllegalTransition, apply_milestone, can_transition, transition

AT = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize("current, target", [
    (S.requested, S.accepted), (S.requested, S.rejected), (S.accepted, S.in_progress), (S.in_progress, S.on_hold),
    (S.on_hold, S.in_progress), (S.in_progress, S.completed), (S.on_hold, S.failed), (S.accepted, S.cancelled),
    (S.in_progress, S.entered_in_error),
])
def test_legal_transitions(current, target) -> None:
    assert can_transition(current, target)


@pytest.mark.parametrize("current, target", [
    (S.requested, S.in_progress), (S.requested, S.completed), (S.completed, S.in_progress), (S.rejected, S.accepted),
    (S.cancelled, S.cancelled), (S.accepted, S.requested),
])
def test_illegal_transitions_are_refused_with_both_statuses_named(current, target) -> None:
    assert not can_transition(current, target)
    with pytest.raises(IllegalTransition) as err:
        transition("r", "abq", current, target, AT, reason=StatusReason.other)
    assert err.value.field == "status"
    assert current.value in err.value.detail and target.value in err.value.detail


def test_ending_statuses_need_a_reason() -> None:
    with pytest.raises(IllegalTransition, match="reason"):
        transition("r", "abq", S.requested, S.rejected, AT)
    event = transition("r", "abq", S.requested, S.rejected, AT, reason=StatusReason.ineligible)
    assert (event.status, event.previous_status, event.reason) == (S.rejected, S.requested, StatusReason.ineligible)


def test_contact_straight_from_requested_accepts_on_the_way() -> None:
    effect = apply_milestone("r", "abq", S.requested, Milestone.contacted, AT, by="cm-ana")
    assert effect.status_change.status == S.in_progress
    assert effect.status_change.previous_status == S.requested


def test_inactive_is_on_hold_never_failed_and_can_come_back() -> None:
    held = apply_milestone("r", "abq", S.in_progress, Milestone.inactive, AT).status_change
    assert held.status == S.on_hold
    back = apply_milestone("r", "abq", S.on_hold, Milestone.engaged, AT).status_change
    assert back.status == S.in_progress


def test_milestones_without_a_status_change() -> None:
    assert apply_milestone("r", "abq", S.requested, Milestone.paged, AT).status_change is None
    assert apply_milestone("r", "abq", S.in_progress, Milestone.enrolled, AT).status_change is None


def test_no_milestones_on_closed_referrals() -> None:
    with pytest.raises(IllegalTransition, match="completed"):
        apply_milestone("r", "abq", S.completed, Milestone.contacted, AT)
