"""NENA EIDO documents written for Handoff's tests from NENA-STA-021 (the 021.1b release and the current draft): one
incident component referring by ``$ref`` to persons, locations and agents listed in the document's
``personComponent``, ``locationComponent`` and ``agentComponent``; every component with its prologue (``$id``,
``lastUpdateTimeStamp``, ``updatedByAgencyReference``); NIEM persons; a PIDF-LO civic location and a point; an
update of an earlier document; and a call transfer with no incident component. Fictitious people. Every document
here is valid under ``eido_standard.EIDO_SCHEMA`` (a test checks each one)."""

from __future__ import annotations

import copy
import json
from datetime import datetime

TRACKING = "urn:emergency:uid:incidentid:7f3a9c2e:psap.abq.example.gov"
AGENCY = "urn:emergency:uid:agencyid:apd.example.gov"
OFFICER = "urn:emergency:uid:agentid:officer.ruiz@apd.example.gov"
CALL_TAKER = "urn:emergency:uid:agentid:calltaker.lee@apd.example.gov"
PIDF = ('<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" entity="pres:unit12@apd.example.gov"><tuple id="t1">'
        '<status><gp:geopriv><gp:location-info><civicAddress xmlns="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr">'
        '<country>US</country><A1>NM</A1><A3>Albuquerque</A3><HNO>600</HNO><RD>Central</RD><STS>Ave</STS>'
        '<POD>SW</POD></civicAddress></gp:location-info></gp:geopriv></status></tuple></presence>')
POINT = ('<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
         'xmlns:gml="http://www.opengis.net/gml" entity="pres:unit12@apd.example.gov"><tuple id="t2"><status>'
         '<gp:geopriv><gp:location-info><gml:Point srsName="urn:ogc:def:crs:EPSG::4326">'
         '<gml:pos>35.0844 -106.6504</gml:pos></gml:Point></gp:location-info></gp:geopriv></status></tuple></presence>')


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def prologue(component_id: str, at: datetime) -> dict:
    return {"$id": component_id, "lastUpdateTimeStamp": stamp(at), "updatedByAgencyReference": {"$ref": AGENCY},
            "updatedByAgentReference": {"$ref": OFFICER}}


def niem_person(given: str, family: str, born: str | None = None, sex: str | None = None) -> dict:
    """A NIEM person (nc:PersonType): names and birth date as the standard's components write them."""
    person: dict = {"name": [{"personGivenName": [{"value": given}], "personSurName": [{"value": family}]}]}
    if born:
        person["birthDate"] = [{"date": [{"value": born}]}]
    if sex:
        person["sexCode"] = [{"value": sex}]
    return person


def person(component_id: str, at: datetime, roles: tuple[str, ...], niem: dict | None = None) -> dict:
    found = {**prologue(component_id, at), "personIncidentRoleRegistryText": list(roles)}
    if niem is not None:
        found["ncPersonComponent"] = niem
    return found


def jcard(name: str) -> str:
    """An agent's contact information (RFC 7095 jCard, as text)."""
    return json.dumps(["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", name]]])


def eido(at: datetime, incident_type: str = "415", dispositions: tuple[str, ...] = ("LEAD",),
         tracking: str = TRACKING, person_roles: tuple[str, ...] = ("Subject",), birth: str = "1987-03-14",
         location: str = PIDF, names: tuple[str, str] = ("Sam", "Example")) -> dict:
    """An incident with a caller, a subject, an officer and a call taker of one agency, two locations and a
    disposition."""
    return {
        **prologue(f"{tracking}:eido", at), "eidoVersion": "1.0", "issuingElementIdentification": "cad.apd.example.gov",
        "incidentComponent": {
            **prologue(tracking, at), "incidentTypeInternalCode": incident_type,
            "incidentTypeInternalText": "DISTURBANCE", "incidentTypeCommonRegistryText": "Disturbance",
            "incidentStatusInternalText": ["CLEARED"],
            "personReference": [{"$ref": f"{tracking}:person:caller"}, {"$ref": f"{tracking}:person:1"}],
            "locationReference": [{"$ref": f"{tracking}:location:0"}, {"$ref": f"{tracking}:location:1"}],
            "agentReference": [{"$ref": CALL_TAKER}, {"$ref": OFFICER}],
            "dispositionComponent": [{**prologue(f"{tracking}:disposition:{i}", at),
                                      "dispositionCommonRegistryCode": d} for i, d in enumerate(dispositions)]},
        "agencyComponent": [{**prologue(AGENCY, at), "agencyRoleDescriptionRegistryText": ["Dispatch"],
                             "agencyType": ["police"], "incidentOwningAgencyIndicator": True}],
        "agentComponent": [
            {**prologue(CALL_TAKER, at), "agentRoleRegistryText": ["Call Taking"], "agencyReference": {"$ref": AGENCY},
             "agentJcard": jcard("Lee Calltaker")},
            {**prologue(OFFICER, at), "agentRoleRegistryText": ["Responder"], "agencyReference": {"$ref": AGENCY},
             "agentJcard": jcard("Officer Dana Ruiz")}],
        "personComponent": [
            person(f"{tracking}:person:caller", at, ("Caller",), niem_person("Morgan", "Neighbor")),
            person(f"{tracking}:person:1", at, person_roles, niem_person(*names, born=birth, sex="M"))],
        "locationComponent": [
            {**prologue(f"{tracking}:location:0", at), "locationTypeDescriptionRegistryText": "IncidentLocation",
             "locationByValue": location},
            {**prologue(f"{tracking}:location:1", at), "locationTypeDescriptionRegistryText": "Caller",
             "locationByValue": POINT}],
        "@context": {"@vocab": "./JSON-LD_Contexts/EmergencyIncidentDataObjectType.jsonld"},
    }


def moved(document: dict, at: datetime, civic_street: str = "Copper") -> dict:
    """The same incident, updated: the person has moved (a new incident location)."""
    update = copy.deepcopy(document)
    update["lastUpdateTimeStamp"] = stamp(at)
    update["locationComponent"][0]["locationByValue"] = PIDF.replace("Central", civic_street)
    update["locationComponent"][0]["lastUpdateTimeStamp"] = stamp(at)
    return update


def with_children(document: dict, at: datetime) -> dict:
    """The same incident with two children at the scene: one in the role Child, one a witness."""
    tracking = document["incidentComponent"]["$id"]
    both = copy.deepcopy(document)
    for n, role, (given, family), born in ((1, "Child", ("Philippa", "Quackenbush"), "2016-09-02"),
                                           (2, "Witness", ("Ottoline", "Quill"), "2018-05-05")):
        both["incidentComponent"]["personReference"].append({"$ref": f"{tracking}:person:child-{n}"})
        both["personComponent"].append(person(f"{tracking}:person:child-{n}", at, (role,),
                                               niem_person(given, family, born=born)))
    return both


def call_transfer(at: datetime) -> dict:
    """A call handed from one PSAP to another: call, callback, agency, agent and person; no incident."""
    call_id = "urn:emergency:uid:callid:91bd:psap.abq.example.gov"
    psap = "urn:emergency:uid:agencyid:psap.abq.example.gov"
    return {
        **prologue("urn:emergency:uid:incidentid:91bd:psap.abq.example.gov:eido", at), "eidoVersion": "1.0",
        "issuingElementIdentification": "idx.abq.example.gov",
        "callComponent": [{**prologue(call_id, at), "queueIdentifier": "sos@psap.example.gov",
                           "standardPrimaryCallType": "emergency", "direction": "incoming",
                           "callStateRegistryText": "callBegin", "callStartTimestamp": stamp(at),
                           "callBackReference": {"$ref": "cb-1"}, "personReference": [{"$ref": "person-caller"}]}],
        "callbackComponent": [{**prologue("cb-1", at), "callBackInformationUri": ["tel:+15055550188"]}],
        "agencyComponent": [{**prologue(psap, at), "agencyRoleDescriptionRegistryText": ["PSAP"],
                             "agencyType": ["psap"]}],
        "agentComponent": [{**prologue("lee@psap.abq.example.gov", at), "agentRoleRegistryText": ["Call Taking"],
                            "agencyReference": {"$ref": psap}}],
        "personComponent": [{**prologue("person-caller", at), "personIncidentRoleRegistryText": ["Caller"],
                             "callIdentifier": [call_id]}],
    }
