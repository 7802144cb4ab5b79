"""The runtime's own records, which every service writes through it: each disclosure audited, each
dead letter, and reference data as an operator published it (the ``handoff.ops`` topics)."""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

from services.kernel.events import (
    DeliveryOutcome,
    DisclosureChannel,
    Event,
    Header,
    Instant,
    Int32,
    wire_enum,
)


@wire_enum(default="other")
class DisclosedRecord(str, Enum):
    """Kind of record disclosed."""

    # In the order of the schema's symbols: new kinds go last, before ``other``.
    lead_page = "lead_page"
    lead_officer_confirmation = "lead_officer_confirmation"
    lead_deadline_warning = "lead_deadline_warning"
    hwc_notice = "hwc_notice"
    hwc_triage_alert = "hwc_triage_alert"  # a coordinator told that a child needs placing (no child named)
    lead_handoff_missed = "lead_handoff_missed"
    lead_identity = "lead_identity"  # the person's name and date of birth, shown to their case manager
    qrt_follow_up_due = "qrt_follow_up_due"  # a team lead told a follow-up's window is closing (task id only)
    qrt_follow_up_list = "qrt_follow_up_list"  # the team's list (who to visit and where) read by a team member
    lead_reengagement = "lead_reengagement"  # a case manager told where and when police met their inactive participant
    lead_prosecutor_notice = "lead_prosecutor_notice"  # officer intervention: plan completed, or the deadline passed
    walk_in_page = "walk_in_page"  # a volunteer paged for a walk-in (station and time only)
    walk_in_alert = "walk_in_alert"  # a coordinator told a walk-in is unanswered or not placed in time (ids only)
    walk_in_details = "walk_in_details"  # the person's first name, shown to the volunteer who took the walk-in
    lead_fhir_task = "lead_fhir_task"  # a referral read as a FHIR Task or ServiceRequest by a case-management organisation
    lead_fhir_notification = "lead_fhir_notification"  # an id-only Task notification to an organisation's endpoint
    cad_feed_alert = "cad_feed_alert"  # program staff told an agency's CAD feed went silent, or came back (no one named)
    lead_location_update = "lead_location_update"  # a case manager told where their referred person is now
    qrt_state_report = "qrt_state_report"  # the state's 24-hour overdose report fields, read by program staff
    other = "other"


class DisclosureAudited(Event):
    """Something was disclosed (or an attempt was made): what kind of record, to whom, when, by which channel, with what
    outcome. Never the personal data itself. Keyed by subject_id.
    """

    avro_schema: ClassVar[str] = "disclosure_audited"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    audit_id: str
    """Unique per attempt: the delivery's attempt id and try number."""
    record_kind: DisclosedRecord
    """What kind of record."""
    subject_id: str
    """The referral or notice id (never a name)."""
    recipient_id: str
    """Directory id of the recipient (case manager, contact, 'officer')."""
    recipient_role: str
    """e.g. case_manager, program_manager, primary, backup, coordinator, officer."""
    channel: DisclosureChannel
    """Channel used; console or api when a person read it on screen."""
    outcome: DeliveryOutcome
    """Result of the attempt."""
    attempt: Int32
    """Try number (1-based)."""
    service: str
    """Service that disclosed."""
    disclosed_at: Instant
    """When."""
    correlation_id: str | None = None
    """Correlation id of the originating CAD event."""


class ReferenceDataPublished(Event):
    """One reference-data entry (an agency, site, case manager, district, school, calendar or closure) as an operator
    published it. Keyed by section/key on a compacted topic: the latest record per key is the entry.
    """

    avro_schema: ClassVar[str] = "reference_data_published"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    section: str
    """agencies, sites, case_managers, districts, schools, calendars or closures."""
    key: str
    """The entry's id within its section (a calendar's file name; a closure's school/date)."""
    body: str | None = None
    """The entry as JSON (a calendar: its RFC 5545 text); null when the entry was removed."""
    published_at: Instant
    """When it was published."""


class DeadLetterRecorded(Event):
    """A record could not be processed. Holds the original bytes so it can be inspected and re-submitted, or, when they
    cannot be written (too large, or the write keeps failing), their size, hash and a prefix: the original is then
    fetched from its topic by offset. Keyed by the original key.
    """

    avro_schema: ClassVar[str] = "dead_letter_recorded"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    original_topic: str
    """Topic the record came from."""
    partition: Int32
    """Its partition."""
    offset: int
    """Its offset."""
    original_key: bytes | None = None
    """Its key, as received."""
    original_value: bytes | None
    """Its value, as received; only its first bytes when original_truncated."""
    original_headers: list[Header] = []
    """Its headers, as received."""
    error_type: str
    """Class of failure: decode, validation, rejected or processing."""
    error: str
    """Why it failed: names fields and reasons, never the values."""
    service: str
    """Service that failed to process it."""
    correlation_id: str | None = None
    """Correlation id, if the record had one."""
    failed_at: Instant
    """When it was dead-lettered."""
    original_truncated: bool = False  # a reduced letter: original_value is only a prefix (see DeadLetterSink)
    """True when original_value holds only a prefix (or nothing) of the original: a reduced dead letter."""
    original_size: int | None = None
    """Size of the original value in bytes."""
    original_sha256: str | None = None
    """SHA-256 (hex) of the original value, to check a copy fetched by offset."""
    sealed_under: str | None = None
    """The id of the letter's own data key when original_value is sealed under it (AES-256-GCM; the key is on the
    dead-letter key topic, which is kept no longer than the letters). None: original_value is as received."""


# --- Quick Response Teams (naloxone plus: follow-up after an overdose) -------------------------------


@wire_enum(default="other")
class ErasureReason(str, Enum):
    """Why a subject's data key was destroyed."""

    retention_ended = "retention_ended"  # the subject's data reached the end of its retention
    consent_revoked = "consent_revoked"  # the person revoked the consent that covered it
    erasure_requested = "erasure_requested"  # an administrator's erasure request (handoff erase)
    other = "other"


class SubjectKeyIssued(Event):
    """A subject's data key, wrapped by a key-encryption key: what every worker reads to open that subject's personal
    values. Keyed by subject_id on a compacted topic; a later record for the subject (re-wrapped, or destroyed) replaces
    it. Never the key in the clear."""

    avro_schema: ClassVar[str] = "subject_key_issued"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    subject_id: str
    """The subject's id (a referral, child notice or walk-in id), never a name."""
    key_id: str
    """The data key's id: random, and in every value sealed under it."""
    covers: str
    """What the key seals: the kind of subject (lead_referral, hwc_child, qrt_follow_up, walk_in, dead_letter)."""
    kek_id: str
    """The key-encryption key that wraps it."""
    wrapped_key: bytes
    """The data key, sealed under that key-encryption key (AES-256-GCM, bound to key_id)."""
    issued_at: Instant
    """When the data key was made (re-wrapping keeps it)."""
    part_of: str | None = None
    """The subject whose record was being handled when this one's key was made (the CAD event a referral or a
    child's notice came from): an erasure of either reaches the other, so no copy of the person stays readable."""


class SubjectKeyDestroyed(Event):
    """A subject's data key was destroyed: every value sealed under it, on every topic, changelog, dead letter and
    backup, reads as erased from now on. It replaces the wrapped key on the compacted key topic, and never goes back."""

    avro_schema: ClassVar[str] = "subject_key_destroyed"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    subject_id: str
    """The subject's id, never a name."""
    key_id: str
    """The destroyed data key's id."""
    covers: str
    """What the key sealed."""
    reason: ErasureReason
    """Why."""
    destroyed_at: Instant
    """When."""


class ErasureReceipted(Event):
    """The receipt of one erasure, for counsel: who asked, when, why, which key and what it covered. No personal data:
    the subject is named by its id. Written to the audit topic, kept as long as the audit trail."""

    avro_schema: ClassVar[str] = "erasure_receipted"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    receipt_id: str
    """The receipt's id (handoff erasure show ID)."""
    subject_id: str
    """The subject's id, never a name."""
    key_id: str
    """The destroyed data key's id."""
    covers: str
    """What the key sealed."""
    reason: ErasureReason
    """Why."""
    requested_by: str
    """A staff member's id, or the service whose retention timer ended it."""
    note: str = ""
    """The request's grounds as its requester wrote them (a ticket or court order number), without personal data."""
    erased_at: Instant
    """When the key was destroyed."""
