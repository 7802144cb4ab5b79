"""Wire events: the in-process (pydantic) form of each Avro schema in ``schemas/``.

The ``.avsc`` file is the contract on the wire; each class here names its schema in
``avro_schema`` and ``tests/unit/test_schemas.py`` proves that every event round-trips through it
and that the two agree field by field. Events are immutable and named in the past tense.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import Enum
from typing import Annotated, ClassVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from services.kernel.schemas import schema_full_name

# Characters that must never reach an SMS, email, webhook or page: C0 and C1 controls (NUL, bell,
# escape sequences) except tab and newline, and the bidirectional overrides, embeddings and isolates
# that make text read other than it is (U+202E). Line and paragraph separators become newlines.
_UNSAFE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean_text(value):
    """Free text as it may be shown to people: unsafe characters removed, line breaks made plain."""
    if not isinstance(value, str):
        return value
    return _UNSAFE_TEXT.sub("", value.replace("\r\n", "\n").replace("\r", "\n")
                            .replace("\u2028", "\n").replace("\u2029", "\n"))


def _not_a_number(value):
    # pydantic's lax mode reads 1700000000 as a time and 0 as 1970-01-01: a CAD system that sends a
    # number sent something else, so it is refused rather than guessed at.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("must be an ISO 8601 string, not a number")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
DateOfBirth = Annotated[date, BeforeValidator(_not_a_number)]
MAX_AGE_YEARS = 120
CHILD_MAX_AGE_YEARS = 22  # Handle With Care reaches pre-K to grade 12, special education up to 21


class Event(BaseModel):
    """Base of every wire event. ``avro_schema`` is the file stem in ``schemas/``."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)
    avro_schema: ClassVar[str]

    @classmethod
    def avro_name(cls) -> str:
        return schema_full_name(cls.avro_schema)


class InboundEvent(Event):
    """An event as an outside system sends it (CAD): its text is cleaned on the way in, so every event
    derived from it carries clean text without cleaning it again at every decode."""

    _clean = field_validator("*", mode="before")(clean_text)


class Record(BaseModel):
    """A nested record inside an event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    _clean = field_validator("*", mode="before")(clean_text)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


# --- shared enums -------------------------------------------------------------------------------

class ReferralType(str, Enum):
    arrest_diversion = "arrest_diversion"
    social_contact = "social_contact"
    community = "community"


class ReferralStatus(str, Enum):
    """FHIR SDOH Clinical Care Task statuses ('-' written as '_')."""

    requested = "requested"
    accepted = "accepted"
    rejected = "rejected"
    in_progress = "in_progress"
    on_hold = "on_hold"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    entered_in_error = "entered_in_error"


# A referral still in the program's hands (FHIR: requested, accepted, in-progress, on-hold); the
# others end it. Caseloads count these, the worklist shows them, paging and flags act on them.
OPEN_STATUSES = frozenset({ReferralStatus.requested, ReferralStatus.accepted, ReferralStatus.in_progress,
                           ReferralStatus.on_hold})


class StatusReason(str, Enum):
    could_not_contact = "could_not_contact"
    declined_by_client = "declined_by_client"
    declined_by_provider = "declined_by_provider"
    no_capacity = "no_capacity"
    ineligible = "ineligible"
    other = "other"


class Milestone(str, Enum):
    paged = "paged"
    acknowledged = "acknowledged"
    contacted = "contacted"
    contact_attempted = "contact_attempted"
    intake_scheduled = "intake_scheduled"
    enrolled = "enrolled"
    engaged = "engaged"
    inactive = "inactive"


class ReferralFlag(str, Enum):
    intake_deadline_near = "intake_deadline_near"
    intake_deadline_missed = "intake_deadline_missed"
    no_contact = "no_contact"


class ConsentRole(str, Enum):
    case_manager = "case_manager"
    outreach = "outreach"
    program_manager = "program_manager"
    officer = "officer"


class Channel(str, Enum):
    sms = "sms"
    email = "email"
    webhook = "webhook"


class DisclosureChannel(str, Enum):
    """Where a disclosure happened: a delivery channel, or a person reading it in the console or API."""

    sms = "sms"
    email = "email"
    webhook = "webhook"
    console = "console"
    api = "api"


class DeliveryOutcome(str, Enum):
    delivered = "delivered"
    failed = "failed"
    skipped = "skipped"


class AcknowledgedVia(str, Enum):
    link = "link"
    sms_reply = "sms_reply"
    console = "console"
    api = "api"


class RecipientRole(str, Enum):
    primary = "primary"
    backup = "backup"
    coordinator = "coordinator"
    local_authority = "local_authority"


# --- nested records -----------------------------------------------------------------------------

class Officer(Record):
    name: str = Field(min_length=1, max_length=200)
    badge_number: str | None = Field(None, max_length=50)
    callback_phone: str = Field(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()\-.]{3,32}$")

    _blank = field_validator("name")(_not_blank)


class ReferredPerson(Record):
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    date_of_birth: DateOfBirth | None = None
    description: str | None = Field(None, max_length=1000)

    _blank = field_validator("first_name", "last_name")(_not_blank)


class Location(Record):
    description: str = Field(min_length=1, max_length=500)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)


class Child(Record):
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    date_of_birth: DateOfBirth
    grade: str | None = Field(None, max_length=20)

    _blank = field_validator("first_name", "last_name")(_not_blank)


class Consent(Record):
    """42 CFR Part 2: which recipients may receive the referral's data, and until when."""

    recipient_roles: list[ConsentRole] = Field(max_length=len(ConsentRole))
    signed_at: Timestamp | None = None
    expires_at: Timestamp | None = None

    def permits(self, role: str, at) -> bool:
        if self.expires_at is not None and at >= self.expires_at:
            return False
        return role in {r.value for r in self.recipient_roles}


class IncidentDetails(Record):
    """What CAD says happened. Handle With Care discards all of it; the limits keep one record from
    being too large to process or dead-letter."""

    incident_type: str | None = Field(None, max_length=100)
    address: str | None = Field(None, max_length=500)
    narrative: str | None = Field(None, max_length=4000)
    other_people: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=50)
    officer_name: str | None = Field(None, max_length=200)


class Header(Record):
    key: str
    value: bytes | None


_ID = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")


# --- CAD (inbound) ------------------------------------------------------------------------------

class CadReferralMade(InboundEvent):
    avro_schema: ClassVar[str] = "cad_referral_made"
    cad_event_id: str = _ID
    agency_id: str = _ID
    site_id: str = _ID
    referral_type: ReferralType
    occurred_at: Timestamp
    officer: Officer
    person: ReferredPerson
    location: Location
    submitted_by: str | None = Field(None, max_length=128)
    consent: Consent | None = None

    @model_validator(mode="after")
    def _born_before_the_referral(self) -> CadReferralMade:
        _check_birth(self.person.date_of_birth, self.occurred_at, MAX_AGE_YEARS, "person.date_of_birth", "occurred_at")
        return self


class CadChildEncountered(InboundEvent):
    avro_schema: ClassVar[str] = "cad_child_encountered"
    cad_event_id: str = _ID
    agency_id: str = _ID
    incident_id: str = Field(min_length=1, max_length=128)
    encountered_at: Timestamp
    child: Child
    school_id: str | None = Field(None, max_length=128)
    school_name_hint: str | None = Field(None, max_length=200)
    home_educated: StrictBool = False  # "yes" is not true: it would send the notice away from the named school
    incident: IncidentDetails | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_fields(cls, data):
        # A CAD system's extra fields are incident data Handle With Care discards anyway: a child's
        # notice must not wait on a 422 for them (``unknown_fields`` names them for the answer).
        return _known_only(data, cls, "", []) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _consistent(self) -> CadChildEncountered:
        if self.home_educated and self.school_id:
            raise ValueError("home_educated: must not be true when school_id is given (a home-educated child's "
                             "notice goes to the local authority): send school_id or home_educated, not both")
        _check_birth(self.child.date_of_birth, self.encountered_at, CHILD_MAX_AGE_YEARS, "child.date_of_birth",
                     "encountered_at")
        return self


def unknown_fields(model: type[BaseModel], data) -> list[str]:
    """The dotted names of the fields in ``data`` that ``model`` does not know."""
    ignored: list[str] = []
    if isinstance(data, dict):
        _known_only(data, model, "", ignored)
    return ignored


def _known_only(data: dict, model: type[BaseModel], path: str, ignored: list[str]) -> dict:
    known = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            ignored.append(f"{path}{key}")
            continue
        nested = next((t for t in (field.annotation, *getattr(field.annotation, "__args__", ()))
                       if isinstance(t, type) and issubclass(t, Record)), None)
        known[key] = _known_only(value, nested, f"{path}{key}.", ignored) if nested and isinstance(value, dict) else value
    return known


def age_on(born: date, at: date) -> int:
    """Whole years of age on ``at``."""
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


def _check_birth(born: date | None, at: datetime, max_years: int, field: str, event_field: str) -> None:
    """A date of birth on or before the event, and at most ``max_years`` before it."""
    if born is None:
        return
    if born > at.date():
        raise ValueError(f"{field}: must not be after {event_field}")
    if age_on(born, at.date()) >= max_years:
        raise ValueError(f"{field}: more than {max_years} years before {event_field}")


# --- LEAD ---------------------------------------------------------------------------------------

class ReferralCreated(Event):
    avro_schema: ClassVar[str] = "referral_created"
    referral_id: str
    cad_event_id: str
    agency_id: str
    site_id: str
    referral_type: ReferralType
    referred_at: AwareDatetime
    created_at: AwareDatetime
    intake_due_at: AwareDatetime
    officer: Officer
    person: ReferredPerson
    location: Location
    consent: Consent | None = None
    cad_fingerprint: str | None = None  # SHA-256 of the CAD event: a reused cad_event_id with another body is refused


class ReferralStatusChanged(Event):
    avro_schema: ClassVar[str] = "referral_status_changed"
    referral_id: str
    site_id: str
    status: ReferralStatus
    previous_status: ReferralStatus | None = None
    reason: StatusReason | None = None
    changed_at: AwareDatetime
    changed_by: str | None = None


class EngagementRecorded(Event):
    avro_schema: ClassVar[str] = "engagement_recorded"
    engagement_id: str
    referral_id: str
    site_id: str
    milestone: Milestone
    reason: StatusReason | None = None
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    recorded_by: str


class ReferralFlagged(Event):
    avro_schema: ClassVar[str] = "referral_flagged"
    referral_id: str
    site_id: str
    flag: ReferralFlag
    flagged_at: AwareDatetime
    due_at: AwareDatetime | None = None


# --- paging -------------------------------------------------------------------------------------

class PageRequested(Event):
    avro_schema: ClassVar[str] = "page_requested"
    page_id: str
    dedup_key: str = Field(min_length=1)
    referral_id: str
    site_id: str
    referral_type: ReferralType
    officer_name: str
    officer_callback_phone: str
    location_description: str
    person_description: str | None = None
    requested_at: AwareDatetime


class PageSent(Event):
    avro_schema: ClassVar[str] = "page_sent"
    page_id: str
    referral_id: str = ""
    attempt_id: str
    step_index: int
    loop: int
    target_id: str
    channel: Channel
    outcome: DeliveryOutcome
    attempt: int
    error: str | None = None
    final: bool = True  # the delivery is settled: delivered, refused, or failed for good
    sent_at: AwareDatetime


class PageAcknowledged(Event):
    avro_schema: ClassVar[str] = "page_acknowledged"
    page_id: str
    referral_id: str
    acknowledged_by: str
    via: AcknowledgedVia
    acknowledged_at: AwareDatetime


class PageEscalated(Event):
    avro_schema: ClassVar[str] = "page_escalated"
    page_id: str
    referral_id: str
    from_step: int
    to_step: int
    loop: int
    escalated_at: AwareDatetime
    exhausted: bool = False


class PageExhausted(Event):
    """Every escalation step and loop went unacknowledged: the warm handoff was missed."""

    avro_schema: ClassVar[str] = "page_exhausted"
    page_id: str
    referral_id: str
    site_id: str
    steps: int
    loops: int
    opened_at: AwareDatetime
    exhausted_at: AwareDatetime


# --- Handle With Care ---------------------------------------------------------------------------

class HwcNoticeRequested(Event):
    avro_schema: ClassVar[str] = "hwc_notice_requested"
    notice_id: str
    child: Child
    school_id: str
    due_at: AwareDatetime
    requested_at: AwareDatetime
    sending_agency: str | None = None


class HwcNoticeDelivered(Event):
    avro_schema: ClassVar[str] = "hwc_notice_delivered"
    notice_id: str
    attempt_id: str
    recipient_role: RecipientRole
    contact_id: str
    channel: Channel
    outcome: DeliveryOutcome
    attempt: int
    error: str | None = None
    final: bool = True  # the delivery is settled: delivered, refused, or failed for good
    delivered_at: AwareDatetime


class HwcNoticeAcknowledged(Event):
    avro_schema: ClassVar[str] = "hwc_notice_acknowledged"
    notice_id: str
    contact_id: str
    via: AcknowledgedVia
    acknowledged_at: AwareDatetime


class HwcNoticeEscalated(Event):
    avro_schema: ClassVar[str] = "hwc_notice_escalated"
    notice_id: str
    to_role: RecipientRole
    escalated_at: AwareDatetime
    overdue: bool = False


class HwcNoticeExpired(Event):
    """The notice's retention ended: everything that holds the child's data about it is deleted."""

    avro_schema: ClassVar[str] = "hwc_notice_expired"
    notice_id: str
    expired_at: AwareDatetime


class HwcTriageOpened(Event):
    avro_schema: ClassVar[str] = "hwc_triage_opened"
    cad_event_id: str
    agency_id: str
    district_id: str | None = None
    child: Child
    school_name_hint: str | None = None
    encountered_at: AwareDatetime
    opened_at: AwareDatetime
    school_id_given: str | None = None  # what the officer typed, when no school has that id
    due_at: AwareDatetime | None = None  # the earliest deadline among the district's schools


class HwcTriageStillUnplaced(Event):
    avro_schema: ClassVar[str] = "hwc_triage_still_unplaced"
    cad_event_id: str
    due_at: AwareDatetime
    reminded_at: AwareDatetime


class HwcTriageAlerted(Event):
    avro_schema: ClassVar[str] = "hwc_triage_alerted"
    cad_event_id: str
    attempt_id: str
    contact_id: str
    channel: Channel
    outcome: DeliveryOutcome
    attempt: int
    error: str | None = None
    final: bool = True
    alerted_at: AwareDatetime


class HwcTriageResolved(Event):
    avro_schema: ClassVar[str] = "hwc_triage_resolved"
    cad_event_id: str
    school_id: str
    resolved_by: str
    resolved_at: AwareDatetime


# --- operations ---------------------------------------------------------------------------------

class DisclosedRecord(str, Enum):
    lead_page = "lead_page"
    lead_officer_confirmation = "lead_officer_confirmation"
    lead_deadline_warning = "lead_deadline_warning"
    lead_handoff_missed = "lead_handoff_missed"
    lead_identity = "lead_identity"  # the person's name and date of birth, shown to their case manager
    hwc_notice = "hwc_notice"
    hwc_triage_alert = "hwc_triage_alert"  # a coordinator told that a child needs placing (no child named)
    other = "other"


class DisclosureAudited(Event):
    avro_schema: ClassVar[str] = "disclosure_audited"
    audit_id: str
    record_kind: DisclosedRecord
    subject_id: str
    recipient_id: str
    recipient_role: str
    channel: DisclosureChannel
    outcome: DeliveryOutcome
    attempt: int
    service: str
    disclosed_at: AwareDatetime
    correlation_id: str | None = None


class ReferenceDataPublished(Event):
    avro_schema: ClassVar[str] = "reference_data_published"
    section: str
    key: str
    body: str | None = None
    published_at: AwareDatetime


class DeadLetterRecorded(Event):
    avro_schema: ClassVar[str] = "dead_letter_recorded"
    original_topic: str
    partition: int
    offset: int
    original_key: bytes | None = None
    original_value: bytes | None
    original_headers: list[Header] = Field(default_factory=list)
    error_type: str
    error: str
    service: str
    correlation_id: str | None = None
    failed_at: AwareDatetime
    original_truncated: bool = False  # a reduced letter: original_value is only a prefix (see DeadLetterSink)
    original_size: int | None = None
    original_sha256: str | None = None


ALL_EVENTS: tuple[type[Event], ...] = (
    CadReferralMade, CadChildEncountered, ReferralCreated, ReferralStatusChanged, EngagementRecorded, ReferralFlagged,
    PageRequested, PageSent, PageAcknowledged, PageEscalated, PageExhausted,
    HwcNoticeRequested, HwcNoticeDelivered, HwcNoticeAcknowledged, HwcNoticeEscalated, HwcNoticeExpired, HwcTriageOpened,
    HwcTriageResolved, HwcTriageStillUnplaced, HwcTriageAlerted, ReferenceDataPublished, DisclosureAudited, DeadLetterRecorded,
)
