"""What CAD sends: the inbound events each pathway reads, as an agency's CAD integration, the CAD gateway or
the HTTP intake writes them. Shared by the gateway and the pathway that reads each, so the kernel's."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Annotated, ClassVar

from pydantic import BaseModel, Field, StrictBool, model_validator

from services.kernel.events import (
    CHILD_MAX_AGE_YEARS,
    MAX_AGE_YEARS,
    PERSONAL,
    Child,
    Consent,
    DateOfBirth,
    InboundEvent,
    IncidentDetails,
    Int32,
    Location,
    Officer,
    Record,
    ReferralType,
    ReferredPerson,
    Timestamp,
    age_on,
    wire_enum,
)

_ID = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")




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
    person: Annotated[ReferredPerson, PERSONAL]
    """The person referred."""
    location: Annotated[Location, PERSONAL]
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
    child: Annotated[Child, PERSONAL]
    """The child."""
    school_id: str | None = Field(None, max_length=128)
    """School or day care id from the directory, if the officer knows it."""
    school_name_hint: Annotated[str | None, PERSONAL] = Field(None, max_length=200)
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


def _check_birth(born: date | None, at: datetime, max_years: int, field: str, event_field: str) -> None:
    """A date of birth on or before the event, and at most ``max_years`` before it."""
    if born is None:
        return
    if born > at.date():
        raise ValueError(f"{field}: must not be after {event_field}")
    if age_on(born, at.date()) >= max_years:
        raise ValueError(f"{field}: more than {max_years} years before {event_field}")




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

    first_name: Annotated[str | None, PERSONAL] = Field(None, max_length=100)
    """Given name."""
    last_name: Annotated[str | None, PERSONAL] = Field(None, max_length=100)
    """Family name."""
    date_of_birth: Annotated[DateOfBirth | None, PERSONAL] = None
    """Date of birth."""
    contact_address: Annotated[str | None, PERSONAL] = Field(None, max_length=300)
    """Where the team may find them."""
    address_source: AddressSource = AddressSource.unknown
    """Where that address came from."""
    phone: Annotated[str | None, PERSONAL] = Field(None, max_length=32)
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
    location_description: Annotated[str | None, PERSONAL] = Field(None, max_length=300)
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
    person: Annotated[OverdosePerson | None, PERSONAL] = None
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
    first_name: Annotated[str | None, PERSONAL] = Field(None, max_length=100)
    """How the volunteer may greet them (shown only to the volunteer who takes it)."""
    incident_id: str | None = Field(None, min_length=1, max_length=128)
    """CAD incident number, when the call has one: every intake about one incident shares its correlation id."""
