"""A CAD call as Handoff reads it, whatever the CAD sent (a NENA EIDO, a CSV row, an XML file), and what
it becomes: through the agency's call-type table, a LEAD referral, an overdose response, a child
encountered, or nothing. Pure: no I/O.

One event per person the rule applies to, each with an id made of the call's own id and the
person's component id, so a repeat or an update of the same call maps to the same ids (the intakes
behind drop the copies, and a referral whose person moved is an update, not a new referral).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from pydantic import ValidationError

from services.kernel.cad import CadChildEncountered, CadOverdoseResponded, CadReferralMade, Sex
from services.kernel.clock import EventTimeWindow
from services.kernel.errors import describe_validation_error
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
    """One incident of a call: its own id (an EIDO incident component's ``$id``, a file's event id), when, what
    and where, and who."""

    call_id: str
    occurred_at: datetime
    incident_type: str | None = None
    dispositions: tuple[str, ...] = ()
    persons: tuple[CallPerson, ...] = ()
    location_text: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    officer: str | None = None
    unattached_persons: tuple[CallPerson, ...] = ()  # persons of the call no incident refers to (ids and roles)
    unresolved: tuple[str, ...] = ()  # what the incident refers to and the document does not hold ("person X")


@dataclass
class Mapped:
    """What a call became: events (kind, key, event), and why anything in it was left out. Every incident
    and every person that became no event is in ``skipped`` with the reason, so that the CAD is told;
    a person one incident leaves out and another maps (a child present at both) is not."""

    events: list[tuple[str, str, object]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # about an incident as a whole
    # person component id -> (the person as the CAD is told: component id and roles, never a name; why no event)
    persons_left: dict[str, tuple[str, str]] = field(default_factory=dict)
    persons_mapped: set[str] = field(default_factory=set)

    @property
    def skipped(self) -> list[str]:
        return [*self.reasons, *(f"person {label}: {why}" for person, (label, why) in self.persons_left.items()
                                 if person not in self.persons_mapped)]

    @property
    def nothing(self) -> bool:
        return not self.events

    def add(self, kind: str, key: str, event: object, person: str) -> None:
        if all((k, i) != (kind, key) for k, i, _ in self.events):  # a person two incidents map the same way
            self.events.append((kind, key, event))
        self.persons_mapped.add(person)

    def leave_out(self, person: CallPerson, why: str) -> None:
        roles = f" ({', '.join(person.roles)})" if person.roles else ""
        self.persons_left.setdefault(person.component_id, (f"{person.component_id or '(none)'}{roles}", why))


def event_id_for(call_id: str, component_id: str = "") -> str:
    """An id the intakes accept (letters, digits, ``.:-``; at most 128) for one person of one call, the
    same every time the call is sent again."""
    digest = hashlib.sha256(f"{call_id}\x1f{component_id}".encode()).hexdigest()[:32]
    return f"cad-{digest}"


def map_calls(calls: Sequence[CallRecord], agency: Agency, sites: dict[str, Site], now: datetime,
              window: EventTimeWindow = EventTimeWindow()) -> Mapped:
    """The events a call's incidents become under the agency's call-type table; ``Rejected`` (naming the
    field) when the call itself cannot be right (a time from a broken CAD clock)."""
    mapped = Mapped()
    for call in calls:
        _map_incident(call, agency, sites, now, window, mapped)
    return mapped


def _map_incident(call: CallRecord, agency: Agency, sites: dict[str, Site], now: datetime, window: EventTimeWindow,
                  mapped: Mapped) -> None:
    window.check("occurred_at", call.occurred_at, now)
    for person in call.unattached_persons:
        mapped.leave_out(person, "no incident component refers to this person")
    mapped.reasons += [f"{missing}: the incident refers to it, and the document holds no such component"
                       for missing in call.unresolved]
    rule = agency.rule_for(call.incident_type, call.dispositions)
    why_not = _maps_to_nothing(call, rule, sites)
    if why_not is not None or rule is None:
        mapped.reasons.append(str(why_not))
        for person in call.persons:
            mapped.leave_out(person, "its incident maps to nothing")
        return
    roles = _folded(rule.person_roles or DEFAULT_ROLES[rule.maps_to])
    persons = [p for p in call.persons if roles & _folded(p.roles)]
    if rule.maps_to == "overdose" and not persons:
        persons = [CallPerson("")]  # an overdose is reported even when nobody is named
    if not persons:
        mapped.reasons.append(f"no person in the roles {sorted(roles)}")
    for person in persons:
        _map_person(rule, rule.maps_to, call, person, agency, mapped)
    for person in call.persons:
        if person not in persons:
            _map_bystander(rule, roles, call, person, agency, mapped)


def _maps_to_nothing(call: CallRecord, rule: CallTypeRule | None, sites: dict[str, Site]) -> str | None:
    """Why a call's incident becomes no event under the agency's call-type table, or None when it does."""
    if call.incident_type is None:
        return "no incident type: nothing to map"
    if rule is None:
        return f"incident type {call.incident_type!r} is not in the agency's call-type table"
    if rule.maps_to == "ignore":
        return f"incident type {call.incident_type!r}: ignored by the agency's call-type table"
    site = sites.get(rule.site_id or "")
    if rule.referral_type is not None and (site is None or rule.referral_type not in site.accepted_referral_types):
        return f"site {rule.site_id!r} does not accept {rule.referral_type.value} referrals"
    return None


def _map_bystander(rule: CallTypeRule, roles: set[str], call: CallRecord, person: CallPerson, agency: Agency,
                   mapped: Mapped) -> None:
    """A person at the incident outside the rule's roles: a child gets a Handle With Care notice where the table says
    so; anyone else is left out, with the reason."""
    is_child = bool(_folded(DEFAULT_ROLES["child_encountered"]) & _folded(person.roles))
    if is_child and rule.children_get_handle_with_care:
        _map_person(rule, "child_encountered", call, person, agency, mapped)  # a child present, as the table says
    elif is_child and rule.maps_to != "child_encountered":
        mapped.leave_out(person, f"a {rule.maps_to} call: the agency's call-type table sends no Handle With Care "
                                 "notice for children at it (children_get_handle_with_care)")
    else:
        mapped.leave_out(person, f"role not one of {sorted(roles)} for a {rule.maps_to}")


def _folded(roles) -> set[str]:
    return {r.casefold() for r in roles}


def _map_person(rule: CallTypeRule, kind: str, call: CallRecord, person: CallPerson, agency: Agency,
                mapped: Mapped) -> None:
    try:
        made = _event(rule, kind, call, person, agency)
    except (ValidationError, ValueError) as exc:
        mapped.leave_out(person, describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc))
        return
    mapped.add(*made, person=person.component_id)


def _event(rule: CallTypeRule, kind: str, call: CallRecord, person: CallPerson, agency: Agency) -> tuple[str, str, object]:
    event_id = event_id_for(call.call_id, person.component_id)
    incident_id = event_id_for(call.call_id)  # one for every event of the call: one correlation id, one incident view
    # Built from plain values through validation: what the HTTP intakes would refuse, this refuses too.
    if kind == "referral":
        referral = CadReferralMade.model_validate({
            "cad_event_id": event_id, "agency_id": agency.agency_id, "site_id": rule.site_id,
            "referral_type": rule.referral_type, "occurred_at": call.occurred_at,
            "officer": {"name": call.officer or f"{agency.name} dispatch", "callback_phone": agency.dispatch_phone},
            "person": {"first_name": person.first_name, "last_name": person.last_name,
                       "date_of_birth": person.date_of_birth},
            "location": {"description": _where(call), "latitude": call.latitude, "longitude": call.longitude},
            "submitted_by": "cad-gateway", "incident_id": incident_id})
        return "referral", event_id, referral
    if kind == "overdose":
        named = person.first_name or person.last_name or person.date_of_birth
        overdose = CadOverdoseResponded.model_validate({
            "overdose_event_id": event_id, "agency_id": agency.agency_id, "site_id": rule.site_id,
            "occurred_at": call.occurred_at, "location_description": call.location_text, "latitude": call.latitude,
            "longitude": call.longitude, "fatal": rule.fatal, "naloxone_given": rule.naloxone_given,
            "age_range": age_range(person.date_of_birth, call.occurred_at), "sex": _sex(person.sex),
            "person": {"first_name": person.first_name, "last_name": person.last_name,
                       "date_of_birth": person.date_of_birth} if named else None, "incident_id": incident_id})
        return "overdose", event_id, overdose
    if person.date_of_birth is None:
        raise ValueError("date_of_birth: needed to know a child (and their school)")
    if years_between(person.date_of_birth, call.occurred_at.date()) >= CHILD_MAX_AGE:
        raise ValueError(f"{CHILD_MAX_AGE} or over: not a child for Handle With Care")
    child = CadChildEncountered.model_validate({
        "cad_event_id": event_id, "agency_id": agency.agency_id, "incident_id": incident_id,
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
