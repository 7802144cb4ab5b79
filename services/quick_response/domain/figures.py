"""The team's read model: today's list, the weekly funnel, the de-identified feed. Built from the
follow-up and report events (``apply``); pure, so the API and tests share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import ClassVar

from services.kernel.bus import Handlers, fold
from services.kernel.cad import CadOverdoseResponded
from services.kernel.pathways import Pathway, PathwayFigures, ratio
from services.kernel.reference import QuickResponsePathway, Site
from services.quick_response.domain.follow_up import CLOSING, CONTACTED, ENGAGED
from services.quick_response.domain.state_report import StateReportRow, state_row
from services.quick_response.events import (
    AttemptOutcome,
    FollowUpAttempted,
    FollowUpEscalated,
    FollowUpExpired,
    FollowUpOpened,
    OverdoseReported,
)


def pathway_of(site: Site) -> Pathway | None:
    """What the site's Quick Response Team promises, when it runs one."""
    if (qrt := site.quick_response) is None:
        return None
    return Pathway("quick_response", "Quick Response Team (naloxone plus)",
                   f"follow-up within {qrt.follow_up_hours} hours of the overdose",
                   f"the team's list; team leads warned {qrt.warn_before_hours:g} hours before the window closes",
                   tuple(o.value for o in AttemptOutcome if o is not AttemptOutcome.other),
                   ("overdose calls", "follow-ups", "contacted", "engaged", "referred to treatment"),
                   f"contacted {qrt.contact_target:.0%} of follow-ups")


@dataclass
class FollowUpView:
    opened: FollowUpOpened
    attempts: dict[str, FollowUpAttempted] = field(default_factory=dict)  # attempt id -> attempt
    warned: bool = False

    @property
    def outcomes(self) -> list[AttemptOutcome]:
        return [a.outcome for a in sorted(self.attempts.values(), key=lambda a: a.attempted_at)]

    @property
    def closed_by(self) -> AttemptOutcome | None:
        return next((o for o in self.outcomes if o in CLOSING), None)


@dataclass(frozen=True)
class Funnel:
    """One site's week, as Huntington reported January 2018 (113 -> 71 -> 35 -> 14)."""

    overdose_calls: int
    follow_ups: int
    contacted: int
    engaged: int
    referred_to_treatment: int


def week_of(at: datetime) -> date:
    """The Monday of ``at``'s ISO week."""
    day = at.date()
    return day - timedelta(days=day.weekday())


class QrtReadModel:
    #: The state report's rows are kept this long (the CAD overdose topic keeps 7 days).
    STATE_ROWS_KEPT = timedelta(days=7)

    def __init__(self, report_key: bytes = b"") -> None:
        self.follow_ups: dict[str, FollowUpView] = {}
        self.reports: dict[str, OverdoseReported] = {}
        self.report_key = report_key
        self.state_rows: dict[str, StateReportRow] = {}  # report id -> the state's fields (no one named)

    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)

    def _overdose(self, event: CadOverdoseResponded) -> None:
        if self.report_key:
            row = state_row(event, self.report_key)
            self.state_rows.setdefault(row.report_id, row)
            oldest = row.occurred_at - self.STATE_ROWS_KEPT
            if len(self.state_rows) % 256 == 0:  # now and then: drop what the topic no longer holds either
                self.state_rows = {k: r for k, r in self.state_rows.items() if r.occurred_at >= oldest}

    def _opened(self, event: FollowUpOpened) -> None:
        self.follow_ups.setdefault(event.task_id, FollowUpView(event))

    def _attempted(self, event: FollowUpAttempted) -> None:
        view = self.follow_ups.get(event.task_id)
        if view is not None:
            view.attempts[event.attempt_id] = event

    def _escalated(self, event: FollowUpEscalated) -> None:
        view = self.follow_ups.get(event.task_id)
        if view is not None:
            view.warned = True

    def _expired(self, event: FollowUpExpired) -> None:
        self.follow_ups.pop(event.task_id, None)  # who and where, gone with its retention

    def _reported(self, event: OverdoseReported) -> None:
        self.reports[event.report_id] = event

    FOLDS: ClassVar[Handlers] = {
        CadOverdoseResponded: "_overdose", FollowUpOpened: "_opened", FollowUpAttempted: "_attempted",
        FollowUpEscalated: "_escalated", FollowUpExpired: "_expired", OverdoseReported: "_reported"}

    def open_list(self, site_id: str) -> list[FollowUpView]:
        """The team's list: open follow-ups of the site, the one due first on top."""
        return sorted((v for v in self.follow_ups.values() if v.opened.site_id == site_id and v.closed_by is None),
                      key=lambda v: v.opened.due_at)

    def recent(self, site_id: str, now: datetime, hours: int = 24) -> list[FollowUpView]:
        """Overdoses of the last ``hours`` with a follow-up, due first on top (open or not)."""
        since = now - timedelta(hours=hours)
        return sorted((v for v in self.follow_ups.values()
                       if v.opened.site_id == site_id and v.opened.occurred_at >= since),
                      key=lambda v: v.opened.due_at)

    def funnel(self, site_id: str, week: date) -> Funnel:
        reports = [r for r in self.reports.values() if r.site_id == site_id and week_of(r.hour) == week]
        views = [v for v in self.follow_ups.values()
                 if v.opened.site_id == site_id and week_of(v.opened.occurred_at) == week]
        return Funnel(
            overdose_calls=len(reports), follow_ups=len(views),
            contacted=sum(1 for v in views if CONTACTED & set(v.outcomes)),
            engaged=sum(1 for v in views if ENGAGED & set(v.outcomes)),
            referred_to_treatment=sum(1 for v in views if AttemptOutcome.referred_to_treatment in v.outcomes))

    def month_figures(self, site_id: str, month: str, zone: tzinfo, pathway: QuickResponsePathway) -> PathwayFigures:
        """The site's month (site-local) as the dashboard and the monthly report show every pathway."""
        def in_month(at: datetime) -> bool:
            return at.astimezone(zone).strftime("%Y-%m") == month

        reports = [r for r in self.reports.values() if r.site_id == site_id and in_month(r.hour)]
        views = [v for v in self.follow_ups.values() if v.opened.site_id == site_id and in_month(v.opened.occurred_at)]
        contacted = sum(1 for v in views if CONTACTED & set(v.outcomes))
        return PathwayFigures(
            "quick_response", "Quick Response Team (naloxone plus)", month,
            (("overdose calls", len(reports)), ("follow-ups", len(views)), ("contacted", contacted),
             ("engaged", sum(1 for v in views if ENGAGED & set(v.outcomes))),
             ("referred to treatment", sum(1 for v in views if AttemptOutcome.referred_to_treatment in v.outcomes))),
            "contacted / follow-ups", pathway.contact_target, ratio(contacted, len(views)))

    def state_report(self, site_id: str, since: datetime, agencies: frozenset[str]) -> list[StateReportRow]:
        """The state's fields for the site's overdoses since ``since``, from agencies that serve the site
        (a record the worker dead-letters is left out here too), oldest first."""
        return sorted((r for r in self.state_rows.values()
                       if r.site_id == site_id and r.occurred_at >= since and r.agency_id in agencies),
                      key=lambda r: (r.occurred_at, r.report_id))

    def feed(self, site_id: str | None = None, since: datetime | None = None) -> list[OverdoseReported]:
        return sorted((r for r in self.reports.values()
                       if (site_id is None or r.site_id == site_id) and (since is None or r.hour >= since)),
                      key=lambda r: (r.hour, r.report_id))
