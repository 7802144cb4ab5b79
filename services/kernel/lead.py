"""The LEAD referral and its pages: intake writes the referral's events and the notifier folds them; the
notifier writes the pages and intake folds them into the referral's view. Shared by the two, so the kernel's."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from services.kernel.events import (
    PERSONAL,
    AcknowledgedVia,
    Channel,
    Consent,
    DeliveryOutcome,
    Event,
    Instant,
    Int32,
    Location,
    Milestone,
    Officer,
    ReferralFlag,
    ReferralStatus,
    ReferralType,
    ReferredPerson,
    StatusReason,
)

OFFICER_TARGET = "officer"  # the referring officer, as a page's target (their callback number): not a staff id


class ReferralCreated(Event):
    """Intake accepted a CAD referral and opened a referral (FHIR Task status 'requested'). Keyed by referral_id."""

    avro_schema: ClassVar[str] = "referral_created"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    referral_id: str
    """Handoff's referral id, derived from site, agency and CAD event id."""
    cad_event_id: str
    """The CAD event it came from."""
    agency_id: str
    """Referring agency."""
    site_id: str
    """LEAD site (tenant)."""
    referral_type: ReferralType
    """Referral route."""
    referred_at: Instant
    """When the officer made the referral."""
    created_at: Instant
    """When intake opened the referral."""
    intake_due_at: Instant
    """Deadline for intake/assessment under the site's rule."""
    officer: Officer
    """The referring officer."""
    person: Annotated[ReferredPerson, PERSONAL]
    """The person referred."""
    location: Annotated[Location, PERSONAL]
    """Where the person is."""
    consent: Consent | None = None
    """The consent scope in force for this referral (CAD's, or the site's standard one)."""
    cad_fingerprint: str | None = None  # SHA-256 of the CAD event: a reused cad_event_id with another body is refused
    """SHA-256 of the CAD event it was opened from: the same cad_event_id with a different body is refused, not taken for a
    retry.
    """
    legal_deadline: Instant | None = None
    """Officer intervention: when the charges held in abeyance fall due unless the treatment plan is complete."""
    incident_id: str | None = None
    """The CAD incident it came from, when CAD named it (with agency_id: one view of the incident's outcomes)."""
    late: bool = False
    """True when it reached intake past the site's warm-handoff window after the officer met the person: nobody is
    paged (the person is long gone from where the officer was); it goes to the outreach worklist as a late referral,
    and the officer is told so."""


class ReferralStatusChanged(Event):
    """A referral moved from one lifecycle status to another. Keyed by referral_id."""

    avro_schema: ClassVar[str] = "referral_status_changed"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    referral_id: str
    """The referral."""
    site_id: str
    """LEAD site (tenant)."""
    status: ReferralStatus
    """The new status."""
    previous_status: ReferralStatus | None = None
    """The status before, if any."""
    reason: StatusReason | None = None
    """Why, where the status needs a reason."""
    changed_at: Instant
    """When the change happened."""
    changed_by: str | None = None
    """Who made the change: a case manager id or a service name."""


class EngagementRecorded(Event):
    """A case manager (or a case-management system) recorded a step in a referral's engagement. Keyed by referral_id."""

    avro_schema: ClassVar[str] = "engagement_recorded"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    engagement_id: str
    """Idempotency key for this record."""
    referral_id: str
    """The referral."""
    site_id: str
    """LEAD site (tenant)."""
    milestone: Milestone
    """What happened."""
    reason: StatusReason | None = None
    """Reason, e.g. for inactive or a failed contact."""
    occurred_at: Instant
    """When it happened."""
    recorded_at: Instant
    """When it was recorded."""
    recorded_by: str
    """Case manager or system id."""


class EngagementWithdrawn(Event):
    """A case manager undid the last step recorded on a referral (a wrong tap): the referral is back where the
    step found it, and the step stays in its history as undone, with who undid it and when. Keyed by referral_id."""

    avro_schema: ClassVar[str] = "engagement_withdrawn"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    engagement_id: str
    """The step undone (its EngagementRecorded)."""
    referral_id: str
    """The referral."""
    site_id: str
    """LEAD site (tenant)."""
    milestone: Milestone
    """What the undone step had recorded."""
    withdrawn_at: Instant
    """When it was undone."""
    withdrawn_by: str
    """Who undid it: a case manager id."""


NOTE_MAX_LENGTH = 2000  # characters in a referral's note: a page of text, no documents


class ReferralNoteWritten(Event):
    """A case manager or outreach worker wrote a note on a referral (what the person said, where to find them
    next). Personal: sealed under the referral's data key and erased with it; shown only to its author and to the
    case manager who took the referral. Keyed by referral_id."""

    avro_schema: ClassVar[str] = "referral_note_written"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    note_id: str
    """Idempotency key: the same note sent twice is one note."""
    referral_id: str
    """The referral."""
    site_id: str
    """LEAD site (tenant)."""
    text: Annotated[str, PERSONAL] = Field(min_length=1, max_length=NOTE_MAX_LENGTH)
    """The note, as written."""
    written_at: Instant
    """When it was written."""
    written_by: str
    """Who wrote it: a staff id."""


class ReferralFlagged(Event):
    """A referral needs attention: its intake deadline is near or missed, or nobody has contacted the person for too long.
    Keyed by referral_id.
    """

    avro_schema: ClassVar[str] = "referral_flagged"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    referral_id: str
    """The referral."""
    site_id: str
    """LEAD site (tenant)."""
    flag: ReferralFlag
    """What needs attention."""
    flagged_at: Instant
    """When it was flagged."""
    due_at: Instant | None = None
    """The intake deadline, for deadline flags."""


class ParticipantSeen(Event):
    """Police met someone who matches an inactive participant of the site (same normalized name and date of birth): a
    chance for their case manager to re-engage them. Nothing of it goes back to the police side. Keyed by the
    participant's referral_id.
    """

    avro_schema: ClassVar[str] = "participant_seen"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    referral_id: str
    """The inactive participant's referral."""
    site_id: str
    """LEAD site (tenant)."""
    cad_event_id: str
    """The CAD event that named them."""
    seen_at: Instant
    """When police met them."""
    location_description: Annotated[str, PERSONAL] = Field(max_length=500)
    """Where, as the officer described it: where outreach may find them."""


class ReferralLocationUpdated(Event):
    """CAD updated an open referral's call with a new place (the person moved): the case manager who took it
    hears where, to find them. Keyed by referral_id."""

    avro_schema: ClassVar[str] = "referral_location_updated"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    referral_id: str
    """The referral."""
    site_id: str
    """LEAD site (tenant)."""
    cad_event_id: str
    """The CAD event that was updated."""
    updated_at: Instant
    """When CAD updated it."""
    location_description: Annotated[str, PERSONAL] = Field(max_length=500)
    """Where the person is now, as CAD describes it."""




class ConsentRevoked(Event):
    """The person revoked their 42 CFR Part 2 consent: nothing of them is disclosed from now on, and what the
    consent covered (the referral's personal values, on every topic, table and backup) is erased by destroying
    their data keys. The referral itself (its status and times, no personal data) still counts in the figures.
    Keyed by referral_id."""

    avro_schema: ClassVar[str] = "consent_revoked"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    referral_id: str
    """The referral."""
    site_id: str
    """LEAD site (tenant)."""
    revoked_at: Instant
    """When the revocation was recorded."""
    recorded_by: str
    """The case manager who recorded it (an id)."""


class ReferralRetentionEnded(Event):
    """A closed referral's retention ended (participant_data_retention_days after it closed): the person's values
    are erased everywhere by destroying their data keys, and intake stops tracking it. Its statuses and times,
    which name no one, still count in the figures. Keyed by referral_id."""

    avro_schema: ClassVar[str] = "referral_retention_ended"
    avro_namespace: ClassVar[str] = "org.handoff.lead"
    referral_id: str
    """The referral."""
    site_id: str
    """LEAD site (tenant)."""
    ended_at: Instant
    """When its retention ended."""


class PageRequested(Event):
    """A page was opened for a warm handoff. Carries only what the case manager needs to find the person. Keyed by
    referral_id (the dedup key), co-partitioned with the referral topic.
    """

    avro_schema: ClassVar[str] = "page_requested"
    avro_namespace: ClassVar[str] = "org.handoff.paging"
    page_id: str
    """Page id."""
    dedup_key: str = Field(min_length=1)
    """A repeat trigger with the same key joins this page (never blank)."""
    referral_id: str
    """The referral paged for."""
    site_id: str
    """LEAD site (tenant)."""
    referral_type: ReferralType
    """Referral route."""
    officer_name: Annotated[str, PERSONAL]
    """Officer to call back."""
    officer_callback_phone: Annotated[str, PERSONAL]
    """Officer's callback number."""
    location_description: Annotated[str, PERSONAL]
    """Where the person is."""
    person_description: Annotated[str | None, PERSONAL] = None
    """How to recognise the person."""
    requested_at: Instant
    """When the page opened: the start of the handoff clock."""
    met_at: Instant | None = None
    """When the officer met the person (the CAD event): what the page tells the case manager, in plain words."""


class PageSent(Event):
    """One delivery attempt of a page (or of a deadline warning) to one person on one channel. Keyed by referral_id (the
    dedup key), co-partitioned with the referral topic.
    """

    avro_schema: ClassVar[str] = "page_sent"
    avro_namespace: ClassVar[str] = "org.handoff.paging"
    page_id: str
    """Page id (for a deadline warning: the page of that referral)."""
    referral_id: str = ""
    """The referral (the topic key); empty only in records written before this field existed."""
    attempt_id: str
    """Idempotency key of this delivery (page, step, loop, target, channel)."""
    step_index: Int32
    """Escalation step (0-based); -1 for an intake-deadline warning outside the escalation."""
    loop: Int32
    """Escalation loop (0-based)."""
    target_id: str
    """Case manager (or coordinator) paged."""
    channel: Channel
    """Channel used."""
    outcome: DeliveryOutcome
    """Result."""
    attempt: Int32
    """Try number within this delivery (1-based)."""
    error: str | None = None
    """Error, when failed (no personal data)."""
    final: bool = True  # the delivery is settled: delivered, refused, or failed for good
    """True on the last attempt of this delivery (delivered, refused, or failed for good): the delivery is settled. Records
    written before this field existed were always settled by the sender, hence the default.
    """
    sent_at: Instant
    """When the attempt finished."""


class PageAcknowledged(Event):
    """A case manager acknowledged a page; escalation stops. Keyed by referral_id (the dedup key), co-partitioned with the
    referral topic.
    """

    avro_schema: ClassVar[str] = "page_acknowledged"
    avro_namespace: ClassVar[str] = "org.handoff.paging"
    page_id: str
    """Page id."""
    referral_id: str
    """The referral."""
    acknowledged_by: str
    """Case manager id."""
    via: AcknowledgedVia
    """How."""
    acknowledged_at: Instant
    """When."""


class PageEscalated(Event):
    """An unacknowledged page moved to the next escalation step, or ran out of steps. Keyed by referral_id."""

    avro_schema: ClassVar[str] = "page_escalated"
    avro_namespace: ClassVar[str] = "org.handoff.paging"
    page_id: str
    """Page id."""
    referral_id: str
    """The referral."""
    from_step: Int32
    """Step it left."""
    to_step: Int32
    """Step it moved to."""
    loop: Int32
    """Loop of the step it moved to."""
    escalated_at: Instant
    """When."""
    exhausted: bool = False
    """True when every step and loop passed unacknowledged: the page is closed and reported to the program managers."""


class PageExhausted(Event):
    """Nobody acknowledged a page through every escalation step and loop: the warm handoff was missed. The site's fallback (program managers, outreach) and the officer are told, and the referral goes to the top of the outreach worklist flagged handoff_missed. Keyed by referral_id."""

    avro_schema: ClassVar[str] = "page_exhausted"
    avro_namespace: ClassVar[str] = "org.handoff.paging"
    page_id: str
    """Page id."""
    referral_id: str
    """The referral."""
    site_id: str
    """The LEAD site."""
    steps: Int32
    """Escalation steps in the site's policy."""
    loops: Int32
    """Times the policy ran through its steps."""
    opened_at: Instant
    """When the page was opened."""
    exhausted_at: Instant
    """When the last step ran out."""
