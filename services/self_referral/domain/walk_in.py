"""A self-referral's walk-in: who is paged, who takes it, when the coordinators hear of it, and its way to
treatment. Pure: no I/O, times in and out.

The Angel / PAARI model: a person asks the police for help; a pool of volunteers is paged (nearest
first, only those eligible and available), the first to accept goes and the others are told it is
taken. Nobody accepting within the site's minutes, or nobody to page at all, tells the coordinators;
so does a walk-in not placed in treatment within the site's target (a day in most programs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.kernel.cad import CadWalkInReported
from services.kernel.clock import EventTimeWindow
from services.kernel.errors import Rejected
from services.kernel.reference import Agency, SelfReferralPathway, Site, Volunteer
from services.self_referral.events import EscalationReason, WalkInMilestone

#: Milestones that end a walk-in: the person is in treatment, or said no.
CLOSING = frozenset({WalkInMilestone.placed, WalkInMilestone.declined})


def check_walk_in(event: CadWalkInReported, site: Site | None, agency: Agency | None, now: datetime,
                  window: EventTimeWindow = EventTimeWindow()) -> tuple[Site, SelfReferralPathway]:
    """The site and its pathway, or ``Rejected`` naming the field and reason: the one rule for the HTTP
    intake (which answers at once) and the worker (which sees Kafka's records too)."""
    if agency is None or agency.agency_id != event.agency_id:
        raise Rejected("agency_id", "unknown agency")
    if site is None or event.site_id not in agency.sites:
        raise Rejected("site_id", "unknown site, or not one the agency serves")
    if site.self_referral is None:
        raise Rejected("site_id", "the site runs no self-referral pathway")
    if event.station_id not in site.self_referral.stations:
        raise Rejected("station_id", "not one of the site's stations")
    window.check("occurred_at", event.occurred_at, now)
    return site, site.self_referral


def case_id_for(walk_in_event_id: str) -> str:
    """One case per walk-in event: the event id is its dedup key."""
    return f"wi-{walk_in_event_id}"


def choose_volunteers(pool: Iterable[Volunteer], site: Site, station_id: str, at: datetime) -> list[str]:
    """Who to page: the site's volunteers who can go now (background check current, available at the
    site's local time, within the travel limit), nearest first, ``page_at_once`` of them."""
    pathway = site.self_referral
    if pathway is None:
        return []
    local = at.astimezone(site.zone)
    able = [v for v in pool if v.can_go(site.site_id, station_id, local, pathway.max_travel_minutes)]
    able.sort(key=lambda v: (v.travel_minutes[station_id], v.volunteer_id))
    return [v.volunteer_id for v in able[:pathway.page_at_once]]


@dataclass(frozen=True)
class WalkIn:
    """What the worker keeps of a walk-in: ids and times, never the person's name."""

    case_id: str
    site_id: str
    station_id: str
    occurred_at: datetime
    paged: tuple[str, ...]
    accept_by: datetime
    placement_due_at: datetime
    accepted_by: str | None = None
    accepted_at: datetime | None = None
    escalations: tuple[EscalationReason, ...] = ()
    milestone_ids: tuple[str, ...] = ()
    closed_by: WalkInMilestone | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_by is None

    def expires_at(self, retention: timedelta) -> datetime:
        return self.occurred_at + retention

    def next_escalation(self) -> tuple[EscalationReason, datetime] | None:
        """Who must hear of it next, and when: the coordinators, once when nobody can go or nobody
        accepted in time, once more when it is not placed by the target (None: nobody again)."""
        if not self.is_open:
            return None
        if self.accepted_by is None:
            reason = EscalationReason.no_volunteer if not self.paged else EscalationReason.unanswered
            if not {EscalationReason.no_volunteer, EscalationReason.unanswered} & set(self.escalations):
                return reason, self.accept_by
        if EscalationReason.placement_overdue not in self.escalations:
            return EscalationReason.placement_overdue, self.placement_due_at
        return None


def plan(occurred_at: datetime, opened_at: datetime, pathway: SelfReferralPathway, paged: list[str]) \
        -> tuple[datetime, datetime]:
    """(accept_by, placement_due_at): nobody to page tells the coordinators at once."""
    accept_by = opened_at + timedelta(minutes=pathway.accept_within_minutes) if paged else opened_at
    return accept_by, occurred_at + timedelta(hours=pathway.placement_target_hours)


def accept(walk_in: WalkIn, volunteer_id: str, at: datetime) -> tuple[WalkIn, bool]:
    """The first volunteer to accept takes it; True if this one did (a repeat by the same one is no
    news). A closed walk-in is taken by nobody."""
    if walk_in.accepted_by is not None or not walk_in.is_open:
        return walk_in, False
    return replace(walk_in, accepted_by=volunteer_id, accepted_at=at), True


def escalated(walk_in: WalkIn, reason: EscalationReason) -> WalkIn:
    if reason in walk_in.escalations:
        return walk_in
    return replace(walk_in, escalations=(*walk_in.escalations, reason))


def record_milestone(walk_in: WalkIn, milestone_id: str, milestone: WalkInMilestone) -> WalkIn:
    """Once per milestone id; placed or declined closes it (the first of them counts)."""
    if milestone_id in walk_in.milestone_ids:
        return walk_in
    closed_by = walk_in.closed_by or (milestone if milestone in CLOSING else None)
    return replace(walk_in, milestone_ids=(*walk_in.milestone_ids, milestone_id), closed_by=closed_by)


def mileage_cents(miles: float, pathway: SelfReferralPathway) -> int:
    """A mileage claim at the site's rate, to the cent."""
    return round(miles * pathway.mileage_cents_per_mile)
