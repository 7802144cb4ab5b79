"""Handle With Care as a district coordinator sees it: each notice's course, the triage queue, and
the figures (sent, on time, acknowledged, escalated, unresolved) per district and week.

Pure fold of notice and triage events; applying an event twice changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from services.handle_with_care.events import (
    HwcNoticeAcknowledged,
    HwcNoticeDelivered,
    HwcNoticeEscalated,
    HwcNoticeExpired,
    HwcNoticeRequested,
    HwcNoticeRescheduled,
    HwcTriageOpened,
    HwcTriageResolved,
)
from services.kernel.bus import Handlers, fold
from services.kernel.clock import iso_week
from services.kernel.events import (
    DeliveryOutcome,
)


@dataclass
class NoticeView:
    notice_id: str
    school_id: str
    due_at: datetime
    requested_at: datetime
    first_delivered_at: datetime | None = None
    acknowledged_at: datetime | None = None
    escalated_to: list[str] = field(default_factory=list)
    reported_overdue: bool = False

    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)

    def _delivered(self, event: HwcNoticeDelivered) -> None:
        if event.outcome is DeliveryOutcome.delivered and (
                self.first_delivered_at is None or event.delivered_at < self.first_delivered_at):
            self.first_delivered_at = event.delivered_at

    def _acknowledged(self, event: HwcNoticeAcknowledged) -> None:
        self.acknowledged_at = min(filter(None, [self.acknowledged_at, event.acknowledged_at]))

    def _escalated(self, event: HwcNoticeEscalated) -> None:
        if event.overdue:
            self.reported_overdue = True
        elif event.to_role.value not in self.escalated_to:
            self.escalated_to.append(event.to_role.value)

    def _rescheduled(self, event: HwcNoticeRescheduled) -> None:
        self.due_at = event.due_at  # the console and the on-time figures follow the calendar's new deadline

    FOLDS: ClassVar[Handlers] = {HwcNoticeDelivered: "_delivered", HwcNoticeAcknowledged: "_acknowledged",
                                 HwcNoticeEscalated: "_escalated", HwcNoticeRescheduled: "_rescheduled"}


@dataclass
class TriageItem:
    opened: HwcTriageOpened
    resolved: HwcTriageResolved | None = None


@dataclass(frozen=True)
class EncounterOutcome:
    """What became of one child met at an incident, as a program manager may see it: no name, no school."""

    state: str  # "in_triage", "notice_requested", "notice_delivered", "notice_acknowledged"
    due_at: datetime | None
    notice_id: str | None = None
    acknowledged_at: datetime | None = None


@dataclass(frozen=True)
class HwcFigures:
    district_id: str
    week: str            # ISO week of the deadline
    notices: int
    delivered: int
    on_time: int         # first delivered before the school day started
    acknowledged: int
    escalated: int
    unresolved: int      # deadline passed, still unacknowledged
    on_time_rate: float | None
    acknowledged_rate: float | None


class HwcReadModel:
    def __init__(self, district_of_school) -> None:
        self.notices: dict[str, NoticeView] = {}
        # The notice itself (the child's name, school, deadline), shown only to its school's contacts.
        self.requests: dict[str, HwcNoticeRequested] = {}
        self.triage: dict[str, TriageItem] = {}
        # (agency id, CAD incident id) -> the notices its encounters asked for, and back; until the notice expires
        self.incidents: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._incidents_of: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._district_of_school = district_of_school  # school id -> district id

    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)
        view = self.notices.get(getattr(event, "notice_id", None) or "")
        if view is not None:  # the notice's own figures (delivery, acknowledgement, escalation, deadline)
            view.apply(event)

    def _requested(self, event: HwcNoticeRequested) -> None:
        self.notices.setdefault(event.notice_id, NoticeView(event.notice_id, event.school_id, event.due_at,
                                                             event.requested_at))
        self.requests.setdefault(event.notice_id, event)
        if event.agency_id and event.incident_id:  # every encounter's request, merged ones too
            self.incidents[(event.agency_id, event.incident_id)].add(event.notice_id)
            self._incidents_of[event.notice_id].add((event.agency_id, event.incident_id))

    def _rescheduled(self, event: HwcNoticeRescheduled) -> None:
        if event.notice_id in self.requests:  # the school's page shows the new deadline
            self.requests[event.notice_id] = self.requests[event.notice_id].model_copy(update={"due_at": event.due_at})

    def _expired(self, event: HwcNoticeExpired) -> None:
        self.requests.pop(event.notice_id, None)  # the child's data goes, and its tie to the incident; the figures stay
        for incident in self._incidents_of.pop(event.notice_id, ()):
            self.incidents[incident].discard(event.notice_id)
            if not self.incidents[incident]:
                del self.incidents[incident]

    def _triage_opened(self, event: HwcTriageOpened) -> None:
        # A placement that could not be sent is back in the queue, with its reason; a replayed encounter is not.
        if event.reopened or event.cad_event_id not in self.triage:
            self.triage[event.cad_event_id] = TriageItem(event)

    def _triage_resolved(self, event: HwcTriageResolved) -> None:
        item = self.triage.get(event.cad_event_id)
        if item is not None and item.resolved is None:
            item.resolved = event

    FOLDS: ClassVar[Handlers] = {HwcNoticeRequested: "_requested", HwcNoticeRescheduled: "_rescheduled",
                                 HwcNoticeExpired: "_expired", HwcTriageOpened: "_triage_opened",
                                 HwcTriageResolved: "_triage_resolved"}

    def for_incident(self, agency_id: str, incident_id: str) -> list[EncounterOutcome]:
        """Each child met at one incident: waiting in triage, or their notice's course (a placed child's notice
        is listed as the notice)."""
        outcomes = []
        for item in self.triage.values():
            if item.resolved is None and (item.opened.agency_id, item.opened.incident_id) == (agency_id, incident_id):
                outcomes.append(EncounterOutcome("in_triage", item.opened.due_at))
        for notice_id in sorted(self.incidents.get((agency_id, incident_id), ())):
            view = self.notices.get(notice_id)
            if view is not None:
                state = ("notice_acknowledged" if view.acknowledged_at else
                         "notice_delivered" if view.first_delivered_at else "notice_requested")
                outcomes.append(EncounterOutcome(state, view.due_at, notice_id, view.acknowledged_at))
        return outcomes

    def open_triage(self, district_id: str) -> list[HwcTriageOpened]:
        return sorted((i.opened for i in self.triage.values() if i.resolved is None and i.opened.district_id == district_id),
                      key=lambda o: o.encountered_at)

    def figures(self, now: datetime, district_id: str | None = None) -> list[HwcFigures]:
        groups: dict[tuple[str, str], list[NoticeView]] = defaultdict(list)
        for notice in self.notices.values():
            district = self._district_of_school(notice.school_id) or "unknown"
            if district_id is None or district == district_id:
                groups[(district, iso_week(notice.due_at))].append(notice)
        rows = []
        for (district, week), group in sorted(groups.items()):
            delivered = sum(n.first_delivered_at is not None for n in group)
            on_time = sum(n.first_delivered_at is not None and n.first_delivered_at <= n.due_at for n in group)
            acknowledged = sum(n.acknowledged_at is not None for n in group)
            unresolved = sum(n.acknowledged_at is None and now >= n.due_at for n in group)
            rows.append(HwcFigures(district, week, len(group), delivered, on_time, acknowledged,
                                   sum(bool(n.escalated_to) for n in group), unresolved,
                                   on_time / len(group), acknowledged / len(group)))
        return rows
