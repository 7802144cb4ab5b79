"""Referral intake's service layer.

- ``ReferralIntake``: a CAD referral is deduplicated by its CAD event id, opened, published.
- ``EngagementTracker``: the lifecycle authority: milestones, status changes, deadline flags.
- Staff commands (``RecordEngagement``, ``ChangeStatus``), handled by ``handle_staff_command``:
  checked against the lifecycle at once (the API answers 409) and published; the tracker, which
  owns the lifecycle, checks again when it applies them.
- ``disclose_identity``: who the person is, for the case manager who took the referral, audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from services.kernel.bus import Handlers, dispatch
from services.kernel.cad import CadOverdoseResponded, CadReferralMade
from services.kernel.clock import Clock, EventTimeWindow
from services.kernel.errors import Rejected
from services.kernel.events import (
    ConsentRole,
    DeliveryOutcome,
    DisclosureChannel,
    Milestone,
    ReferralFlag,
    ReferralStatus,
    ReferredPerson,
    StatusReason,
)
from services.kernel.identity import person_key
from services.kernel.lead import (
    ConsentRevoked,
    EngagementRecorded,
    EngagementWithdrawn,
    PageAcknowledged,
    PageEscalated,
    PageExhausted,
    PageRequested,
    PageSent,
    ParticipantSeen,
    ReferralCreated,
    ReferralFlagged,
    ReferralLocationUpdated,
    ReferralNoteWritten,
    ReferralRetentionEnded,
    ReferralStatusChanged,
)
from services.kernel.reference import ReferenceData
from services.kernel.store import KeyValueStore
from services.kernel.topics import AUDIT, REFERRALS
from services.messaging.due import Due, Retention, ScheduledRecords
from services.messaging.events import DisclosedRecord, DisclosureAudited, ErasureReason
from services.messaging.kafka import Publisher
from services.platform.logs import correlation_scope, current_correlation_id, get_logger
from services.referral_intake.domain.lifecycle import (
    apply_milestone,
    check_milestone_order,
    transition,
    undo_status,
)
from services.referral_intake.domain.model import (
    cad_fingerprint,
    open_referral,
    referral_id_for,
    subject_fingerprint,
)
from services.referral_intake.domain.views import ReferralView, TrackedReferral

log = get_logger(__name__)
Erase = Callable[[str, ErasureReason], None]  # (referral id, why): destroys the referral's data keys


class ReferralIntake:
    def __init__(self, reference: ReferenceData, referrals: KeyValueStore, publisher: Publisher, clock: Clock,
                 window: EventTimeWindow = EventTimeWindow(),
                 inactive_participant: Callable[[str, str | None], str | None] = lambda _site, _key: None) -> None:
        self.reference = reference
        self.window = window
        # (site id, person key) -> the referral of an inactive participant (domain/participants.py)
        self.inactive_participant = inactive_participant
        self.referrals = referrals  # referral_id -> {"status", "site_id", "created_at"}
        self.publisher = publisher
        self.clock = clock

    CAD_EVENTS: ClassVar[Handlers] = {CadReferralMade: "on_cad_referral"}
    OVERDOSE_EVENTS: ClassVar[Handlers] = {CadOverdoseResponded: "on_cad_overdose"}

    async def on_cad_referral(self, cad: CadReferralMade) -> ReferralCreated | None:
        """Open a referral; ``None`` when this CAD event already opened one (retry or replay)."""
        referral_id = referral_id_for(cad.site_id, cad.agency_id, cad.cad_event_id)
        known = self.referrals.get(referral_id)
        if known is not None:
            fingerprint = cad_fingerprint(cad)
            if known.get("fingerprint") not in (None, fingerprint) and known.get("subject") == subject_fingerprint(cad):
                await self._location_updated(cad, referral_id, known, fingerprint)
                return None
            if known.get("fingerprint") not in (None, fingerprint):
                # Not a retry: the CAD system changed what it says under the same id. Dead-lettered
                # (so an operator sees it and can act), never silently taken for a duplicate.
                raise Rejected("cad_event_id", "already used by a referral with a different body; a changed or new "
                                               "referral needs a new cad_event_id")
            log.info("referral_duplicate_ignored", referral_id=referral_id, cad_event_id=cad.cad_event_id)
            return None
        created = open_referral(cad, self.reference.site(cad.site_id), self.reference.agencies.get(cad.agency_id),
                                self.clock.now(), self.window)
        # Publish before remembering: a crash in between replays into a duplicate that downstream
        # dedups by referral id, never into a referral that was remembered but not published.
        await self.publisher.publish(REFERRALS, referral_id, created)
        self.referrals[referral_id] = {"status": ReferralStatus.requested.value, "site_id": cad.site_id,
                                       "created_at": created.created_at.isoformat(),
                                       "fingerprint": created.cad_fingerprint, "subject": subject_fingerprint(cad)}
        log.info("referral_opened", referral_id=referral_id, site_id=cad.site_id,
                 referral_type=cad.referral_type.value)
        p = cad.person
        await self._tell_if_inactive_participant(cad.site_id, cad.cad_event_id,
                                                 person_key(p.first_name, p.last_name, p.date_of_birth),
                                                 cad.occurred_at, cad.location.description, referral_id)
        return created

    async def _location_updated(self, cad: CadReferralMade, referral_id: str, known: dict, fingerprint: str) -> None:
        """CAD updated the call: the person moved. The notifier tells the case manager of an open referral
        (it knows which are closed). Remembered, so the same update again is a retry."""
        await self.publisher.publish(REFERRALS, referral_id, ReferralLocationUpdated(
            referral_id=referral_id, site_id=cad.site_id, cad_event_id=cad.cad_event_id, updated_at=self.clock.now(),
            location_description=cad.location.description))
        self.referrals[referral_id] = {**known, "fingerprint": fingerprint}
        log.info("referral_location_updated", referral_id=referral_id)

    async def on_cad_overdose(self, overdose: CadOverdoseResponded) -> None:
        """An overdose response (any pathway's CAD event) that names an inactive participant: their case
        manager hears where and when, as for a referral. The overdose itself is the Quick Response
        service's; nothing of the match goes back to the responders."""
        p = overdose.person
        agency = self.reference.agencies.get(overdose.agency_id)
        if p is None or overdose.fatal or agency is None or overdose.site_id not in agency.sites:
            return  # nobody named, or a record the Quick Response service dead-letters (naming the field)
        await self._tell_if_inactive_participant(
            overdose.site_id, f"overdose:{overdose.overdose_event_id}", person_key(p.first_name, p.last_name,
                                                                                  p.date_of_birth),
            overdose.occurred_at, overdose.location_description or "not given")

    async def _tell_if_inactive_participant(self, site_id: str, cad_event_id: str, key: str | None,
                                            seen_at: datetime, where: str, referral_id: str | None = None) -> None:
        """Police met someone who matches an inactive participant: their case manager is told (by the
        notifier, on the participant's own referral). The CAD side hears nothing of it."""
        known = self.inactive_participant(site_id, key)
        if known is None or known == referral_id:
            return
        await self.publisher.publish(REFERRALS, known, ParticipantSeen(
            referral_id=known, site_id=site_id, cad_event_id=cad_event_id, seen_at=seen_at,
            location_description=where))
        log.info("participant_seen", referral_id=known, cad_event_id=cad_event_id)


ENGAGEMENT_NAMESPACE = uuid.UUID("3c0c1f43-8a9e-4f0e-b4a1-0d5f7e2a9b61")


@dataclass(frozen=True)
class RecordEngagement:
    """A case manager records a contact or a milestone. The same one recorded twice (a double tap, a
    retried request: the same ``idempotency_key``) is one engagement."""

    referral_id: str
    milestone: Milestone
    recorded_by: str
    reason: StatusReason | None = None
    occurred_at: datetime | None = None
    idempotency_key: str | None = None

    @classmethod
    def one_tap(cls, referral_id: str, milestone: Milestone, recorded_by: str, now: datetime) -> RecordEngagement:
        """A console button: taps within the same minute are one engagement."""
        minute = now.replace(second=0, microsecond=0).isoformat()
        return cls(referral_id, milestone, recorded_by, idempotency_key=f"console/{milestone.value}/{minute}/{recorded_by}")


@dataclass(frozen=True)
class UndoLastStep:
    """A case manager undoes the last step recorded on a referral (a wrong tap)."""

    referral_id: str
    engagement_id: str
    undone_by: str


@dataclass(frozen=True)
class ChangeStatus:
    referral_id: str
    status: ReferralStatus
    changed_by: str
    reason: StatusReason | None = None


async def write_note(view: ReferralView, text: str, written_by: str, publisher: Publisher, clock: Clock) -> str:
    """A note on the referral, sealed under its key like every personal value on its topic; the same text sent
    twice within a minute (a double tap, a retried form) is one note. Returns the note's id."""
    now = clock.now()
    minute = now.replace(second=0, microsecond=0).isoformat()
    note_id = str(uuid.uuid5(ENGAGEMENT_NAMESPACE, f"{view.referral_id}/note/{written_by}/{minute}/{text}"))
    with correlation_scope():
        await publisher.publish(REFERRALS, view.referral_id, ReferralNoteWritten(
            note_id=note_id, referral_id=view.referral_id, site_id=view.site_id, text=text, written_at=now,
            written_by=written_by))
    log.info("referral_note_written", referral_id=view.referral_id)
    return note_id


async def record_consent_revoked(view: ReferralView, recorded_by: str, publisher: Publisher, clock: Clock) -> None:
    """The person revoked their consent: ``ConsentRevoked`` on the referral's topic, which the tracker applies by
    erasing what the consent covered."""
    with correlation_scope():
        await publisher.publish(REFERRALS, view.referral_id, ConsentRevoked(
            referral_id=view.referral_id, site_id=view.site_id, revoked_at=clock.now(), recorded_by=recorded_by))
    log.info("consent_revocation_recorded", referral_id=view.referral_id)


async def handle_staff_command(command: RecordEngagement | ChangeStatus | UndoLastStep, view: ReferralView,
                               publisher: Publisher, clock: Clock) -> str:
    """Check ``command`` against the referral as the read model has it (``IllegalTransition`` names
    the field and both statuses) and publish its event; returns the event's id."""
    now = clock.now()
    if isinstance(command, UndoLastStep):
        withdrawn = view.undo_last_step(command.engagement_id, command.undone_by, now)
        with correlation_scope():
            await publisher.publish(REFERRALS, view.referral_id, withdrawn)
        log.info("engagement_withdrawn", referral_id=view.referral_id, milestone=withdrawn.milestone.value)
        return command.engagement_id
    if isinstance(command, ChangeStatus):
        event = transition(view.referral_id, view.site_id, ReferralStatus(view.status), command.status, now,
                           command.changed_by, command.reason)
        with correlation_scope():
            await publisher.publish(REFERRALS, view.referral_id, event)
        log.info("referral_status_requested", referral_id=view.referral_id, status=command.status.value)
        return view.referral_id
    occurred = command.occurred_at or now
    check_milestone_order(view.milestones, command.milestone, occurred)
    apply_milestone(view.referral_id, view.site_id, ReferralStatus(view.status), command.milestone, occurred,
                    command.recorded_by, command.reason)
    key = command.idempotency_key or f"{command.milestone.value}/{occurred.isoformat()}/{command.recorded_by}"
    engagement_id = str(uuid.uuid5(ENGAGEMENT_NAMESPACE, f"{view.referral_id}/{key}"))
    with correlation_scope():
        await publisher.publish(REFERRALS, view.referral_id, EngagementRecorded(
            engagement_id=engagement_id, referral_id=view.referral_id, site_id=view.site_id,
            milestone=command.milestone, reason=command.reason, occurred_at=occurred, recorded_at=now,
            recorded_by=command.recorded_by))
    log.info("engagement_recorded", referral_id=view.referral_id, milestone=command.milestone.value)
    return engagement_id


async def disclose_identity(view: ReferralView, viewer_id: str, people: dict, publisher: Publisher, clock: Clock,
                            where: DisclosureChannel) -> ReferredPerson | None:
    """The referred person's name and date of birth, for the case manager who took the referral (and
    only them), within the person's consent; each showing audited as a disclosure. SMS and email
    never carry them: the page says where and how to recognise the person, no more."""
    known = people.get(view.referral_id)
    if known is None or view.acknowledged_by != viewer_id:
        return None
    person, consent = known
    now = clock.now()
    allowed = consent is None or consent.permits(ConsentRole.case_manager.value, now)
    with correlation_scope(current_correlation_id()) as cid:  # a request of its own: its own id, in the record too
        await publisher.publish(AUDIT, view.referral_id, DisclosureAudited(
            audit_id=f"{view.referral_id}/identity/{viewer_id}/{now.isoformat()}",
            record_kind=DisclosedRecord.lead_identity, subject_id=view.referral_id, recipient_id=viewer_id,
            recipient_role=ConsentRole.case_manager.value, channel=where,
            outcome=DeliveryOutcome.delivered if allowed else DeliveryOutcome.skipped, attempt=1, service="api",
            disclosed_at=now, correlation_id=cid))
    return person if allowed else None


class EngagementTracker:
    """The authority on a referral's lifecycle, run on the referral topic's partitions.

    Folds referral and page events into each referral's view; turns milestones and
    acknowledgements into legal ``ReferralStatusChanged`` events (an illegal one is refused, so a
    case-management system's bad record is dead-lettered with the reason); and, on a timer,
    publishes ``ReferralFlagged`` when an intake deadline nears or passes, or contact lapses.
    """

    def __init__(self, reference: ReferenceData, views: KeyValueStore, publisher: Publisher, clock: Clock,
                 warn_before: timedelta = timedelta(days=2), erase: Erase | None = None,
                 retention: timedelta = timedelta(days=365)) -> None:
        self.reference = reference
        self.erase = erase  # destroys a referral's data keys (the worker's subject keys); none in unit tests
        self.retention = retention  # a closed referral's personal values are kept this long after it closed
        # Indexed by when a referral's next flag (or its retention's end) falls due. Each flag is published once per
        # worker's life: a flag is a warning, not a state its owner applies.
        self.views = ScheduledRecords(views, TrackedReferral, self._next_flag_at, self._due, publisher,
                                      follows=reference, retention=Retention(REFERRALS, self._retention_ends_at,
                                                                             self._retention_ended))
        self.publisher = publisher
        self.clock = clock
        self.warn_before = warn_before

    # Every event of a referral's life folds into its view; an engagement and an acknowledgement may move its status.
    REFERRAL_EVENTS: ClassVar[Handlers] = {
        ReferralCreated: "open", EngagementRecorded: "record_engagement", EngagementWithdrawn: "withdraw_engagement",
        ReferralStatusChanged: "fold",
        ReferralFlagged: "fold", ParticipantSeen: None, ReferralLocationUpdated: None,  # the notifier's to act on
        ReferralNoteWritten: None,  # people's to read, in the console
        ConsentRevoked: "revoke_consent", ReferralRetentionEnded: "end_retention"}
    PAGE_EVENTS: ClassVar[Handlers] = {
        PageAcknowledged: "accept_on_acknowledgement",
        **dict.fromkeys((PageRequested, PageSent, PageEscalated, PageExhausted), "fold")}

    async def on_event(self, event) -> None:
        """Any event of a referral or of its pages, to its handler."""
        await dispatch(self, {**self.REFERRAL_EVENTS, **self.PAGE_EVENTS}, event)

    async def open(self, event: ReferralCreated) -> None:
        if event.referral_id not in self.views:
            self.views[event.referral_id] = TrackedReferral(ReferralView.opened(event), current_correlation_id())

    async def revoke_consent(self, event: ConsentRevoked) -> None:
        """What the consent covered goes: the referral's personal values, wherever a copy of them is (its data key
        and its CAD event's are destroyed). Its lifecycle, which names no one, stays."""
        if self.erase is not None:
            self.erase(event.referral_id, ErasureReason.consent_revoked)
        log.info("consent_revoked", referral_id=event.referral_id)

    async def end_retention(self, event: ReferralRetentionEnded) -> None:
        """A closed referral's time is up: its personal values go everywhere (its data keys are destroyed) and intake
        stops tracking it. Its statuses and times stay in the figures, which name no one."""
        if self.views.expire(event.referral_id, event.ended_at) is None:
            return  # already gone, or not ended after all: nothing to erase
        if self.erase is not None:
            self.erase(event.referral_id, ErasureReason.retention_ended)
        log.info("referral_retention_ended", referral_id=event.referral_id)

    def _retention_ends_at(self, record: TrackedReferral) -> datetime | None:
        closed_at = record.view.closed_at
        return None if closed_at is None else closed_at + self.retention

    def _retention_ended(self, referral_id: str, now: datetime) -> ReferralRetentionEnded:
        return ReferralRetentionEnded(referral_id=referral_id, site_id=self.views[referral_id].view.site_id,
                                      ended_at=now)

    async def record_engagement(self, event: EngagementRecorded) -> None:
        record = self.views.get(event.referral_id)
        if record is None:
            raise Rejected("referral_id", "no such referral")
        view = record.view
        check_milestone_order(view.milestones, event.milestone, event.occurred_at)
        await self._fold(record, event, apply_milestone(
            view.referral_id, view.site_id, ReferralStatus(view.status), event.milestone, event.occurred_at,
            event.recorded_by, event.reason).status_change)

    async def withdraw_engagement(self, event: EngagementWithdrawn) -> None:
        """The last step undone: the status it implied goes back to the one before it (a correction, on the
        referral's history with who made it)."""
        record = self.views.get(event.referral_id)
        if record is None:
            raise Rejected("referral_id", "no such referral")
        view = record.view
        step = view.undoable(event.engagement_id)  # refused: dead-lettered with the reason
        current, back_to = ReferralStatus(view.status), ReferralStatus(step.status_before)
        await self._fold(record, event, None if back_to is current else undo_status(
            view.referral_id, view.site_id, current, back_to, event.withdrawn_at, event.withdrawn_by))

    async def accept_on_acknowledgement(self, event: PageAcknowledged) -> None:
        record = self.views.get(event.referral_id)
        if record is None:
            return  # a page event racing its referral: the view is informational only
        view = record.view
        await self._fold(record, event, transition(
            view.referral_id, view.site_id, ReferralStatus.requested, ReferralStatus.accepted, event.acknowledged_at,
            event.acknowledged_by) if view.status == ReferralStatus.requested.value else None)

    async def fold(self, event) -> None:
        record = self.views.get(event.referral_id)
        if record is not None:  # else a page event racing its referral: the view is informational only
            await self._fold(record, event, None)

    async def _fold(self, record: TrackedReferral, event, change: ReferralStatusChanged | None) -> None:
        view = record.view
        view.apply(event)
        if change is not None:
            view.apply(change)
        self.views.put(view.referral_id, record)  # the view as applied (unchanged: nothing written)
        if change is not None:
            await self.publisher.publish(REFERRALS, view.referral_id, change)
            log.info("referral_status_changed", referral_id=view.referral_id, status=change.status.value,
                     previous=change.previous_status.value if change.previous_status else None)

    def _next_flag_at(self, record: TrackedReferral) -> datetime | None:
        view = record.view
        site = self.reference.site(view.site_id)
        return view.next_flag_at(self.warn_before, timedelta(days=site.no_contact_flag_days),
                                 timedelta(days=site.legal_warning_days)) if site else None

    async def publish_due_flags(self) -> int:
        return await self.views.tick(self.clock.now())

    def _due(self, referral_id: str, record: TrackedReferral, now: datetime) -> list[Due]:
        view = record.view
        site = self.reference.site(view.site_id)
        if site is None:
            return []
        return [Due(REFERRALS, flag.value, ReferralFlagged(referral_id=referral_id, site_id=view.site_id, flag=flag,
                                                           flagged_at=now, due_at=_flag_due_at(view, flag)))
                for flag in view.due_flags(now, self.warn_before, timedelta(days=site.no_contact_flag_days),
                                           timedelta(days=site.legal_warning_days))]


def _flag_due_at(view: ReferralView, flag: ReferralFlag) -> datetime | None:
    """The deadline a flag is about (none for lapsed contact)."""
    if flag in (ReferralFlag.legal_deadline_near, ReferralFlag.legal_deadline_passed):
        return view.legal_deadline
    return None if flag is ReferralFlag.no_contact else view.intake_due_at
