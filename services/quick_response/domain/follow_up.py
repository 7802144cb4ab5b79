"""A Quick Response Team's follow-up after an overdose: when it is due, when its team lead hears of
it, and what an attempt changes. Pure: no I/O, times in and out."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.kernel.cad import CadOverdoseResponded
from services.kernel.clock import EventTimeWindow
from services.kernel.errors import Rejected
from services.kernel.reference import Agency, QuickResponsePathway, Site
from services.quick_response.events import AttemptOutcome, FollowUpKind

#: Outcomes that end the follow-up: the person was engaged or referred, or said no.
CLOSING = frozenset({AttemptOutcome.engaged, AttemptOutcome.referred_to_treatment, AttemptOutcome.refused})
#: Outcomes where the team reached the person (the funnel's "contacted").
CONTACTED = frozenset({AttemptOutcome.visited, AttemptOutcome.refused, AttemptOutcome.engaged,
                       AttemptOutcome.referred_to_treatment})
ENGAGED = frozenset({AttemptOutcome.engaged, AttemptOutcome.referred_to_treatment})


def check_overdose(event: CadOverdoseResponded, site: Site | None, agency: Agency | None, now: datetime,
                   window: EventTimeWindow = EventTimeWindow()) -> Site:
    """The site whose team follows it up, or ``Rejected`` naming the field and reason. The one rule for
    the HTTP intake (which answers at once) and the worker (which sees Kafka's records too)."""
    if agency is None or agency.agency_id != event.agency_id:
        raise Rejected("agency_id", "unknown agency")
    if site is None or event.site_id not in agency.sites:
        raise Rejected("site_id", "unknown site, or not one the agency serves")
    window.check("occurred_at", event.occurred_at, now)  # a broken CAD clock would open a window nobody can meet
    return site


def task_id_for(overdose_event_id: str) -> str:
    """One follow-up per overdose event: the event id is its dedup key."""
    return f"fu-{overdose_event_id}"


def plan(event: CadOverdoseResponded, pathway: QuickResponsePathway) -> tuple[FollowUpKind | None, datetime]:
    """What follow-up an overdose opens, and when its window closes. A fatal overdose opens none
    for the person; a family-support one where the site offers it."""
    due_at = event.occurred_at + timedelta(hours=pathway.follow_up_hours)
    if event.fatal:
        return (FollowUpKind.family_support if pathway.family_support else None), due_at
    return FollowUpKind.outreach, due_at


@dataclass(frozen=True)
class FollowUp:
    """What the worker keeps of a follow-up: ids and times, never who or where."""

    task_id: str
    site_id: str
    kind: FollowUpKind
    due_at: datetime
    opened_at: datetime
    attempts: tuple[AttemptOutcome, ...] = ()
    attempt_ids: tuple[str, ...] = ()
    warned_at: datetime | None = None
    closed_by: AttemptOutcome | None = None
    overdue_told_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_by is None

    def expires_at(self, retention: timedelta) -> datetime:
        """When it is deleted: ``retention`` after its window closed."""
        return self.due_at + retention

    def alert_at(self, pathway: QuickResponsePathway) -> datetime | None:
        """When someone must hear of it next: the team lead ``warn_before_hours`` before the window
        closes, then the program managers when it has closed with nobody engaged (None: nobody
        again: closed, or both told)."""
        if not self.is_open or self.overdue_told_at is not None:
            return None
        if self.warned_at is None:
            return max(self.opened_at, self.due_at - timedelta(hours=pathway.warn_before_hours))
        return self.due_at

    @property
    def next_alert_is_overdue(self) -> bool:
        return self.warned_at is not None


def record_attempt(follow_up: FollowUp, attempt_id: str, outcome: AttemptOutcome) -> FollowUp:
    """An attempt, once per attempt id; a closing outcome closes the follow-up (later attempts are
    still recorded: a team may visit again)."""
    if attempt_id in follow_up.attempt_ids:
        return follow_up
    closed_by = follow_up.closed_by or (outcome if outcome in CLOSING else None)
    return replace(follow_up, attempts=(*follow_up.attempts, outcome), attempt_ids=(*follow_up.attempt_ids, attempt_id),
                   closed_by=closed_by)


def warned(follow_up: FollowUp, at: datetime, overdue: bool = False) -> FollowUp:
    if overdue:
        return follow_up if follow_up.overdue_told_at is not None else replace(
            follow_up, warned_at=follow_up.warned_at or at, overdue_told_at=at)
    return follow_up if follow_up.warned_at is not None else replace(follow_up, warned_at=at)
