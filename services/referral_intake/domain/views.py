"""A referral as the program sees it, folded from its events: status, milestones, the handoff clock
(referral -> acknowledgement -> contact), flags; and the figures program managers answer for.

Pure: the same fold runs in the worker (the authority, one partition's referrals) and in the API's
read model (every referral). Applying an event twice changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import ClassVar

from services.kernel.bus import Handlers, fold
from services.kernel.clock import iso_week
from services.kernel.errors import Rejected
from services.kernel.events import (
    OPEN_STATUSES,
    Milestone,
    ReferralFlag,
    ReferralStatus,
)
from services.kernel.lead import (
    OFFICER_TARGET,
    EngagementRecorded,
    EngagementWithdrawn,
    PageAcknowledged,
    PageExhausted,
    PageRequested,
    PageSent,
    ReferralCreated,
    ReferralFlagged,
    ReferralStatusChanged,
)
from services.referral_intake.domain.lifecycle import IllegalTransition, apply_milestone
from services.referral_intake.domain.pathways import ENGAGEMENT_TARGET, ENROLLMENT_TARGET

CONTACT_MILESTONES = {Milestone.contacted.value, Milestone.intake_scheduled.value, Milestone.enrolled.value,
                      Milestone.engaged.value}
INTAKE_MILESTONES = {Milestone.intake_scheduled.value, Milestone.enrolled.value, Milestone.engaged.value}
_OPEN = {status.value for status in OPEN_STATUSES}
HANDOFF_MISSED = "handoff_missed"  # a view flag: every escalation step went unacknowledged (PageExhausted)


@dataclass
class LastStep:
    """The last engagement recorded on a referral, with what it changed: what undoing it puts back."""

    engagement_id: str
    milestone: str
    status_before: str
    status_after: str
    milestone_first_before: datetime | None  # the milestone's first time before this step (None: it had none)
    last_contact_before: datetime | None


@dataclass
class ReferralView:
    referral_id: str
    site_id: str
    referral_type: str
    referred_at: datetime
    intake_due_at: datetime
    status: str = ReferralStatus.requested.value
    milestones: dict[str, datetime] = field(default_factory=dict)   # first time each was recorded
    last_contact_at: datetime | None = None
    paged_at: datetime | None = None
    paged_case_managers: list[str] = field(default_factory=list)
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    flags: list[str] = field(default_factory=list)
    cad_fingerprint: str | None = None
    handoff_missed_at: datetime | None = None
    legal_deadline: datetime | None = None  # officer intervention: charges held until then
    updated_at: datetime | None = None  # the last change a case-management system would see (FHIR _lastUpdated)
    incident: tuple[str, str] | None = None  # (agency id, CAD incident id), when CAD named the incident
    closed_at: datetime | None = None  # when a final status ended it: its personal values' retention runs from then
    late: bool = False  # reached Handoff past the warm-handoff window: never paged, outreach's to follow up
    paging_step: tuple[int, int] | None = None  # (loop, step) of the escalation's latest sends
    tried_now: list[str] = field(default_factory=list)  # who that step paged: what the officer's view names
    last_step: LastStep | None = None  # the last engagement recorded, while it can still be undone

    @classmethod
    def opened(cls, event: ReferralCreated) -> ReferralView:
        return cls(event.referral_id, event.site_id, event.referral_type.value, event.referred_at, event.intake_due_at,
                   cad_fingerprint=event.cad_fingerprint, legal_deadline=event.legal_deadline,
                   incident=(event.agency_id, event.incident_id) if event.incident_id else None, late=event.late)

    # --- fold -------------------------------------------------------------------------------------
    def apply(self, event) -> None:
        fold(self, self.FOLDS, event)

    def _touched(self, at: datetime) -> None:
        """What a case-management system sees as a change (FHIR ``_lastUpdated``)."""
        self.updated_at = max(filter(None, [self.updated_at, at]))

    def _status_changed(self, event: ReferralStatusChanged) -> None:
        self._touched(event.changed_at)
        self.status = event.status.value
        if not self.is_open:
            self.closed_at = self.closed_at or event.changed_at

    def _engagement_recorded(self, event: EngagementRecorded) -> None:
        step = self.last_step
        if step is None or step.engagement_id != event.engagement_id:  # (a replay keeps what the first one changed)
            step = self.last_step = LastStep(event.engagement_id, event.milestone.value, self.status, self.status,
                                             self.milestones.get(event.milestone.value), self.last_contact_at)
        self._touched(event.recorded_at)
        self._milestone(event.milestone.value, event.occurred_at)
        # The status the milestone implies, at once: a page confirming "Contacted" shows "in progress" without
        # waiting for the tracker's ReferralStatusChanged (the same status, which then changes nothing).
        try:
            implied = apply_milestone(self.referral_id, self.site_id, ReferralStatus(self.status), event.milestone,
                                      event.occurred_at).status_change
        except Rejected:
            implied = None  # the tracker refuses it too, and says so
        if implied is not None:
            self.status = implied.status.value
        if event.milestone.value in CONTACT_MILESTONES:
            self.last_contact_at = max(filter(None, [self.last_contact_at, event.occurred_at]))
            self.flags = [f for f in self.flags if f != ReferralFlag.no_contact.value]
        step.status_after = self.status

    def _engagement_withdrawn(self, event: EngagementWithdrawn) -> None:
        """The last step undone: its milestone, its contact time and the status it implied are what they were before
        it (a lapsed contact is flagged again by the timer, when due)."""
        step = self.last_step
        if step is None or not self.can_undo(event.engagement_id):
            return  # the tracker refused it too, and says so
        self._touched(event.withdrawn_at)
        if step.milestone_first_before is None:
            self.milestones.pop(step.milestone, None)
        else:
            self.milestones[step.milestone] = step.milestone_first_before
        self.last_contact_at = step.last_contact_before
        self.status, self.last_step = step.status_before, None

    def _page_requested(self, event: PageRequested) -> None:
        self.paged_at = self.paged_at or event.requested_at
        self._milestone(Milestone.paged.value, event.requested_at)

    def _page_sent(self, event: PageSent) -> None:
        if event.target_id == OFFICER_TARGET:
            return
        if event.target_id not in self.paged_case_managers:
            self.paged_case_managers.append(event.target_id)
        if event.step_index < 0:  # a deadline warning or the missed handoff's fallback: not an escalation step
            return
        step = (event.loop, event.step_index)
        if self.paging_step is None or step > self.paging_step:
            self.paging_step, self.tried_now = step, [event.target_id]
        elif step == self.paging_step and event.target_id not in self.tried_now:
            self.tried_now.append(event.target_id)

    def _page_acknowledged(self, event: PageAcknowledged) -> None:
        self._touched(event.acknowledged_at)
        if self.acknowledged_at is None:
            self.acknowledged_at, self.acknowledged_by = event.acknowledged_at, event.acknowledged_by
        self._milestone(Milestone.acknowledged.value, event.acknowledged_at)

    def _flagged(self, event: ReferralFlagged) -> None:
        if event.flag.value not in self.flags:
            self.flags.append(event.flag.value)
        if event.flag is ReferralFlag.intake_deadline_missed:  # "near" is overtaken, not kept beside it
            self.flags = [f for f in self.flags if f != ReferralFlag.intake_deadline_near.value]
        if event.flag is ReferralFlag.legal_deadline_passed:
            self.flags = [f for f in self.flags if f != ReferralFlag.legal_deadline_near.value]

    def _page_exhausted(self, event: PageExhausted) -> None:
        self.handoff_missed_at = self.handoff_missed_at or event.exhausted_at
        if HANDOFF_MISSED not in self.flags:
            self.flags.insert(0, HANDOFF_MISSED)

    FOLDS: ClassVar[Handlers] = {
        ReferralStatusChanged: "_status_changed", EngagementRecorded: "_engagement_recorded",
        EngagementWithdrawn: "_engagement_withdrawn", PageRequested: "_page_requested", PageSent: "_page_sent",
        PageAcknowledged: "_page_acknowledged", ReferralFlagged: "_flagged", PageExhausted: "_page_exhausted"}

    def _milestone(self, name: str, at: datetime) -> None:
        if name not in self.milestones or at < self.milestones[name]:
            self.milestones[name] = at

    # --- questions --------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    def has(self, milestone: str) -> bool:
        return milestone in self.milestones

    def can_undo(self, engagement_id: str) -> bool:
        """Only the last step recorded, once, while nothing has moved the referral on since (a status it did not
        imply, a closing)."""
        step = self.last_step
        return (step is not None and step.engagement_id == engagement_id and self.is_open
                and self.status == step.status_after)

    def undoable(self, engagement_id: str) -> LastStep:
        """The last step, when ``engagement_id`` is it and it can be undone; else ``IllegalTransition`` saying why."""
        step = self.last_step
        if step is None or step.engagement_id != engagement_id:
            raise IllegalTransition("engagement_id", "only the last step recorded can be undone, and only once")
        if not self.can_undo(engagement_id):
            now = self.status.replace("_", " ")
            raise IllegalTransition("engagement_id", f"the referral has moved on since (it is {now} now)")
        return step

    def undo_last_step(self, engagement_id: str, by: str, at: datetime) -> EngagementWithdrawn:
        """The event that undoes the last step recorded, or ``IllegalTransition`` saying why it cannot be."""
        step = self.undoable(engagement_id)
        return EngagementWithdrawn(engagement_id=engagement_id, referral_id=self.referral_id, site_id=self.site_id,
                                   milestone=Milestone(step.milestone), withdrawn_at=at, withdrawn_by=by)

    @property
    def awaiting_a_case_manager(self) -> bool:
        """Missed handoff, or a late referral nobody was paged for, and still nobody on it: outreach must go and
        find the person first."""
        return ((HANDOFF_MISSED in self.flags or self.late) and self.is_open and self.acknowledged_at is None
                and self.seconds_to_contact() is None)

    def seconds_to_acknowledge(self) -> float | None:
        """The warm handoff's own clock: from the page to its acknowledgement. (From the CAD event it would count
        the time CAD took to send the referral against the case manager: ``seconds_from_event_to_page``.)"""
        if self.acknowledged_at is None or self.paged_at is None:
            return None
        return max(0.0, (self.acknowledged_at - self.paged_at).total_seconds())

    def seconds_from_event_to_page(self) -> float | None:
        """How long after the officer met the person the page went out: CAD's and Handoff's lag, its own figure."""
        return max(0.0, (self.paged_at - self.referred_at).total_seconds()) if self.paged_at else None

    def seconds_to_contact(self) -> float | None:
        first = min((self.milestones[m] for m in CONTACT_MILESTONES if m in self.milestones), default=None)
        return (first - self.referred_at).total_seconds() if first else None

    def due_flags(self, now: datetime, warn_before: timedelta, no_contact_after: timedelta,
                  legal_warning: timedelta = timedelta(days=14)) -> list[ReferralFlag]:
        """Flags that should be raised at ``now`` and have not been."""
        if not self.is_open:
            return []
        due: list[ReferralFlag] = []
        if self.legal_deadline is not None:  # a completed plan closes the referral, and with it this clock
            if now >= self.legal_deadline and "legal_deadline_passed" not in self.flags:
                due.append(ReferralFlag.legal_deadline_passed)
            elif (now >= self.legal_deadline - legal_warning
                  and not {"legal_deadline_near", "legal_deadline_passed"} & set(self.flags)):
                due.append(ReferralFlag.legal_deadline_near)
        intake_done = any(self.has(m) for m in INTAKE_MILESTONES)
        if not intake_done and now >= self.intake_due_at and "intake_deadline_missed" not in self.flags:
            due.append(ReferralFlag.intake_deadline_missed)
        elif (not intake_done and now >= self.intake_due_at - warn_before
              and not {"intake_deadline_near", "intake_deadline_missed"} & set(self.flags)):
            due.append(ReferralFlag.intake_deadline_near)
        since = self.last_contact_at or self.referred_at
        if now - since >= no_contact_after and "no_contact" not in self.flags:
            due.append(ReferralFlag.no_contact)
        return due

    def next_flag_at(self, warn_before: timedelta, no_contact_after: timedelta,
                     legal_warning: timedelta = timedelta(days=14)) -> datetime | None:
        """The earliest time at which ``due_flags`` returns a flag (None: never, the referral is closed
        or every flag is raised)."""
        if not self.is_open:
            return None
        candidates = []
        if self.legal_deadline is not None:
            if "legal_deadline_passed" not in self.flags:
                candidates.append(self.legal_deadline)
            if not {"legal_deadline_near", "legal_deadline_passed"} & set(self.flags):
                candidates.append(self.legal_deadline - legal_warning)
        if not any(self.has(m) for m in INTAKE_MILESTONES):
            if "intake_deadline_missed" not in self.flags:
                candidates.append(self.intake_due_at)
            if not {"intake_deadline_near", "intake_deadline_missed"} & set(self.flags):
                candidates.append(self.intake_due_at - warn_before)
        if "no_contact" not in self.flags:
            candidates.append((self.last_contact_at or self.referred_at) + no_contact_after)
        return min(candidates, default=None)


@dataclass(frozen=True)
class RecordedStep:
    """One line of a referral's history as people read it: when, what (a milestone, who took the page, a status
    and its reason), by whom (a staff id). ``key`` keeps a step applied twice one line."""

    key: str
    at: datetime
    what: str
    by: str | None = None
    reason: str | None = None
    undone: tuple[datetime, str] | None = None  # when and by whom the step was undone (it stays, struck through)


def recorded_step(event) -> RecordedStep | None:
    """The history line an event makes, if it makes one: a status only when a person ended the referral (the
    statuses a milestone implies are that milestone's line)."""
    if isinstance(event, EngagementRecorded):
        return RecordedStep(event.engagement_id, event.occurred_at, event.milestone.value, event.recorded_by,
                            event.reason.value if event.reason else None)
    if isinstance(event, PageAcknowledged):
        return RecordedStep("acknowledged", event.acknowledged_at, "took_the_page", event.acknowledged_by)
    if isinstance(event, ReferralStatusChanged) and event.changed_by and event.status.value not in _OPEN:
        return RecordedStep(f"status/{event.status.value}/{event.changed_at.isoformat()}", event.changed_at,
                            event.status.value, event.changed_by, event.reason.value if event.reason else None)
    return None


@dataclass
class TrackedReferral:
    """What intake's tracker keeps of a referral: its view (no personal data), and the correlation id of
    the CAD event that opened it, which the flags its timer raises carry too."""

    view: ReferralView
    correlation_id: str | None = None


@dataclass(frozen=True)
class FunnelRow:
    site_id: str
    referral_type: str
    week: str                     # ISO week of the referral, e.g. 2026-W47
    referrals: int
    contacted: int
    enrolled: int
    engaged: int
    enrollment_rate: float | None  # enrolled / referrals
    engagement_rate: float | None  # engaged / enrolled
    meets_enrollment_target: bool | None
    meets_engagement_target: bool | None
    median_seconds_to_acknowledge: float | None
    median_seconds_to_contact: float | None
    handoffs_missed: int = 0      # nobody acknowledged the page through every step ("lack of warm handoff")
    median_seconds_event_to_page: float | None = None  # from the CAD event to the page (the handoff's is from the page)


def funnel(views: list[ReferralView], site_id: str | None = None) -> list[FunnelRow]:
    """Figures per site, referral type and week; rates against the 60% and 75% targets."""
    groups: dict[tuple[str, str, str], list[ReferralView]] = defaultdict(list)
    for view in views:
        if site_id is None or view.site_id == site_id:
            groups[(view.site_id, view.referral_type, iso_week(view.referred_at))].append(view)
    rows = []
    for (site, kind, week), group in sorted(groups.items()):
        contacted = sum(v.seconds_to_contact() is not None for v in group)
        enrolled = sum(v.has("enrolled") or v.has("engaged") for v in group)
        engaged = sum(v.has("engaged") for v in group)
        enrollment = enrolled / len(group) if group else None
        engagement = engaged / enrolled if enrolled else None
        rows.append(FunnelRow(site, kind, week, len(group), contacted, enrolled, engaged, enrollment, engagement,
                              None if enrollment is None else enrollment >= ENROLLMENT_TARGET,
                              None if engagement is None else engagement >= ENGAGEMENT_TARGET,
                              median_of(group, ReferralView.seconds_to_acknowledge),
                              median_of(group, ReferralView.seconds_to_contact),
                              sum(v.handoff_missed_at is not None for v in group),
                              median_of(group, ReferralView.seconds_from_event_to_page)))
    return rows


def median_of(views: Iterable[ReferralView], measure: Callable[[ReferralView], float | None]) -> float | None:
    """The median of a measure over the views that have it (None: none has)."""
    values = [value for v in views if (value := measure(v)) is not None]
    return median(values) if values else None
