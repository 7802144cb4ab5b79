"""NENA EIDO (Emergency Incident Data Object, NENA-STA-021, JSON) read into a ``CallRecord``.

Written from the standard's field names, tolerant in the ways real senders differ: component names
in the short and long forms (``personComponent`` / ``personInformationComponent``), the prologue's
names in either case (``lastUpdateTimeStamp`` / ``LastUpdateTimeStamp``), a component as an object
or a list of them, NIEM text as a string or as an object holding one. Components refer to each
other by ``$ref`` to an ``$id``. Locations come as text, or as PIDF-LO XML (a civic address, or a
``gml:pos``), read with defusedxml (hostile XML must not expand entities or reach the network).

A document with no incident component (a call transfer between PSAPs) has nothing Handoff acts on:
``NothingToMap``, answered as such, never an error.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from services.cad_gateway.domain.calls import CallPerson, CallRecord
from services.kernel.errors import Rejected

MAX_COMPONENTS = 200  # a document naming more is not a call: refused, not walked


class NothingToMap(Exception):
    """A well-formed EIDO with nothing to act on (e.g. a call transfer with no incident component)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_eido(document: Any) -> list[CallRecord]:
    """One ``CallRecord`` per incident component, each with its own persons; persons no incident refers to
    are named on the first (``unattached_persons``), so that the answer says they were left out."""
    if not isinstance(document, dict):
        raise Rejected("eido", "must be a JSON object (an Emergency Incident Data Object)")
    doc = _Doc(document)
    tracking = doc.text(document, "incidentTrackingIdentifier") or doc.text(document, "$id")
    if not tracking:
        raise Rejected("incidentTrackingIdentifier", "required (or the document's $id)")
    incidents = doc.components("incidentComponent")
    if not incidents:
        raise NothingToMap("no incident component (a call transfer or a call-only update): nothing to map")
    calls = [_incident(doc, document, tracking, incident, len(incidents) > 1) for incident in incidents]
    referred = {p.component_id for call in calls for p in call.persons}
    unattached = tuple(CallPerson(str(p["$id"]), tuple(doc.texts(p, "personIncidentRoleRegistryText")))
                       for p in doc.components("personInformationComponent", "personComponent")
                       if p.get("$id") and str(p["$id"]) not in referred)
    return [replace(calls[0], unattached_persons=unattached), *calls[1:]]


def _incident(doc: _Doc, document: dict, tracking: str, incident: dict, several: bool) -> CallRecord:
    occurred = (_time(doc.text(incident, "lastUpdateTimeStamp")) or _time(doc.text(document, "lastUpdateTimeStamp")))
    if occurred is None:
        raise Rejected("lastUpdateTimeStamp", "the incident needs a time with a UTC offset")
    persons = doc.referenced(incident, "personReference", "personInformationComponent", "personComponent")
    locations = doc.referenced(incident, "locationReference", "locationInformationComponent", "locationComponent")
    agents = doc.referenced(incident, "agentReference", "agentComponent")
    dispositions = [doc.text(d, "dispositionCommonRegistryCode") or doc.text(d, "dispositionCategoryText")
                    for d in doc.listed(incident, "dispositionComponent")]
    statuses = doc.texts(incident, "incidentStatusInternalText")
    text, lat, lon = _location(doc, locations)
    responders = [a for a in agents if any("respond" in r.casefold() or "officer" in r.casefold()
                                           for r in doc.texts(a, "agentRoleRegistryText"))] or agents
    return CallRecord(
        call_id=tracking, occurred_at=occurred,
        incident_type=doc.text(incident, "incidentTypeInternalCode") or doc.text(incident,
                                                                                 "incidentTypeCommonRegistryText"),
        dispositions=tuple(d for d in (*dispositions, *statuses) if d),
        persons=tuple(_person(doc, p) for p in persons), location_text=text, latitude=lat, longitude=lon,
        officer=doc.text(responders[0], "agentIdentification") if responders else None,
        incident_component_id=str(incident.get("$id") or "") if several else "")


class _Doc:
    """Lookups in one document: keys in any case, components by ``$id``."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.by_id: dict[str, dict] = {}
        count = 0
        for value in document.values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and isinstance(item.get("$id"), str):
                    count += 1
                    self.by_id.setdefault(item["$id"], item)
        if count > MAX_COMPONENTS:
            raise Rejected("eido", f"more than {MAX_COMPONENTS} components")

    @staticmethod
    def get(obj: dict, name: str) -> Any:
        if name in obj:
            return obj[name]
        folded = name.casefold()
        return next((v for k, v in obj.items() if isinstance(k, str) and k.casefold() == folded), None)

    def listed(self, obj: dict, name: str) -> list[dict]:
        value = self.get(obj, name)
        items = value if isinstance(value, list) else [value] if value is not None else []
        return [i for i in items if isinstance(i, dict)]

    def components(self, *names: str) -> list[dict]:
        return [c for name in names for c in self.listed(self.document, name)]

    def referenced(self, owner: dict, reference: str, *component_names: str) -> list[dict]:
        """The components ``owner`` refers to; when it refers to none, every such component."""
        refs = [self.by_id.get(str(r.get("$ref"))) for r in self.listed(owner, reference)
                if isinstance(r.get("$ref"), str)]
        found = [c for c in refs if c is not None]
        return found or self.components(*component_names)

    def texts(self, obj: Any, *path: str) -> list[str]:
        """Every text at ``path`` (NIEM text may be a string, an object holding one, or a list of either)."""
        values = [obj]
        for name in path:
            values = [v for item in values for v in _as_list(self.get(item, name) if isinstance(item, dict) else None)]
        return [t for v in values if (t := _plain(v))]

    def text(self, obj: Any, *path: str) -> str | None:
        found = self.texts(obj, *path)
        return found[0] if found else None


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


def _plain(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):  # NIEM wraps text: {"value": ...} or {"text": ...} or a single key
        for key in ("value", "text", "date", "#text"):
            if key in value:
                return _plain(value[key])
        if len(value) == 1:
            return _plain(next(iter(value.values())))
    if isinstance(value, list) and value:
        return _plain(value[0])
    return None


def _time(text: str | None) -> datetime | None:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None
    return at if at is not None and at.tzinfo is not None else None


def _person(doc: _Doc, component: dict) -> CallPerson:
    person = doc.get(component, "ncPersonComponent") or doc.get(component, "personComponent") or {}
    person = person if isinstance(person, dict) else {}
    born = doc.text(person, "birthDate")
    try:
        birth = date.fromisoformat(born[:10]) if born else None
    except ValueError:
        birth = None
    return CallPerson(
        component_id=str(component.get("$id") or ""), roles=tuple(doc.texts(component, "personIncidentRoleRegistryText")),
        first_name=doc.text(person, "name", "givenName"), last_name=doc.text(person, "name", "surName"),
        date_of_birth=birth, sex=doc.text(person, "sexCode") or doc.text(person, "sex"))


_CIVIC = ("HNO", "HNS", "PRD", "RD", "STS", "POD", "A3", "A1", "PC")
_POS = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+(-?\d+(?:\.\d+)?)")


def _location(doc: _Doc, locations: list[dict]) -> tuple[str | None, float | None, float | None]:
    """Text to find the place by, and coordinates, from the incident's first useful location."""
    text = lat = lon = None
    for location in locations:
        text = text or doc.text(location, "locationDescriptionText")
        pidf = doc.text(location, "locationByValue")
        if pidf:
            civic, point = _pidf(pidf)
            text = text or civic
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
        tag = element.tag.rsplit("}", 1)[-1]
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
