"""Escalation policies and the state of one page, as pure data and functions.

A policy is ordered steps, each with targets and the time the targets have to acknowledge before
the next step; the whole policy repeats ``loops`` times. Acknowledgement stops it. A page's state
is a small immutable record; ``due_escalation`` tells whether it should move on at ``now``, and
``escalate`` returns the next state. Nothing here sends, sleeps or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.kernel.events import Consent, Milestone, ReferralStatus
from services.kernel.lead import PageRequested
from services.kernel.reference import EscalationPolicyConfig

# PageSent.step_index of what a page's record sends outside its escalation steps (each its own idempotency keys)
WARNING_STEP = -1  # a deadline warning
FALLBACK_STEP = -2  # what is sent when every step went unacknowledged
REENGAGEMENT_STEP = -3  # a re-engagement alert
PROSECUTOR_STEP = -4  # an officer intervention's notice to the prosecutor
MOVED_STEP = -5  # a location update (CAD says the person moved)
FHIR_STEP = -6  # a FHIR Task notification to a case-management organisation


def page_id_for(referral_id: str) -> str:
    """One page per referral: the referral id is the page's dedup key."""
    return f"pg-{referral_id}"


# A page asks for a case manager. Once the referral has one, or needs none any more, paging stops,
# whichever service records it first (acknowledgement here, a status or milestone in the lifecycle):
# every status but "requested" (accepted, rejected, cancelled, entered-in-error, in progress, ...)
# and every milestone a case manager records.
STATUSES_THAT_STOP_PAGING = frozenset(ReferralStatus) - {ReferralStatus.requested}
MILESTONES_THAT_STOP_PAGING = frozenset(Milestone) - {Milestone.paged}
LATE_REFERRAL = "late referral"  # why a page was never sent: past the site's warm-handoff window


@dataclass(frozen=True)
class PageState:
    page_id: str
    referral_id: str
    site_id: str
    opened_at: datetime
    step_index: int = 0
    loop: int = 0
    step_started_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    exhausted: bool = False
    stopped_at: datetime | None = None
    stopped_because: str | None = None  # e.g. "status rejected", "milestone contacted"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None and not self.exhausted and self.stopped_at is None


@dataclass(frozen=True)
class OfficerCase:
    """An officer intervention, as the prosecutor's notice names it: its CAD event and legal deadline."""

    cad_event_id: str
    legal_deadline: datetime


@dataclass(frozen=True)
class PageRecord:
    """What the page's owner keeps of a referral: the page, the request that opened it, the CAD event's
    correlation id (so timer-made events carry it too), the person's consent scope (every later disclosure is
    checked against it), an officer intervention's case, and whether the referral is closed (who may hear
    about the person later)."""

    state: PageState
    request: PageRequested
    correlation_id: str | None = None
    consent: Consent | None = None
    case: OfficerCase | None = None
    closed: bool = False


def open_page(page_id: str, referral_id: str, site_id: str, now: datetime) -> PageState:
    return PageState(page_id, referral_id, site_id, opened_at=now, step_started_at=now)


def step_deadline(state: PageState, policy: EscalationPolicyConfig) -> datetime:
    step = policy.steps[state.step_index]
    started = state.step_started_at or state.opened_at  # every page has had one since open_page
    return started + timedelta(minutes=step.escalate_after_minutes)


def due_escalation(state: PageState, policy: EscalationPolicyConfig, now: datetime) -> bool:
    return state.is_open and now >= step_deadline(state, policy)


def next_escalation_at(state: PageState, policy: EscalationPolicyConfig) -> datetime | None:
    """When ``due_escalation`` turns true for this page (None: never, it is closed)."""
    return step_deadline(state, policy) if state.is_open else None


def escalate(state: PageState, policy: EscalationPolicyConfig, now: datetime) -> PageState:
    """The next step (wrapping into the next loop), or an exhausted page when the loops are spent.

    The new step starts at the old step's deadline, not at ``now``, so a late timer tick does not
    push every later step back.
    """
    started = step_deadline(state, policy)
    if state.step_index + 1 < len(policy.steps):
        return replace(state, step_index=state.step_index + 1, step_started_at=started)
    if state.loop + 1 < policy.loops:
        return replace(state, step_index=0, loop=state.loop + 1, step_started_at=started)
    return replace(state, exhausted=True)


def acknowledge(state: PageState, by: str, now: datetime) -> PageState:
    """Acknowledged pages stay acknowledged: a second acknowledgement changes nothing."""
    if state.acknowledged_at is not None:
        return state
    return replace(state, acknowledged_at=now, acknowledged_by=by)


def stop(state: PageState, because: str, at: datetime) -> PageState:
    """An open page stops paging (nothing further is sent); a closed one stays as it is."""
    return replace(state, stopped_at=at, stopped_because=because) if state.is_open else state


def attempt_id(page_id: str, step_index: int, loop: int, target_id: str, channel: str) -> str:
    """The idempotency key of one delivery: retries and replays of the same delivery share it."""
    return f"{page_id}/{loop}/{step_index}/{target_id}/{channel}"
