"""Wire events: each class is the contract of one Avro schema, the single source of ``schemas/``.

The model is written once, here: its fields, types, limits and docs (the attribute docstrings).
``services.messaging.contract`` generates the Avro schema of each from it, the codec encodes with that,
and ``schemas/*.avsc`` are those schemas written out for other systems (a test keeps them equal and
backward compatible with every committed version). Events are immutable and named in the past tense.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
    model_validator,
)

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


# An instant with its offset; Avro ``timestamp-millis`` on the wire (``avro_type`` tells the generator).
Instant = Annotated[AwareDatetime, WithJsonSchema({"type": "string", "format": "date-time",
                                                   "avro_type": "timestamp-millis"})]
Timestamp = Annotated[Instant, BeforeValidator(_not_a_number)]  # as an outside system sends it: never a number
DateOfBirth = Annotated[date, BeforeValidator(_not_a_number)]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]  # a count or index: Avro ``int``, not ``long``
MAX_AGE_YEARS = 120
CHILD_MAX_AGE_YEARS = 22  # Handle With Care reaches pre-K to grade 12, special education up to 21

E = TypeVar("E", bound=type[Enum])


def wire_enum(*, name: str | None = None, default: str | None = None) -> Callable[[E], E]:
    """An enum's Avro name when it differs from the class's, and the symbol a reader falls back to on
    a symbol it does not know yet (so that adding a symbol never breaks an older consumer)."""

    def decorate(cls: E) -> E:
        def json_schema(_cls: Any, core_schema: Any, handler: Any) -> dict[str, Any]:
            schema = handler(core_schema)
            target = handler.resolve_ref_schema(schema)
            if name:
                target["title"] = name
            if default:
                target["avro_default"] = default
            return schema

        cls.__get_pydantic_json_schema__ = classmethod(json_schema)  # type: ignore[attr-defined]
        return cls

    return decorate


# Every wire event, by Avro name, as its class is defined: the kernel's and each service's own (a service's
# events module registers them when the service is imported; the composition root imports every service).
_REGISTRY: dict[str, type[Event]] = {}


class Event(BaseModel):
    """Base of every wire event: ``avro_schema`` is its file stem in ``schemas/``, ``avro_namespace`` its
    Avro namespace; its Avro name is the class name. Defining one registers it (``all_events``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, use_attribute_docstrings=True)
    avro_schema: ClassVar[str]
    avro_namespace: ClassVar[str]

    @classmethod
    def avro_name(cls) -> str:
        return f"{cls.avro_namespace}.{cls.__name__}"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "avro_schema" in cls.__dict__:  # a concrete event, not a base such as InboundEvent
            known = _REGISTRY.setdefault(cls.avro_name(), cls)
            if known is not cls and known.__qualname__ != cls.__qualname__:
                raise TypeError(f"two events named {cls.avro_name()}")
            _REGISTRY[cls.avro_name()] = cls


def all_events() -> tuple[type[Event], ...]:
    """Every wire event registered so far: the kernel's, and those of the services imported (a worker imports
    its own; the composition root, ``services.runtime``, imports them all)."""
    return tuple(_REGISTRY.values())


class InboundEvent(Event):
    """An event as an outside system sends it (CAD): its text is cleaned on the way in, so every event
    derived from it carries clean text without cleaning it again at every decode."""

    _clean = field_validator("*", mode="before")(clean_text)


class Record(BaseModel):
    """A nested record inside an event."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    _clean = field_validator("*", mode="before")(clean_text)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


# --- shared enums -------------------------------------------------------------------------------

class ReferralType(str, Enum):
    """LEAD referral route (domain brief): booking diverted, no-arrest contact, or community referral."""

    arrest_diversion = "arrest_diversion"
    social_contact = "social_contact"
    community = "community"
    officer_intervention = "officer_intervention"  # charges held in abeyance until a treatment plan is complete
    officer_prevention = "officer_prevention"  # referred, no charges: no legal clock


class ReferralStatus(str, Enum):
    """FHIR SDOH Clinical Care Task status ('-' written as '_')."""

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


@wire_enum(default="other")
class StatusReason(str, Enum):
    """Why a referral or engagement step ended as it did."""

    could_not_contact = "could_not_contact"
    declined_by_client = "declined_by_client"
    declined_by_provider = "declined_by_provider"
    no_capacity = "no_capacity"
    ineligible = "ineligible"
    other = "other"


class Milestone(str, Enum):
    """LEAD milestone on top of the Task status."""

    paged = "paged"
    acknowledged = "acknowledged"
    contacted = "contacted"
    contact_attempted = "contact_attempted"
    intake_scheduled = "intake_scheduled"
    enrolled = "enrolled"
    engaged = "engaged"
    inactive = "inactive"


@wire_enum(default="no_contact")
class ReferralFlag(str, Enum):
    """Why a referral needs attention."""

    intake_deadline_near = "intake_deadline_near"
    intake_deadline_missed = "intake_deadline_missed"
    no_contact = "no_contact"
    legal_deadline_near = "legal_deadline_near"  # officer intervention: the charges' deadline nears
    legal_deadline_passed = "legal_deadline_passed"


class ConsentRole(str, Enum):
    """A kind of recipient."""

    case_manager = "case_manager"
    outreach = "outreach"
    program_manager = "program_manager"
    officer = "officer"
    prosecutor = "prosecutor"  # officer intervention: told of completion or of the deadline passing


class Channel(str, Enum):
    """Delivery channel."""

    sms = "sms"
    email = "email"
    webhook = "webhook"


@wire_enum(name="Channel")  # its first schema named it so; a rename would break old records
class DisclosureChannel(str, Enum):
    """Where a disclosure happened: a delivery channel, or a person reading it in the console or API."""

    sms = "sms"
    email = "email"
    webhook = "webhook"
    console = "console"
    api = "api"


class DeliveryOutcome(str, Enum):
    """Result of one delivery attempt."""

    delivered = "delivered"
    failed = "failed"
    skipped = "skipped"


class AcknowledgedVia(str, Enum):
    """How an acknowledgement arrived."""

    link = "link"
    sms_reply = "sms_reply"
    console = "console"
    api = "api"


class RecipientRole(str, Enum):
    """Which contact received it."""

    primary = "primary"
    backup = "backup"
    coordinator = "coordinator"
    local_authority = "local_authority"


# --- nested records -----------------------------------------------------------------------------

class Officer(Record):
    """The referring officer, for the warm-handoff callback."""

    name: str = Field(min_length=1, max_length=200)
    """Officer's display name."""
    badge_number: str | None = Field(None, max_length=50)
    """Badge or employee number."""
    callback_phone: str = Field(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()\-.]{3,32}$")
    """Number the case manager calls back (E.164 preferred)."""

    _blank = field_validator("name")(_not_blank)


class ReferredPerson(Record):
    """The person referred. Personal data: never logged."""

    first_name: str = Field(min_length=1, max_length=100)
    """Given name."""
    last_name: str = Field(min_length=1, max_length=100)
    """Family name."""
    date_of_birth: DateOfBirth | None = None
    """Date of birth, if known."""
    description: str | None = Field(None, max_length=1000)
    """What helps find the person on scene: clothing, appearance, companions."""

    _blank = field_validator("first_name", "last_name")(_not_blank)


class Location(Record):
    """Where the person is now, for the case manager to find them."""

    description: str = Field(min_length=1, max_length=500)
    """Free text a person can follow: address, cross streets, landmark."""
    latitude: float | None = Field(None, ge=-90, le=90)
    """WGS84 latitude."""
    longitude: float | None = Field(None, ge=-180, le=180)
    """WGS84 longitude."""


class Child(Record):
    """A child named in a Handle With Care notice. Personal data: never logged."""

    first_name: str = Field(min_length=1, max_length=100)
    """Given name."""
    last_name: str = Field(min_length=1, max_length=100)
    """Family name."""
    date_of_birth: DateOfBirth
    """Date of birth."""
    grade: str | None = Field(None, max_length=20)
    """Grade, if known (e.g. 'K', '3', 'pre-K')."""

    _blank = field_validator("first_name", "last_name")(_not_blank)


class Consent(Record):
    """The person's 42 CFR Part 2 consent: which recipients may receive this referral's data, and until when."""

    recipient_roles: list[ConsentRole] = Field(max_length=len(ConsentRole))
    """Who may receive it."""
    signed_at: Timestamp | None = None
    """When the consent was signed."""
    expires_at: Timestamp | None = None
    """When it lapses; none means the program's standard term."""

    def permits(self, role: str, at) -> bool:
        if self.expires_at is not None and at >= self.expires_at:
            return False
        return role in {r.value for r in self.recipient_roles}


class IncidentDetails(Record):
    """What CAD knows of the incident. Never leaves intake: no notice schema has it."""

    # Handle With Care discards all of it; the limits keep one record from being too large to process or dead-letter.

    incident_type: str | None = Field(None, max_length=100)
    """Call type."""
    address: str | None = Field(None, max_length=500)
    """Where it happened."""
    narrative: str | None = Field(None, max_length=4000)
    """Officer's narrative."""
    other_people: list[Annotated[str, Field(max_length=200)]] = Field([], max_length=50)
    """Others involved."""
    officer_name: str | None = Field(None, max_length=200)
    """Responding officer."""


class Header(Record):
    """A Kafka record header."""

    key: str
    """Header name."""
    value: bytes | None
    """Header value."""


_ID = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")


# --- CAD (inbound) ------------------------------------------------------------------------------

class CadReferralMade(InboundEvent):
    """An officer made a LEAD diversion referral, as the CAD system reported it. Keyed by cad_event_id."""

    avro_schema: ClassVar[str] = "cad_referral_made"
    avro_namespace: ClassVar[str] = "org.handoff.cad"
    cad_event_id: str = _ID
    """The CAD system's own event id: the idempotency key for the referral."""
    agency_id: str = _ID
    """The law-enforcement agency that referred."""
    site_id: str = _ID
    """The LEAD site (tenant) the referral is for."""
    referral_type: ReferralType
    """Referral route."""
    occurred_at: Timestamp
    """When the officer made the referral."""
    officer: Officer
    """The referring officer."""
    person: ReferredPerson
    """The person referred."""
    location: Location
    """Where the person is."""
    submitted_by: str | None = Field(None, max_length=128)
    """Dispatch center that sent on the officer's behalf, if any."""
    consent: Consent | None = None
    """The person's consent, if CAD has it; otherwise the site's standard scope applies."""
    charges_held_until: Timestamp | None = None
    """Officer intervention only: the legal deadline by which the treatment plan must be complete."""
    incident_id: str | None = Field(None, min_length=1, max_length=128)
    """CAD incident number: a referral and a child encountered at the same call share it (and so their correlation id,
    and one view of the incident's outcomes)."""

    @model_validator(mode="after")
    def _born_before_the_referral(self) -> CadReferralMade:
        _check_birth(self.person.date_of_birth, self.occurred_at, MAX_AGE_YEARS, "person.date_of_birth", "occurred_at")
        intervention = self.referral_type is ReferralType.officer_intervention
        if intervention and self.charges_held_until is None:
            raise ValueError("charges_held_until: required for an officer_intervention referral (the legal deadline)")
        if not intervention and self.charges_held_until is not None:
            raise ValueError("charges_held_until: only an officer_intervention referral has a legal deadline")
        if self.charges_held_until is not None and self.charges_held_until <= self.occurred_at:
            raise ValueError("charges_held_until: must be after occurred_at")
        return self


class CadChildEncountered(InboundEvent):
    """Law enforcement encountered a child at a call, as the CAD system reported it. One record per child. Keyed by
    cad_event_id.
    """

    avro_schema: ClassVar[str] = "cad_child_encountered"
    avro_namespace: ClassVar[str] = "org.handoff.cad"
    cad_event_id: str = _ID
    """The CAD system's own event id for this child at this incident."""
    agency_id: str = _ID
    """The agency that encountered the child."""
    incident_id: str = Field(min_length=1, max_length=128)
    """CAD incident number; several children may share one."""
    encountered_at: Timestamp
    """When the encounter happened."""
    child: Child
    """The child."""
    school_id: str | None = Field(None, max_length=128)
    """School or day care id from the directory, if the officer knows it."""
    school_name_hint: str | None = Field(None, max_length=200)
    """School name as the officer gave it, when the id is unknown."""
    home_educated: StrictBool = False  # "yes" is not true: it would send the notice away from the named school
    """Home-educated: goes to the local authority contact."""
    incident: IncidentDetails | None = None
    """Incident details CAD sent. Dropped at intake."""

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
    person: ReferredPerson
    """The person referred."""
    location: Location
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
    location_description: str = Field(max_length=500)
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
    location_description: str = Field(max_length=500)
    """Where the person is now, as CAD describes it."""


# --- paging -------------------------------------------------------------------------------------

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
    officer_name: str
    """Officer to call back."""
    officer_callback_phone: str
    """Officer's callback number."""
    location_description: str
    """Where the person is."""
    person_description: str | None = None
    """How to recognise the person."""
    requested_at: Instant
    """When the page opened: the start of the handoff clock."""


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


# --- Handle With Care ---------------------------------------------------------------------------


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


@wire_enum(default="other")
class AccessEvent(str, Enum):
    """What happened at a sign-in door (CJIS 5.4.1.1 event types)."""

    # In the order of the schema's symbols: new kinds go last, before ``other``.
    signed_in = "signed_in"
    sign_in_refused = "sign_in_refused"  # a wrong credential, too many tries, an account the directory does not know
    signed_out = "signed_out"
    session_expired = "session_expired"  # idle too long, or past its lifetime
    access_denied = "access_denied"  # a session whose person the directory no longer has, or that was ended
    other = "other"


class AccessAudited(Event):
    """A sign-in, refused sign-in, sign-out, expired session or denied access, with the CJIS 5.4.1.1 fields: when, which
    component, what event, which user, the outcome. Never a participant's or a child's data. Keyed by user_id (or the
    client's address when no user is known).
    """

    avro_schema: ClassVar[str] = "access_audited"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    audit_id: str
    """Unique per record."""
    event_type: AccessEvent
    """What happened."""
    component: str
    """Where: console, api."""
    user_id: str | None = None
    """Directory id of the person (staff id, contact id), when known."""
    user_kind: str | None = None
    """staff, coordinator or school."""
    success: bool
    """The outcome."""
    reason: str | None = None
    """Why, when it was refused or ended (never the credential)."""
    client_address: str | None = None
    """Where from: the client's address as the API saw it."""
    occurred_at: Instant
    """When."""


class ConsoleSessionEnded(Event):
    """A console session ended before its time (signed out): every API replica refuses its cookie from now on. Keyed by
    session_key.
    """

    avro_schema: ClassVar[str] = "console_session_ended"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    session_key: str
    """SHA-256 of the session's id (the cookie itself is never on a topic)."""
    user_id: str
    """Whose session."""
    reason: str
    """signed_out, or why else it ended."""
    ended_at: Instant
    """When."""
    lasts_until: Instant
    """When the session would have ended anyway: its end is remembered until then."""


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


# --- Quick Response Teams (naloxone plus: follow-up after an overdose) -------------------------------

class Sex(str, Enum):
    """Sex as the responder recorded it (the state's overdose report asks for it)."""

    female = "female"
    male = "male"
    unknown = "unknown"


@wire_enum(default="unknown")
class AddressSource(str, Enum):
    """Where the person's contact address came from: how far the team can trust it (EMS addresses are often stale)."""

    given_by_person = "given_by_person"
    scene = "scene"
    identity_document = "identity_document"
    unknown = "unknown"


class FollowUpKind(str, Enum):
    """Who the team follows up: the person, or (after a fatal overdose, where the site offers it) the family."""

    outreach = "outreach"
    family_support = "family_support"


@wire_enum(default="other")
class AttemptOutcome(str, Enum):
    """One follow-up attempt, as the team logs it in one tap."""

    visited = "visited"
    not_home = "not_home"
    wrong_address = "wrong_address"
    refused = "refused"
    engaged = "engaged"
    referred_to_treatment = "referred_to_treatment"
    other = "other"


@wire_enum(default="unknown")
class DrugType(str, Enum):
    """The drug class the responders suspected (the state's overdose report asks for it)."""

    opioid = "opioid"
    stimulant = "stimulant"
    benzodiazepine = "benzodiazepine"
    alcohol = "alcohol"
    polysubstance = "polysubstance"
    other = "other"
    unknown = "unknown"


AGE_RANGE = Field(pattern=r"^(0-17|18-24|25-34|35-44|45-54|55-64|65\+|unknown)$")


class OverdosePerson(Record):
    """Who overdosed, when the responders know: for the team's visit only, never in the public feed."""

    first_name: str | None = Field(None, max_length=100)
    """Given name."""
    last_name: str | None = Field(None, max_length=100)
    """Family name."""
    date_of_birth: DateOfBirth | None = None
    """Date of birth."""
    contact_address: str | None = Field(None, max_length=300)
    """Where the team may find them."""
    address_source: AddressSource = AddressSource.unknown
    """Where that address came from."""
    phone: str | None = Field(None, max_length=32)
    """A number the team may call."""

    @property
    def display_name(self) -> str | None:
        """The name as the team reads it; None when neither part is known."""
        return " ".join(part for part in (self.first_name, self.last_name) if part) or None


class CadOverdoseResponded(InboundEvent):
    """Responders (police, fire, EMS) answered an overdose, as CAD or the EMS run reported it. Keyed by
    overdose_event_id.
    """

    avro_schema: ClassVar[str] = "cad_overdose_responded"
    avro_namespace: ClassVar[str] = "org.handoff.cad"
    overdose_event_id: str = _ID
    """The CAD call's or EMS run's own id."""
    agency_id: str = _ID
    """The reporting agency."""
    site_id: str = _ID
    """The program site whose team follows it up."""
    occurred_at: Timestamp
    """When the overdose response happened."""
    location_description: str | None = Field(None, max_length=300)
    """Approximate place, as the responder wrote it (never in the public feed)."""
    latitude: float | None = Field(None, ge=-90, le=90)
    """Latitude of the response (rounded before it leaves Handoff)."""
    longitude: float | None = Field(None, ge=-180, le=180)
    """Longitude of the response."""
    fatal: StrictBool
    """The person died."""
    naloxone_given: StrictBool
    """An opioid antagonist was given."""
    naloxone_doses: Int32 = Field(0, ge=0, le=20)
    """How many doses."""
    suspected_substance: str | None = Field(None, max_length=100)
    """Suspected drug, as recorded."""
    drug_type: DrugType | None = None
    """Suspected drug class."""
    age_range: str = AGE_RANGE
    """Approximate age: 0-17, 18-24, 25-34, 35-44, 45-54, 55-64, 65+ or unknown."""
    sex: Sex = Sex.unknown
    """Sex."""
    prior_overdose: bool | None = None
    """A known earlier overdose."""
    person: OverdosePerson | None = None
    """Who, when known."""
    incident_id: str | None = Field(None, min_length=1, max_length=128)
    """CAD incident number, when the call has one: every intake about one incident shares its correlation id."""

    @model_validator(mode="after")
    def _consistent(self) -> CadOverdoseResponded:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude: send both or neither")
        if self.naloxone_doses and not self.naloxone_given:
            raise ValueError("naloxone_doses: must be 0 when naloxone_given is false")
        if self.person is not None and self.person.date_of_birth is not None:
            _check_birth(self.person.date_of_birth, self.occurred_at, MAX_AGE_YEARS, "person.date_of_birth",
                         "occurred_at")
        return self


class OverdoseReported(Event):
    """An overdose response, de-identified for public-health mapping (ODMAP-style) and the state's report: no name,
    date of birth, address or free text; the time to the hour and the place to about a kilometre. Keyed by report_id.
    """

    avro_schema: ClassVar[str] = "overdose_reported"
    avro_namespace: ClassVar[str] = "org.handoff.public"
    report_id: str
    """Opaque id (a keyed hash of the event id): the same overdose always has the same id."""
    site_id: str
    """Site."""
    hour: Instant
    """Start of the hour it happened in."""
    latitude: float | None = None
    """Latitude rounded to two decimals."""
    longitude: float | None = None
    """Longitude rounded to two decimals."""
    fatal: bool
    """The person died."""
    naloxone_given: bool
    """An opioid antagonist was given."""
    naloxone_doses: Int32
    """How many doses."""
    suspected_substance: str | None = None
    """Suspected drug."""
    drug_type: DrugType | None = None
    """Suspected drug class."""
    age_range: str
    """Approximate age."""
    sex: Sex
    """Sex."""
    prior_overdose: bool | None = None
    """A known earlier overdose."""


# --- Self-referral (Angel / PAARI: a person asks the police for help; a volunteer pool is paged) -----

class WalkInMilestone(str, Enum):
    """A walk-in's way to treatment, as the volunteer or the coordinator records it."""

    volunteer_arrived = "volunteer_arrived"
    assessed = "assessed"
    placement_found = "placement_found"
    transported = "transported"
    placed = "placed"
    declined = "declined"


class ExpenseKind(str, Enum):
    """What a volunteer paid up front and claims back."""

    mileage = "mileage"
    meals = "meals"
    other = "other"


class EscalationReason(str, Enum):
    """Why a walk-in's coordinators are told."""

    no_volunteer = "no_volunteer"  # nobody in the pool could be paged (none available, eligible or near)
    unanswered = "unanswered"  # nobody accepted within the site's minutes
    placement_overdue = "placement_overdue"  # not placed within the site's target


class CadWalkInReported(InboundEvent):
    """A person asked the police for help (walked into a station, or asked an officer); no charges. Keyed by
    walk_in_event_id.
    """

    avro_schema: ClassVar[str] = "cad_walk_in_reported"
    avro_namespace: ClassVar[str] = "org.handoff.cad"
    walk_in_event_id: str = _ID
    """The CAD call's or the station log's own id."""
    agency_id: str = _ID
    """The reporting agency."""
    site_id: str = _ID
    """The program site whose volunteers are paged."""
    station_id: str = _ID
    """Where the person waits: one of the site's stations."""
    occurred_at: Timestamp
    """When the person asked for help."""
    first_name: str | None = Field(None, max_length=100)
    """How the volunteer may greet them (shown only to the volunteer who takes it)."""
    incident_id: str | None = Field(None, min_length=1, max_length=128)
    """CAD incident number, when the call has one: every intake about one incident shares its correlation id."""


