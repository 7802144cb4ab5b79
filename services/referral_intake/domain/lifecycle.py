"""A referral's lifecycle: FHIR SDOH Task statuses plus LEAD milestones.

requested -> accepted | rejected; accepted -> in-progress <-> on-hold -> completed | failed;
cancelled and entered-in-error may end it from any open status. Milestones (contacted, enrolled,
engaged, inactive...) move the status where they imply one. Participants are never "failed out":
an enrolled participant who drops off becomes inactive (on-hold), and can become active again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.kernel.errors import Rejected
from services.kernel.events import (
    OPEN_STATUSES,
    Milestone,
    ReferralStatus,
    StatusReason,
)
from services.kernel.lead import ReferralStatusChanged

S = ReferralStatus
FINAL = frozenset(ReferralStatus) - OPEN_STATUSES

ALLOWED: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    S.requested: frozenset({S.accepted, S.rejected}),
    S.accepted: frozenset({S.in_progress, S.on_hold}),
    S.in_progress: frozenset({S.on_hold, S.completed, S.failed}),
    S.on_hold: frozenset({S.in_progress, S.completed, S.failed}),
}
ENDS_ANYWHERE = frozenset({S.cancelled, S.entered_in_error})
NEEDS_REASON = frozenset({S.rejected, S.failed, S.cancelled})

# The status a milestone implies, and the statuses it may be recorded in.
MILESTONE_STATUS: dict[Milestone, ReferralStatus | None] = {
    Milestone.paged: None,
    Milestone.acknowledged: S.accepted,
    Milestone.contact_attempted: None,
    Milestone.contacted: S.in_progress,
    Milestone.intake_scheduled: S.in_progress,
    Milestone.enrolled: S.in_progress,
    Milestone.engaged: S.in_progress,
    Milestone.inactive: S.on_hold,
}


# The road from contact to engagement, in order: a step cannot have happened before the first time of
# a step it follows (enrolled at 09:00 when the first contact was at 10:00 is a typing error, and it
# would skew the time to contact). Skipping a step is fine ("enrolled" alone implies the contact),
# and so is a step again later (contacts go on after enrollment).
MILESTONE_ORDER = (Milestone.contacted, Milestone.intake_scheduled, Milestone.enrolled, Milestone.engaged)


class IllegalTransition(Rejected):
    pass


def check_milestone_order(recorded: dict[str, datetime], milestone: Milestone, at: datetime) -> None:
    """Refuse ``milestone`` at ``at`` when a step it follows was first recorded for a later time
    (``recorded``: milestone name -> first time)."""
    if milestone not in MILESTONE_ORDER:
        return
    for earlier in MILESTONE_ORDER[:MILESTONE_ORDER.index(milestone)]:
        when = recorded.get(earlier.value)
        if when is not None and when > at:
            raise IllegalTransition("occurred_at", f"{milestone.value} cannot come before {earlier.value} "
                                                   "(first recorded for a later time)")


def can_transition(current: ReferralStatus, target: ReferralStatus) -> bool:
    if current in FINAL:
        return False
    return target in ALLOWED.get(current, frozenset()) or target in ENDS_ANYWHERE


def transition(referral_id: str, site_id: str, current: ReferralStatus, target: ReferralStatus, at: datetime,
               by: str | None = None, reason: StatusReason | None = None) -> ReferralStatusChanged:
    """The event for a legal transition, or ``IllegalTransition`` naming both statuses."""
    if not can_transition(current, target):
        raise IllegalTransition("status", f"a referral that is {current.value} cannot become {target.value}")
    if target in NEEDS_REASON and reason is None:
        raise IllegalTransition("reason", f"required when a referral becomes {target.value}")
    return ReferralStatusChanged(referral_id=referral_id, site_id=site_id, status=target, previous_status=current,
                                 reason=reason, changed_at=at, changed_by=by)


def closing_status(current: ReferralStatus) -> ReferralStatus:
    """The status a case manager's "close the referral" gives, by where it stands (FHIR Task): rejected when it was
    never accepted, cancelled when accepted and nothing begun, failed once the work began."""
    if current is S.requested:
        return S.rejected
    return S.cancelled if current is S.accepted else S.failed


def undo_status(referral_id: str, site_id: str, current: ReferralStatus, back_to: ReferralStatus, at: datetime,
                by: str) -> ReferralStatusChanged:
    """The status a wrongly recorded milestone moved the referral from, restored when the milestone is undone. A
    correction, not a step of the lifecycle: in progress goes back to accepted only this way."""
    if current in FINAL:
        raise IllegalTransition("status", f"a referral that is {current.value} cannot be corrected")
    return ReferralStatusChanged(referral_id=referral_id, site_id=site_id, status=back_to, previous_status=current,
                                 changed_at=at, changed_by=by)


@dataclass(frozen=True)
class MilestoneEffect:
    status_change: ReferralStatusChanged | None


def apply_milestone(referral_id: str, site_id: str, current: ReferralStatus, milestone: Milestone, at: datetime,
                    by: str | None = None, reason: StatusReason | None = None) -> MilestoneEffect:
    """Which status change (if any) recording ``milestone`` makes; refuses milestones on closed referrals."""
    if current in FINAL:
        raise IllegalTransition("milestone", f"cannot record {milestone.value} on a {current.value} referral")
    implied = MILESTONE_STATUS[milestone]
    if implied is None or implied == current:
        return MilestoneEffect(None)
    path = _path(current, implied)
    if path is None:
        raise IllegalTransition("milestone", f"{milestone.value} is not possible while the referral is {current.value}")
    # A milestone may skip intermediate statuses (contacted straight from requested): accept on the way.
    changes = []
    status = current
    for step in path:
        changes.append(transition(referral_id, site_id, status, step, at, by, reason))
        status = step
    return MilestoneEffect(changes[-1].model_copy(update={"previous_status": current}))


def _path(start: ReferralStatus, goal: ReferralStatus) -> list[ReferralStatus] | None:
    """Shortest chain of ALLOWED transitions from ``start`` to ``goal`` (excluding ``start``)."""
    frontier, seen = [[start]], {start}
    while frontier:
        route = frontier.pop(0)
        for nxt in ALLOWED.get(route[-1], ()):
            if nxt == goal:
                return [*route[1:], nxt]
            if nxt not in seen:
                seen.add(nxt)
                frontier.append([*route, nxt])
    return None
