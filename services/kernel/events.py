"""Wire events: each class is the contract of one Avro schema, the single source of ``schemas/``.

The model is written once, here: its fields, types, limits and docs (the attribute docstrings).
``services.messaging.contract`` generates the Avro schema of each from it, the codec encodes with that,
and ``schemas/*.avsc`` are those schemas written out for other systems (a test keeps them equal and
backward compatible with every committed version). Events are immutable and named in the past tense.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from enum import Enum
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import core_schema

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


# A personal value: a field that names, dates, locates, reaches or describes a person (a participant, a
# child, a walk-in, an officer). Marked once, here on the model, as ``Annotated[T, PERSONAL]``: the Avro schema
# tags it PII (``confluent:tags``, as Confluent's field-level encryption reads tags), the codec seals it under
# its subject's data key (``services.messaging.sealing``), and ``personal_fields`` tells code which fields of a
# model hold personal data.
class PersonalMark:
    """The mark. A value whose subject was erased (its key destroyed) reads back as ``None``, whatever the
    field's type, when the model is validated with ``ERASED_CONTEXT``: the record is still read (its status and
    times count in figures), its personal values are gone."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        def erased_or(value: Any, validate: Any, info: ValidationInfo) -> Any:
            if value is None and info.context and info.context.get(ERASED):
                return None
            return validate(value)

        return core_schema.with_info_wrap_validator_function(erased_or, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        found = handler(schema)
        found["personal"] = True
        return found


PERSONAL = PersonalMark()
PII_TAG = "PII"
ERASED = "erased"
ERASED_CONTEXT = {ERASED: True}  # model_validate(..., context=ERASED_CONTEXT): erased personal values read as None


def personal_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` marked ``PERSONAL``."""
    return tuple(name for name, f in model.model_fields.items() if any(m is PERSONAL for m in f.metadata))


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


def _not_blank(value: str | None) -> str | None:
    if value is None:  # erased (PersonalMark): nothing is left to be blank
        return None
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
    push = "push"  # Web Push to the devices where the person allowed it in the console
    voice = "voice"  # a phone call that reads the page and takes "press 1"


# Channels only a page uses: a call reads a page and takes a key; a warning or a notice is read, not rung.
PAGES_ONLY = frozenset({Channel.voice})


@wire_enum(name="Channel")  # its first schema named it so; a rename would break old records
class DisclosureChannel(str, Enum):
    """Where a disclosure happened: a delivery channel, or a person reading it in the console or API."""

    sms = "sms"
    email = "email"
    webhook = "webhook"
    console = "console"
    api = "api"
    push = "push"
    voice = "voice"


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
    voice = "voice"  # pressed 1 on the page's call


class Officer(Record):
    """The referring officer, for the warm-handoff callback."""

    name: Annotated[str, PERSONAL] = Field(min_length=1, max_length=200)
    """Officer's display name."""
    badge_number: str | None = Field(None, max_length=50)
    """Badge or employee number."""
    callback_phone: Annotated[str, PERSONAL] = Field(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()\-.]{3,32}$")
    """Number the case manager calls back (E.164 preferred)."""

    _blank = field_validator("name")(_not_blank)


class ReferredPerson(Record):
    """The person referred. Personal data: never logged."""

    first_name: Annotated[str, PERSONAL] = Field(min_length=1, max_length=100)
    """Given name."""
    last_name: Annotated[str, PERSONAL] = Field(min_length=1, max_length=100)
    """Family name."""
    date_of_birth: Annotated[DateOfBirth | None, PERSONAL] = None
    """Date of birth, if known."""
    description: Annotated[str | None, PERSONAL] = Field(None, max_length=1000)
    """What helps find the person on scene: clothing, appearance, companions."""

    _blank = field_validator("first_name", "last_name")(_not_blank)


class Location(Record):
    """Where the person is now, for the case manager to find them."""

    description: Annotated[str, PERSONAL] = Field(min_length=1, max_length=500)
    """Free text a person can follow: address, cross streets, landmark."""
    latitude: float | None = Field(None, ge=-90, le=90)
    """WGS84 latitude."""
    longitude: float | None = Field(None, ge=-180, le=180)
    """WGS84 longitude."""


class Child(Record):
    """A child named in a Handle With Care notice. Personal data: never logged."""

    first_name: Annotated[str, PERSONAL] = Field(min_length=1, max_length=100)
    """Given name."""
    last_name: Annotated[str, PERSONAL] = Field(min_length=1, max_length=100)
    """Family name."""
    date_of_birth: Annotated[DateOfBirth, PERSONAL]
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
    address: Annotated[str | None, PERSONAL] = Field(None, max_length=500)
    """Where it happened."""
    narrative: Annotated[str | None, PERSONAL] = Field(None, max_length=4000)
    """Officer's narrative."""
    other_people: list[Annotated[str, Field(max_length=200)]] = Field([], max_length=50)
    """Others involved."""
    officer_name: Annotated[str | None, PERSONAL] = Field(None, max_length=200)
    """Responding officer."""


class Header(Record):
    """A Kafka record header."""

    key: str
    """Header name."""
    value: bytes | None
    """Header value."""


def age_on(born: date, at: date) -> int:
    """Whole years of age on ``at``."""
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


