"""NENA EIDO (Emergency Incident Data Object, NENA-STA-021 JSON) read into a ``CallRecord``.

Checked first against the standard (``eido_standard.EIDO_SCHEMA``): a document that is not an EIDO is refused
naming the JSON path of what is wrong, and never answered "nothing to map". Then read the standard's way:

- the incident: the one ``incidentComponent``; its ``$id`` identifies it across updates (the call's id here, so
  an update maps to the same events), its ``lastUpdateTimeStamp`` is when;
- who, where and which officer: the ``personComponent``, ``locationComponent`` and ``agentComponent`` entries
  the incident names by ``$ref`` in ``personReference``, ``locationReference`` and ``agentReference`` (all of
  them when it names none);
- a person: NIEM names and birth date (``ncPersonComponent.name[].personGivenName[].value``,
  ``personSurName``, ``birthDate[].date[].value``) and roles (``personIncidentRoleRegistryText``);
- a place: PIDF-LO in ``locationByValue`` (a civic address or a ``gml:pos``, read with defusedxml: hostile XML
  must not expand entities or reach the network), else ``locationDescriptionText``;
- the officer: the responding agent's jCard ``fn`` (RFC 7095), else the agent's ``$id``.

A valid EIDO with no incident component (a call transfer between PSAPs, a call-only update) has nothing Handoff
acts on: ``NothingToMap``, answered as such, never an error.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from services.cad_gateway.domain.calls import CallPerson, CallRecord
from services.cad_gateway.domain.eido_standard import EIDO_SCHEMA
from services.kernel.errors import Rejected

MAX_COMPONENTS = 200  # a document naming more is not a call: refused, not walked
COMPONENTS = ("personComponent", "locationComponent", "agentComponent", "agencyComponent")
_REFERENCES = (("personReference", "personComponent", "person"), ("locationReference", "locationComponent", "location"),
               ("agentReference", "agentComponent", "agent"))


class NothingToMap(Exception):
    """A valid EIDO with nothing to act on (e.g. a call transfer with no incident component)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _time(text: Any) -> datetime | None:
    """An RFC 3339 date-time, which carries its offset from UTC."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")) \
            if isinstance(text, str) else None
    except ValueError:
        return None
    return at if at is not None and at.tzinfo is not None else None


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time")(lambda text: not isinstance(text, str) or _time(text) is not None)
_STANDARD = Draft202012Validator(EIDO_SCHEMA, format_checker=_FORMATS)


def check_eido(document: Any) -> None:
    """``Rejected`` naming the JSON path (``$.incidentComponent.personReference[0]``) of the first thing in
    ``document`` the standard does not allow, and why."""
    if not isinstance(document, dict):
        raise Rejected("$", "must be a JSON object (an Emergency Incident Data Object)")
    if sum(len(v) for v in document.values() if isinstance(v, list)) > MAX_COMPONENTS:
        raise Rejected("$", f"more than {MAX_COMPONENTS} components")
    errors = sorted(_STANDARD.iter_errors(document), key=lambda e: (len(e.absolute_path), e.json_path))
    if errors:
        raise Rejected(errors[0].json_path, f"not valid under NENA-STA-021: {_rule(errors[0])}")


def _rule(error: ValidationError) -> str:
    """What the standard asks there, in words that never repeat the value sent (a name is a value too: answers and
    logs carry none)."""
    rule, asked = error.validator, error.validator_value
    if rule == "required":
        return error.message  # names the missing element, not a value
    if rule == "type":
        return f"must be of type {asked!r}"
    if rule == "enum":
        return f"must be one of {asked!r}"
    if rule == "format":
        return f"must be a {asked} (RFC 3339, with its offset from UTC)"
    if rule in ("anyOf", "oneOf"):
        return "is none of the shapes the standard allows here"
    return f"breaks the standard's {rule!r} rule ({asked!r})"


def read_eido(document: Any) -> list[CallRecord]:
    """The document's incident as a ``CallRecord`` with the persons it refers to; persons it does not refer to are
    named on it (``unattached_persons``), so that the answer says they were left out."""
    check_eido(document)
    incident = document.get("incidentComponent")
    if incident is None:
        raise NothingToMap("no incidentComponent (a call transfer or a call-only update): nothing to map")
    doc = _Doc(document)
    persons = doc.referenced(incident, "personReference", "personComponent")
    locations = doc.referenced(incident, "locationReference", "locationComponent")
    agents = doc.referenced(incident, "agentReference", "agentComponent")
    dispositions = [d.get("dispositionCommonRegistryCode") for d in incident.get("dispositionComponent", [])]
    statuses = [*incident.get("incidentStatusInternalText", []), *incident.get("incidentStatusCommonRegistryText", [])]
    text, lat, lon = _location(locations)
    responders = [a for a in agents if any("respond" in r.casefold() or "officer" in r.casefold()
                                           for r in a.get("agentRoleRegistryText", []))] or agents
    referred = {str(p["$id"]) for p in persons}
    occurred = _time(incident["lastUpdateTimeStamp"])
    if occurred is None:  # the standard's date-time, checked above: never here
        raise Rejected("$.incidentComponent.lastUpdateTimeStamp", "a date-time with its offset from UTC")
    return [CallRecord(
        call_id=str(incident["$id"]), occurred_at=occurred,
        incident_type=_plain(incident.get("incidentTypeInternalCode")) or _plain(
            incident.get("incidentTypeCommonRegistryText")),
        dispositions=tuple(d for d in (*dispositions, *statuses) if isinstance(d, str) and d.strip()),
        persons=tuple(_person(p) for p in persons), location_text=text, latitude=lat, longitude=lon,
        officer=_officer(responders[0]) if responders else None,
        unattached_persons=tuple(CallPerson(str(p["$id"]), tuple(p["personIncidentRoleRegistryText"]))
                                 for p in document.get("personComponent", []) if str(p["$id"]) not in referred),
        unresolved=doc.unresolved(incident))]


class _Doc:
    """The document's components of each kind by ``$id``."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.by_id = {name: {str(c["$id"]): c for c in reversed(document.get(name, []))} for name in COMPONENTS}

    def unresolved(self, owner: dict) -> tuple[str, ...]:
        """``owner``'s references to persons, locations and agents the document does not hold ("person X")."""
        return tuple(f"{kind} {r['$ref']}" for reference, name, kind in _REFERENCES
                     for r in owner.get(reference, []) if r["$ref"] not in self.by_id[name])

    def referenced(self, owner: dict, reference: str, component_name: str) -> list[dict]:
        """The components of ``component_name`` that ``owner`` refers to; when it refers to none, all of them."""
        known = self.by_id[component_name]
        found = [known[r["$ref"]] for r in owner.get(reference, []) if r["$ref"] in known]
        return found or list(self.document.get(component_name, []))


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _plain(value: Any) -> str | None:
    """Text, from a string or a NIEM value (an object holding ``value``, or a list of them: the first)."""
    for item in _values(value):
        text = item.get("value") if isinstance(item, dict) else item
        if isinstance(text, str) and text.strip():
            return text.strip()
    return None


def _first(items: list[Any], element: str) -> str | None:
    """The first text of ``element`` among NIEM objects."""
    return next((t for item in items if isinstance(item, dict) and (t := _plain(item.get(element)))), None)


def _names(person: dict) -> tuple[str | None, str | None]:
    """Given and family name; from a full name alone ("Given Family"), split at its last space."""
    names = _values(person.get("name"))
    given, family = _first(names, "personGivenName"), _first(names, "personSurName")
    if given is None and family is None:
        full = _first(names, "personFullName") or ""
        given, _, family = full.rpartition(" ")
    return given or None, family or None


def _birth_date(person: dict) -> date | None:
    born = _first(_values(person.get("birthDate")), "date")
    try:
        return date.fromisoformat(born[:10]) if born else None
    except ValueError:
        return None


def _person(component: dict) -> CallPerson:
    person = component.get("ncPersonComponent") or {}
    first_name, last_name = _names(person)
    return CallPerson(
        component_id=str(component["$id"]), roles=tuple(component["personIncidentRoleRegistryText"]),
        first_name=first_name, last_name=last_name, date_of_birth=_birth_date(person),
        sex=_plain(person.get("sexCode")) or _plain(person.get("sex")))


def _officer(agent: dict) -> str:
    """The agent's name from its jCard (``["vcard", [["fn", {}, "text", "Officer Dana Ruiz"], ...]]``), else its id."""
    try:
        card = json.loads(agent.get("agentJcard") or "null")
        name = next(p[3] for p in card[1] if isinstance(p, list) and len(p) > 3 and p[0] == "fn")
    except (ValueError, TypeError, IndexError, KeyError, StopIteration):
        name = None
    return name.strip() if isinstance(name, str) and name.strip() else str(agent["$id"])


_CIVIC = ("HNO", "HNS", "PRD", "RD", "STS", "POD", "A3", "A1", "PC")
_POS = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+(-?\d+(?:\.\d+)?)")


def _location(locations: list[dict]) -> tuple[str | None, float | None, float | None]:
    """Text to find the place by, and coordinates, from the incident's first useful location."""
    text = lat = lon = None
    for location in locations:
        pidf = location.get("locationByValue")
        civic, point = _pidf(pidf) if isinstance(pidf, str) and pidf.strip() else (None, None)
        text = text or civic or _plain(location.get("locationDescriptionText"))
        if point and lat is None:
            lat, lon = point
    return text, lat, lon


def _pidf(xml: str) -> tuple[str | None, tuple[float, float] | None]:
    """A civic address ('42 W Cellular Street, Wilmington, DE') and a point, from PIDF-LO."""
    try:
        root = ElementTree.fromstring(xml.strip().encode(), forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        return None, None
    by_tag: dict[str, str] = {}
    point = None
    for element in root.iter():
        tag = str(element.tag).rsplit("}", 1)[-1]
        text = (element.text or "").strip()
        if tag in _CIVIC and text and tag not in by_tag:
            by_tag[tag] = text
        elif tag == "pos" and text and point is None:
            match = _POS.match(text)
            if match and -90 <= float(match[1]) <= 90 and -180 <= float(match[2]) <= 180:
                point = (float(match[1]), float(match[2]))
    street = " ".join(by_tag[k] for k in ("HNO", "HNS", "PRD", "RD", "STS", "POD") if k in by_tag)
    place = ", ".join(p for p in (street, by_tag.get("A3"), by_tag.get("A1")) if p)
    return place or None, point
