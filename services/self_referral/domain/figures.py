"""The self-referral read model: open walk-ins for the coordinators, each volunteer's view of the one
they were paged for, the month's figures, the expenses to reimburse. Built from the walk-in events
(``apply``), in partition order, so "the first to accept" is the same here as in the worker."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import ClassVar

from services.kernel.bus import Handlers, fold
from services.kernel.pathways import Pathway, PathwayFigures, ratio
from services.kernel.reference import SelfReferralPathway, Site
from services.self_referral.domain.walk_in import CLOSING
from services.self_referral.events import (
    VolunteerExpenseClaimed,
    WalkInAccepted,
    WalkInEscalated,
    WalkInExpired,
    WalkInMilestone,
    WalkInMilestoneRecorded,
    WalkInOpened,
)


def pathway_of(site: Site) -> Pathway | None:
    """What the site's volunteer pool promises, when it runs one."""
    if (angel := site.self_referral) is None:
        return None
    return Pathway("self_referral", "Self-referral (volunteer pool)",
                   f"a volunteer accepts within {angel.accept_within_minutes:g} minutes; placement within "
                   f"{angel.placement_target_hours:g} hours",
                   f"the {angel.page_at_once} nearest available volunteers, then the coordinators",
                   tuple(m.value for m in WalkInMilestone), ("walk-ins", "accepted", "volunteer on scene", "placed"),
                   f"placed within {angel.placement_target_hours:g} hours: {angel.placement_target:.0%} of walk-ins")


@dataclass
class WalkInView:
    opened: WalkInOpened
    accepted: WalkInAccepted | None = None
    milestones: dict[str, WalkInMilestoneRecorded] = field(default_factory=dict)  # milestone id -> record
    escalated: list[str] = field(default_factory=list)  # reasons, in order

    @property
    def reached(self) -> dict[WalkInMilestone, datetime]:
        """Each milestone and when it first happened."""
        first: dict[WalkInMilestone, datetime] = {}
        for m in sorted(self.milestones.values(), key=lambda m: m.at):
            first.setdefault(m.milestone, m.at)
        return first

    @property
    def closed_by(self) -> WalkInMilestone | None:
        return next((m.milestone for m in sorted(self.milestones.values(), key=lambda m: m.at)
                     if m.milestone in CLOSING), None)

    @property
    def minutes_to_scene(self) -> float | None:
        arrived = self.reached.get(WalkInMilestone.volunteer_arrived)
        return (arrived - self.opened.occurred_at).total_seconds() / 60 if arrived else None

    @property
    def hours_to_placement(self) -> float | None:
        placed = self.reached.get(WalkInMilestone.placed)
        return (placed - self.opened.occurred_at).total_seconds() / 3600 if placed else None


@dataclass(frozen=True)
class MonthFigures:
    """One site's month: walk-ins -> a volunteer accepted -> on scene -> placed in treatment."""

    walk_ins: int
    accepted: int
    volunteer_on_scene: int
    placed: int
    declined: int
    placed_within_target: int
    median_minutes_to_scene: float | None
    median_hours_to_placement: float | None


def month_of(at: datetime | date) -> str:
    return f"{at.year:04d}-{at.month:02d}"


class WalkInReadModel:
    def __init__(self) -> None:
        self.walk_ins: dict[str, WalkInView] = {}
        # Expenses outlive their walk-in's details: they name no one but the volunteer, and the
        # program reimburses from them (the walk-in topic's retention ends them).
        self.expenses: dict[str, VolunteerExpenseClaimed] = {}

    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)

    def _opened(self, event: WalkInOpened) -> None:
        self.walk_ins.setdefault(event.case_id, WalkInView(event))

    def _expense(self, event: VolunteerExpenseClaimed) -> None:
        self.expenses.setdefault(event.expense_id, event)

    def _expired(self, event: WalkInExpired) -> None:
        self.walk_ins.pop(event.case_id, None)

    def _accepted(self, event: WalkInAccepted) -> None:
        view = self.walk_ins.get(event.case_id)
        if view is not None and view.accepted is None and view.closed_by is None:
            view.accepted = event

    def _milestone(self, event: WalkInMilestoneRecorded) -> None:
        view = self.walk_ins.get(event.case_id)
        if view is not None:
            view.milestones.setdefault(event.milestone_id, event)

    def _escalated(self, event: WalkInEscalated) -> None:
        view = self.walk_ins.get(event.case_id)
        if view is not None and event.reason.value not in view.escalated:
            view.escalated.append(event.reason.value)

    FOLDS: ClassVar[Handlers] = {
        WalkInOpened: "_opened", VolunteerExpenseClaimed: "_expense", WalkInExpired: "_expired",
        WalkInAccepted: "_accepted", WalkInMilestoneRecorded: "_milestone", WalkInEscalated: "_escalated"}

    def open_list(self, site_id: str) -> list[WalkInView]:
        """The site's open walk-ins, those nobody has taken first, then the oldest."""
        return sorted((v for v in self.walk_ins.values() if v.opened.site_id == site_id and v.closed_by is None),
                      key=lambda v: (v.accepted is not None, v.opened.occurred_at))

    def month(self, site_id: str, month: str, placement_target_hours: float, zone: tzinfo = UTC) -> MonthFigures:
        """Walk-ins of ``month`` (site-local)."""
        views = [v for v in self.walk_ins.values()
                 if v.opened.site_id == site_id and month_of(v.opened.occurred_at.astimezone(zone)) == month]
        to_scene = [m for v in views if (m := v.minutes_to_scene) is not None]
        to_placement = [h for v in views if (h := v.hours_to_placement) is not None]
        return MonthFigures(
            walk_ins=len(views), accepted=sum(1 for v in views if v.accepted),
            volunteer_on_scene=len(to_scene), placed=len(to_placement),
            declined=sum(1 for v in views if v.closed_by is WalkInMilestone.declined),
            placed_within_target=sum(1 for h in to_placement if h <= placement_target_hours),
            median_minutes_to_scene=round(statistics.median(to_scene), 1) if to_scene else None,
            median_hours_to_placement=round(statistics.median(to_placement), 1) if to_placement else None)

    def month_figures(self, site_id: str, month: str, zone: tzinfo, pathway: SelfReferralPathway) -> PathwayFigures:
        """The site's month as the dashboard and the monthly report show every pathway."""
        f = self.month(site_id, month, pathway.placement_target_hours, zone)
        return PathwayFigures(
            "self_referral", "Self-referral (volunteer pool)", month,
            (("walk-ins", f.walk_ins), ("accepted", f.accepted), ("volunteer on scene", f.volunteer_on_scene),
             ("placed", f.placed), (f"placed within {pathway.placement_target_hours:g} h", f.placed_within_target)),
            f"placed within {pathway.placement_target_hours:g} h / walk-ins", pathway.placement_target,
            ratio(f.placed_within_target, f.walk_ins))

    def expenses_of(self, site_id: str, month: str) -> list[VolunteerExpenseClaimed]:
        """The month's claims at a site (by the day paid), by volunteer then day."""
        return sorted((e for e in self.expenses.values() if e.site_id == site_id and month_of(e.incurred_on) == month),
                      key=lambda e: (e.volunteer_id, e.incurred_on, e.expense_id))

