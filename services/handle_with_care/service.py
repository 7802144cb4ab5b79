"""Encounter -> notice -> delivery -> acknowledgement or escalation.

Two steps, because encounters are keyed by CAD event id but a notice is about one child at one
school before one deadline, possibly from several incidents or agencies:

1. ``on_encounter`` (on the encounter's partition) drops every incident detail, finds the school
   and the deadline, and publishes ``HwcNoticeRequested`` keyed by the notice id.
2. ``on_notice_event`` (on the notice's partition, which owns it) opens the notice the first time,
   merges later requests for the same notice id, delivers, and applies acknowledgements and
   escalations. The timer only publishes ``HwcNoticeEscalated``; the owner applies it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from services.delivery.channels import Outgoing
from services.delivery.links import AckLinks
from services.handle_with_care.adapters.calendars import ics_closures
from services.handle_with_care.domain.calendar import Deadline, SchoolCalendar, next_school_day_start
from services.handle_with_care.domain.escalation import (
    OVERDUE,
    EscalationLeads,
    NoticeRecord,
    NoticeState,
    acknowledge,
    next_due_stage,
    next_stage_at,
    retention_ends_at,
    take_stage,
)
from services.handle_with_care.domain.notice import render_notice, request_notice
from services.handle_with_care.events import (
    HwcNoticeAcknowledged,
    HwcNoticeDelivered,
    HwcNoticeEscalated,
    HwcNoticeExpired,
    HwcNoticeRequested,
    HwcNoticeRescheduled,
    HwcTriageOpened,
    HwcTriageResolved,
    RecipientRole,
)
from services.handle_with_care.topics import HWC_NOTICES, HWC_TRIAGE
from services.handle_with_care.triage import DISPUTED, UNKNOWN_SCHOOL
from services.kernel.bus import Handlers, dispatch
from services.kernel.cad import CadChildEncountered
from services.kernel.clock import Clock, EventTimeWindow
from services.kernel.errors import Rejected
from services.kernel.events import (
    AcknowledgedVia,
    Channel,
    Child,
    DeliveryOutcome,
    age_on,
)
from services.kernel.identity import roster_key
from services.kernel.reference import Contact, ReferenceData, School
from services.kernel.store import KeyValueStore
from services.messaging.due import Due, Retention, ScheduledRecords
from services.messaging.events import DisclosedRecord
from services.messaging.kafka import Publisher
from services.messaging.outbox import AttemptReporter, Disclosure, Dispatch, IdempotentDelivery
from services.platform.logs import correlation_scope, current_correlation_id, get_logger

log = get_logger(__name__)


def _moved_to(due_at: datetime) -> str:
    """The marker of a published HwcNoticeRescheduled, beside the escalation stages."""
    return f"due:{due_at.isoformat()}"


def _may_move(state: NoticeState) -> bool:
    """Until it is acknowledged or reported overdue, a notice's deadline follows the school's calendar."""
    return state.acknowledged_at is None and OVERDUE not in state.stages_done


def _expired(notice_id: str, now: datetime) -> HwcNoticeExpired:
    return HwcNoticeExpired(notice_id=notice_id, expired_at=now)


def _attempt_id(notice_id: str, role: RecipientRole, contact_id: str, channel) -> str:
    """The idempotency key of one notice delivery."""
    return f"{notice_id}/{role.value}/{contact_id}/{channel.value}"


class CalendarDirectory:
    """School id -> ``SchoolCalendar``: the school's days and start time, its published .ics calendar
    and the closures an operator added at run time, all from the (live) reference data."""

    def __init__(self, reference: ReferenceData) -> None:
        self.reference = reference

    def calendar(self, school: School) -> SchoolCalendar:
        text = self.reference.calendars.get(school.calendar) if school.calendar else None
        return SchoolCalendar(zone=ZoneInfo(school.timezone), day_starts_at=school.day_starts_at,
                              open_weekdays=frozenset(school.school_days),
                              closures={day: f"closure: {why}" for day, why in
                                        self.reference.closures.get(school.school_id, {}).items()},
                              closed_in_range=ics_closures(text) if text else None)

    def deadline(self, school: School, encountered_at: datetime) -> Deadline:
        return next_school_day_start(self.calendar(school), encountered_at)


class NoticeAttempts(AttemptReporter):
    """Publishes each delivery try of a notice as ``HwcNoticeDelivered`` (the outbox's report)."""

    async def __call__(self, dispatch: Dispatch, attempt: int, outcome: DeliveryOutcome, error: str | None,
                       final: bool) -> None:
        c = dispatch.context
        await self.publisher.publish(HWC_NOTICES, c["notice_id"], HwcNoticeDelivered(
            notice_id=c["notice_id"], attempt_id=dispatch.attempt_id, recipient_role=RecipientRole(c["recipient_role"]),
            contact_id=c["contact_id"], channel=dispatch.channel, outcome=outcome, attempt=attempt, error=error,
            final=final, delivered_at=self.clock.now()))


class HandleWithCare:
    delivery: IdempotentDelivery  # its channels: attempt events read back settle through it ("delivery.apply_attempt")

    def __init__(self, reference: ReferenceData, calendars: CalendarDirectory, notices: KeyValueStore,
                 delivery: IdempotentDelivery, links: AckLinks, publisher: Publisher,
                 clock: Clock, leads: EscalationLeads, disclose_agency: bool = False,
                 window: EventTimeWindow = EventTimeWindow(), retention: timedelta = timedelta(days=30),
                 roster_secret: bytes = b"") -> None:
        self.reference = reference
        self.roster_secret = roster_secret  # keys the district rosters' entries (kernel.identity.roster_key)
        self.window = window
        self.retention = retention  # how long a notice's state outlives its deadline or acknowledgement
        self.calendars = calendars
        self.leads = leads
        # Indexed by when the next escalation stage or the end of its retention (the child's name) falls due.
        self.notices = ScheduledRecords(notices, NoticeRecord, self._next_due_at, self._due, publisher,
                                        retention=Retention(HWC_NOTICES, self._retention_ends_at, _expired),
                                        follows=reference)
        self.delivery = delivery
        self.links = links
        self.publisher = publisher
        self.clock = clock
        self.disclose_agency = disclose_agency
        # (school id, deadline) -> the deadline the calendar gives now; many notices share one school day
        self._deadlines: dict[tuple[str, datetime], Deadline] = {}
        self._deadlines_of: object = None  # the reference data they were computed with

    # --- step 1: encounter -> notice request ------------------------------------------------------
    async def on_encounter(self, encounter: CadChildEncountered) -> HwcNoticeRequested | None:
        self.window.check("encountered_at", encounter.encountered_at, self.clock.now())
        school = self._school_for(encounter)
        enrolled = None if encounter.home_educated else self._roster_school(encounter)
        if school is not None and enrolled is not None and enrolled.school_id != school.school_id:
            # The officer named one school, the district's roster another: a person decides, seeing both.
            await self._send_to_triage(encounter, enrolled)
            return None
        school = school or enrolled
        if school is None:
            await self._send_to_triage(encounter)
            return None
        return await self._request(encounter.cad_event_id, encounter.child, encounter.agency_id,
                                   encounter.encountered_at, school, encounter.incident_id)

    async def place(self, placed: HwcTriageResolved) -> HwcNoticeRequested:
        """A coordinator placed a triaged child: the notice goes to that school. The roster is not asked
        again (the coordinator decided, seeing both schools), and the encounter's time is not checked
        against the event-time window again (it was at intake; triage may take days). ``Rejected`` when
        the school cannot be sent to, so that the item goes back to triage with the reason."""
        if placed.child is None or placed.encountered_at is None or placed.agency_id is None:
            raise Rejected("child", "the placement does not carry the triage item's child")
        school = self.reference.schools.get(placed.school_id)
        if school is None:
            raise Rejected("school_id", f"school {placed.school_id!r} is no longer in the directory")
        return await self._request(placed.cad_event_id, placed.child, placed.agency_id, placed.encountered_at, school,
                                   placed.incident_id)

    async def _request(self, cad_event_id: str, child: Child, agency_id: str, encountered_at: datetime,
                       school: School, incident_id: str | None) -> HwcNoticeRequested:
        deadline = self.calendars.deadline(school, encountered_at)
        request = request_notice(child, agency_id, school.school_id, deadline.due_at, self.clock.now(),
                                 self.disclose_agency, incident_id)
        await self.publisher.publish(HWC_NOTICES, request.notice_id, request)
        log.info("hwc_notice_requested", notice_id=request.notice_id, school_id=school.school_id,
                 due_at=deadline.due_at.isoformat(), cad_event_id=cad_event_id)
        return request

    def _school_for(self, encounter: CadChildEncountered) -> School | None:
        if encounter.home_educated:
            district = self._district_of(encounter)
            la = district.local_authority_school_id if district else None
            return self.reference.schools.get(la) if la else None
        return self.reference.schools.get(encounter.school_id) if encounter.school_id else None

    def _roster_school(self, encounter: CadChildEncountered) -> School | None:
        """The school the district's roster has the child at (name and date of birth), if any."""
        district = self._district_of(encounter)
        roster = self.reference.rosters.get(district.district_id) if district and self.roster_secret else None
        if not roster:
            return None
        child = encounter.child
        school_id = roster.get(roster_key(self.roster_secret, child.first_name, child.last_name, child.date_of_birth))
        return self.reference.schools.get(school_id) if school_id else None

    def _district_of(self, encounter: CadChildEncountered):
        agency = self.reference.agencies.get(encounter.agency_id)
        return self.reference.districts.get(agency.hwc_district_id) if agency and agency.hwc_district_id else None

    async def _send_to_triage(self, encounter: CadChildEncountered, enrolled: School | None = None) -> None:
        district = self._district_of(encounter)
        # The soonest any of the district's schools the child could attend starts: the coordinator must
        # place the child by then (day cares too for a child under five, who may be at one).
        age = age_on(encounter.child.date_of_birth, encounter.encountered_at.date())
        kinds = {"school", "day_care"} if age < 5 else {"school"}
        schools = [school for school in self.reference.schools.values()
                   if district and school.district_id == district.district_id and school.kind in kinds]
        due_at = min((self.calendars.deadline(school, encounter.encountered_at).due_at for school in schools),
                     default=None)
        if enrolled is not None:
            reason = DISPUTED
        elif encounter.home_educated:
            reason = "home-educated, and the district names no local authority contact"
        else:
            reason = UNKNOWN_SCHOOL
        # Only what placing the child needs: never the incident.
        await self.publisher.publish(HWC_TRIAGE, encounter.cad_event_id, HwcTriageOpened(
            cad_event_id=encounter.cad_event_id, agency_id=encounter.agency_id,
            district_id=district.district_id if district else None, child=encounter.child,
            school_name_hint=encounter.school_name_hint, encountered_at=encounter.encountered_at,
            opened_at=self.clock.now(), school_id_given=None if encounter.home_educated else encounter.school_id,
            due_at=due_at, roster_school_id=enrolled.school_id if enrolled else None, reason=reason,
            incident_id=encounter.incident_id))
        log.warning("hwc_encounter_needs_triage", cad_event_id=encounter.cad_event_id,
                    district_id=district.district_id if district else None)

    # --- step 2: the notice's owner ----------------------------------------------------------------
    ENCOUNTER_EVENTS: ClassVar[Handlers] = {CadChildEncountered: "on_encounter"}
    NOTICE_EVENTS: ClassVar[Handlers] = {
        HwcNoticeRequested: "open", HwcNoticeDelivered: "delivery.apply_attempt",
        HwcNoticeAcknowledged: "apply_acknowledgement", HwcNoticeEscalated: "apply_escalation",
        HwcNoticeRescheduled: "apply_reschedule",
        HwcNoticeExpired: "forget"}

    async def on_notice_event(self, event) -> None:
        await dispatch(self, self.NOTICE_EVENTS, event)


    async def forget(self, event: HwcNoticeExpired) -> None:
        """Retention ended: delete the notice's state and its deliveries. In the worker these are
        table deletions, i.e. tombstones in the changelogs, which compaction then removes: a
        compacted changelog would otherwise keep the child's name for ever."""
        record = self.notices.expire(event.notice_id, event.expired_at)
        if record is None:
            return  # gone already, or acknowledged meanwhile, which moved the end of its retention
        self.delivery.forget(self._attempt_ids(record.request))
        log.info("hwc_notice_expired", notice_id=event.notice_id)

    def _attempt_ids(self, request: HwcNoticeRequested) -> list[str]:
        """Every delivery this notice can have made, from the contacts it goes to."""
        school = self.reference.schools.get(request.school_id)
        if school is None:
            return []
        contacts = [(RecipientRole.primary, school.primary_contact), (RecipientRole.backup, school.backup_contact),
                    (RecipientRole.coordinator, self._contact_for(school, RecipientRole.coordinator))]
        return [_attempt_id(request.notice_id, role, contact.contact_id, channel)
                for role, contact in contacts if contact is not None for channel in Channel]

    async def open(self, request: HwcNoticeRequested) -> None:
        record = self.notices.get(request.notice_id)
        if record is None:
            state = NoticeState(request.notice_id, request.school_id, request.due_at, opened_at=request.requested_at)
            self.notices[request.notice_id] = NoticeRecord(state, request, current_correlation_id())
        else:
            state = record.state
            merged = NoticeState(**{**state.__dict__, "merged_encounters": state.merged_encounters + 1})
            self.notices[request.notice_id] = replace(record, state=merged)
            request = record.request  # the first request is the notice
            log.info("hwc_notice_merged", notice_id=request.notice_id, encounters=merged.merged_encounters)
        # Always: a retry or a merge after a crash mid-delivery completes what is missing, and
        # IdempotentDelivery skips what was already delivered.
        school = self.reference.schools[request.school_id]
        await self._deliver_to(request, RecipientRole.primary, school.primary_contact)

    async def apply_acknowledgement(self, event: HwcNoticeAcknowledged) -> None:
        record = self.notices.get(event.notice_id)
        if record is None:
            log.warning("hwc_ack_for_unknown_notice", notice_id=event.notice_id)
            return
        state = record.state
        acked = acknowledge(state, event.contact_id, event.acknowledged_at)
        if acked is not state:
            self.notices[event.notice_id] = replace(record, state=acked)
            log.info("hwc_notice_acknowledged", notice_id=event.notice_id, by=event.contact_id,
                     before_deadline=event.acknowledged_at <= state.due_at)

    async def apply_escalation(self, event: HwcNoticeEscalated) -> None:
        record = self.notices.get(event.notice_id)
        if record is None:
            return
        state = record.state
        stage = OVERDUE if event.overdue else event.to_role.value
        self.notices.applied(event.notice_id, stage)
        if stage in state.stages_done or state.acknowledged_at is not None:
            return  # duplicate, or acknowledged meanwhile
        self.notices[event.notice_id] = replace(record, state=take_stage(state, stage))
        request = record.request
        school = self.reference.schools[request.school_id]
        if stage == OVERDUE:
            log.warning("hwc_notice_overdue_unacknowledged", notice_id=event.notice_id, school_id=school.school_id)
            return
        contact = self._contact_for(school, event.to_role)
        if contact is not None:
            await self._deliver_to(request, event.to_role, contact)

    async def apply_reschedule(self, event: HwcNoticeRescheduled) -> None:
        """The school day it was due is closed now: the stages count to the new deadline."""
        record = self.notices.get(event.notice_id)
        self.notices.applied(event.notice_id, _moved_to(event.due_at))
        if record is None:
            return
        state = record.state
        if state.due_at != event.previous_due_at or not _may_move(state):
            return  # moved already (a replay), or settled meanwhile
        self.notices[event.notice_id] = replace(record, state=replace(state, due_at=event.due_at))
        log.info("hwc_notice_rescheduled", notice_id=event.notice_id, due_at=event.due_at.isoformat(),
                 previous_due_at=event.previous_due_at.isoformat())

    def _contact_for(self, school: School, role: RecipientRole) -> Contact | None:
        if role is RecipientRole.backup:
            return school.backup_contact
        if role is RecipientRole.coordinator:
            district = self.reference.districts.get(school.district_id)
            return district.coordinator if district else None
        return school.primary_contact

    # --- timer ------------------------------------------------------------------------------------
    async def publish_due_escalations(self) -> int:
        return await self.notices.tick(self.clock.now())

    def _due(self, notice_id: str, record: NoticeRecord, now: datetime) -> list[Due]:
        """A deadline the calendar moved first (its stages wait for it), then a stage. (Retention's end, before
        either, is the runtime's.)"""
        state = record.state
        moved = self._moved_deadline(state)
        if moved is not None:
            return [Due(HWC_NOTICES, _moved_to(moved.due_at), HwcNoticeRescheduled(
                notice_id=notice_id, due_at=moved.due_at, previous_due_at=state.due_at,
                reason=next((why for _day, why in moved.skipped), None), rescheduled_at=now))]
        stage = next_due_stage(state, self.leads_for(state.school_id), now)
        if stage is None:
            return []
        overdue = stage == OVERDUE
        return [Due(HWC_NOTICES, stage, HwcNoticeEscalated(
            notice_id=notice_id, to_role=RecipientRole.coordinator if overdue else RecipientRole(stage),
            escalated_at=now, overdue=overdue))]

    def _next_due_at(self, record: NoticeRecord) -> datetime | None:
        state = record.state
        if self._moved_deadline(state) is not None:
            return state.opened_at or state.due_at  # due now: the timer publishes the new deadline first
        return next_stage_at(state, self.leads_for(state.school_id))

    def _retention_ends_at(self, record: NoticeRecord) -> datetime:
        return retention_ends_at(record.state, self.retention)

    def _moved_deadline(self, state: NoticeState) -> Deadline | None:
        """The notice's deadline as the school's calendar now has it, when that is no longer the one it has: a
        closure added for the day it was due moves it to the next school day. (A closure taken back does not move
        it earlier: the notice keeps the later deadline it was given.)"""
        if not _may_move(state):
            return None
        school = self.reference.schools.get(state.school_id)
        if school is None:
            return None
        key, current = (state.school_id, state.due_at), getattr(self.reference, "current", self.reference)
        if self._deadlines_of is not current or key not in self._deadlines:
            if self._deadlines_of is not current:  # live reference data replaced: compute afresh
                self._deadlines, self._deadlines_of = {}, current
            # The first school day start strictly after the instant before the old deadline: the same one if
            # that day is still a school day.
            self._deadlines[key] = self.calendars.deadline(school, state.due_at - timedelta(microseconds=1))
        deadline = self._deadlines[key]
        return deadline if deadline.due_at > state.due_at else None

    def leads_for(self, school_id: str) -> EscalationLeads:
        """The lead times of the school's district where it sets them, else the defaults."""
        school = self.reference.schools.get(school_id)
        district = self.reference.districts.get(school.district_id) if school else None
        if district is None:
            return self.leads
        minutes = lambda value, default: default if value is None else timedelta(minutes=value)  # noqa: E731
        return EscalationLeads(minutes(district.hwc_backup_lead_minutes, self.leads.backup),
                               minutes(district.hwc_coordinator_lead_minutes, self.leads.coordinator),
                               minutes(district.hwc_late_step_minutes, self.leads.late_step))

    # --- delivery ---------------------------------------------------------------------------------
    async def _deliver_to(self, request: HwcNoticeRequested, role: RecipientRole, contact: Contact) -> None:
        school = self.reference.schools[request.school_id]
        for channel in contact.channels:
            rendered = render_notice(request, school, self.links.url("notice", request.notice_id, contact.contact_id),
                                     role)
            outgoing = Outgoing(_attempt_id(request.notice_id, role, contact.contact_id, channel), contact.address_for(channel), rendered.subject, rendered.body,
                                rendered.body, rendered.payload)
            await self.delivery.request(Dispatch(
                channel.value, outgoing, Disclosure(DisclosedRecord.hwc_notice, request.notice_id, contact.contact_id,
                                                    role.value),
                {"notice_id": request.notice_id, "recipient_role": role.value, "contact_id": contact.contact_id}))


async def acknowledge_notice(notice_id: str, contact_id: str, publisher: Publisher, clock: Clock,
                             via: AcknowledgedVia = AcknowledgedVia.link) -> None:
    """A school contact acknowledges a notice (by its link or in the console); its owner applies it."""
    with correlation_scope():
        await publisher.publish(HWC_NOTICES, notice_id, HwcNoticeAcknowledged(
            notice_id=notice_id, contact_id=contact_id, via=via, acknowledged_at=clock.now()))
        log.info("hwc_ack_received", notice_id=notice_id, by=contact_id)
