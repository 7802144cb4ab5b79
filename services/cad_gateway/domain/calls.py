"""A CAD call as Handoff reads it, whatever the CAD sent (a NENA EIDO, a CSV row, an XML file), and what
it becomes: through the agency's call-type table, a LEAD referral, an overdose response, a child
encountered, or nothing. Pure: no I/O.

One event per person the rule applies to, each with an id made of the call's own id and the
person's component id, so a repeat or an update of the same call maps to the same ids (the intakes
behind drop the copies, and a referral whose person moved is an update, not a new referral).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime

from pydantic import ValidationError

from services.kernel.clock import EventTimeWindow
from services.kernel.errors import describe_validation_error
from services.kernel.events import CadChildEncountered, CadOverdoseResponded, CadReferralMade, Sex
from services.kernel.reference import Agency, CallTypeRule, Site

#: Whose records a rule takes when it names no roles (NENA person-role registry words, any case).
DEFAULT_ROLES = {"referral": ("subject", "suspect", "involved"), "overdose": ("patient", "subject", "victim"),
                 "child_encountered": ("child", "juvenile", "witness", "victim", "subject")}
CHILD_MAX_AGE = 18
AGE_RANGES = ((18, "0-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))


@dataclass(frozen=True)
class CallPerson:
    component_id: str
    roles: tuple[str, ...] = ()
    first_name: str | None = None
    last_name: str | None = None
    date_of_birth: date | None = None
    sex: str | None = None


@dataclass(frozen=True)
class CallRecord:
    """One call: its own id (EIDO's incidentTrackingIdentifier, a file's event id), when, what and where."""

    call_id: str
    occurred_at: datetime
    incident_type: str | None = None
    dispositions: tuple[str, ...] = ()
    persons: tuple[CallPerson, ...] = ()
    location_text: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    officer: str | None = None


@dataclass(frozen=True)
class Mapped:
    """What a call became: events (kind, key, event), and why anything in it was left out."""

    events: list[tuple[str, str, object]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not self.events


def event_id_for(call_id: str, component_id: str = "") -> str:
    """An id the intakes accept (letters, digits, ``.:-``; at most 128) for one person of one call, the
    same every time the call is sent again."""
    digest = hashlib.sha256(f"{call_id}\x1f{component_id}".encode()).hexdigest()[:32]
    return f"cad-{digest}"


def map_call(call: CallRecord, agency: Agency, sites: dict[str, Site], now: datetime,
             window: EventTimeWindow = EventTimeWindow()) -> Mapped:
    """The events a call becomes under the agency's call-type table; ``Rejected`` (naming the field) when
    the call itself cannot be right (a time from a broken CAD clock)."""
    window.check("occurred_at", call.occurred_at, now)
    rule = agency.rule_for(call.incident_type, call.dispositions)
    if call.incident_type is None:
        return Mapped(skipped=["no incident type: nothing to map"])
    if rule is None:
        return Mapped(skipped=[f"incident type {call.incident_type!r} is not in the agency's call-type table"])
    if rule.maps_to == "ignore":
        return Mapped(skipped=[f"incident type {call.incident_type!r}: ignored by the agency's call-type table"])
    site = sites.get(rule.site_id) if rule.site_id else None
    if rule.referral_type is not None and (site is None or rule.referral_type not in site.accepted_referral_types):
        return Mapped(skipped=[f"site {rule.site_id!r} does not accept {rule.referral_type.value} referrals"])
    roles = {r.casefold() for r in (rule.person_roles or DEFAULT_ROLES[rule.maps_to])}
    persons = [p for p in call.persons if roles & {r.casefold() for r in p.roles}]
    mapped = Mapped()
    if rule.maps_to == "overdose" and not persons:
        persons = [CallPerson("")]  # an overdose is reported even when nobody is named
    if not persons:
        mapped.skipped.append(f"no person in the roles {sorted(roles)}")
    for person in persons:
        try:
            event = _event(rule, call, person, agency)
        except (ValidationError, ValueError) as exc:
            reason = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            mapped.skipped.append(f"person {person.component_id or '(none)'}: {reason}")
            continue
        if event is not None:
            mapped.events.append(event)
    return mapped


def _event(rule: CallTypeRule, call: CallRecord, person: CallPerson, agency: Agency) -> tuple[str, str, object] | None:
    event_id = event_id_for(call.call_id, person.component_id)
    # Built from plain values through validation: what the HTTP intakes would refuse, this refuses too.
    if rule.maps_to == "referral":
        referral = CadReferralMade.model_validate({
            "cad_event_id": event_id, "agency_id": agency.agency_id, "site_id": rule.site_id,
            "referral_type": rule.referral_type, "occurred_at": call.occurred_at,
            "officer": {"name": call.officer or f"{agency.name} dispatch", "callback_phone": agency.dispatch_phone},
            "person": {"first_name": person.first_name, "last_name": person.last_name,
                       "date_of_birth": person.date_of_birth},
            "location": {"description": _where(call), "latitude": call.latitude, "longitude": call.longitude},
            "submitted_by": "cad-gateway"})
        return "referral", event_id, referral
    if rule.maps_to == "overdose":
        named = person.first_name or person.last_name or person.date_of_birth
        overdose = CadOverdoseResponded.model_validate({
            "overdose_event_id": event_id, "agency_id": agency.agency_id, "site_id": rule.site_id,
            "occurred_at": call.occurred_at, "location_description": call.location_text, "latitude": call.latitude,
            "longitude": call.longitude, "fatal": rule.fatal, "naloxone_given": rule.naloxone_given,
            "age_range": age_range(person.date_of_birth, call.occurred_at), "sex": _sex(person.sex),
            "person": {"first_name": person.first_name, "last_name": person.last_name,
                       "date_of_birth": person.date_of_birth} if named else None})
        return "overdose", event_id, overdose
    if person.date_of_birth is None:
        raise ValueError("date_of_birth: needed to know a child (and their school)")
    if years_between(person.date_of_birth, call.occurred_at.date()) >= CHILD_MAX_AGE:
        return None  # an adult in a child's role: not Handle With Care's
    child = CadChildEncountered.model_validate({
        "cad_event_id": event_id, "agency_id": agency.agency_id, "incident_id": event_id_for(call.call_id),
        "encountered_at": call.occurred_at,
        "child": {"first_name": person.first_name, "last_name": person.last_name,
                  "date_of_birth": person.date_of_birth}})
    return "child_encountered", event_id, child


def _where(call: CallRecord) -> str:
    if call.location_text:
        return call.location_text
    if call.latitude is not None and call.longitude is not None:
        return f"at {call.latitude:.5f}, {call.longitude:.5f} (coordinates only)"
    raise ValueError("location: the call has no location a case manager could go to")


def _sex(value: str | None) -> Sex:
    text = (value or "").strip().casefold()
    return {"m": Sex.male, "male": Sex.male, "f": Sex.female, "female": Sex.female}.get(text, Sex.unknown)


def years_between(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_range(born: date | None, at: datetime) -> str:
    if born is None:
        return "unknown"
    age = years_between(born, at.date())
    return next((label for limit, label in AGE_RANGES if age < limit), "65+")
