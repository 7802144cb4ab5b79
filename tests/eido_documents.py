"""NENA EIDO documents written for Handoff's tests from the standard's field names (NENA-STA-021 JSON):
several components referring to each other by ``$id``, NIEM persons, a PIDF-LO civic location, an
update of an earlier document, and a call transfer with no incident component. Fictitious people."""

from __future__ import annotations

import copy
from datetime import datetime

TRACKING = "urn:emergency:uid:incidentid:7f3a9c2e:psap.abq.example.gov"
PIDF = ('<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" entity="pres:unit12@apd.example.gov"><tuple id="t1">'
        '<status><gp:geopriv><gp:location-info><civicAddress xmlns="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr">'
        '<country>US</country><A1>NM</A1><A3>Albuquerque</A3><HNO>600</HNO><RD>Central</RD><STS>Ave</STS>'
        '<POD>SW</POD></civicAddress></gp:location-info></gp:geopriv></status></tuple></presence>')
POINT = ('<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
         'xmlns:gml="http://www.opengis.net/gml" entity="pres:unit12@apd.example.gov"><tuple id="t2"><status>'
         '<gp:geopriv><gp:location-info><gml:Point srsName="urn:ogc:def:crs:EPSG::4326">'
         '<gml:pos>35.0844 -106.6504</gml:pos></gml:Point></gp:location-info></gp:geopriv></status></tuple></presence>')


def prologue(component_id: str, at: datetime) -> dict:
    return {"$id": component_id, "lastUpdateTimeStamp": at.isoformat().replace("+00:00", "Z"),
            "updatedByAgencyReference": {"$ref": "apd.example.gov"},
            "updatedByAgentReference": {"$ref": "officer.ruiz@apd.example.gov"}}


def eido(at: datetime, incident_type: str = "415", dispositions: tuple[str, ...] = ("LEAD",),
         tracking: str = TRACKING, person_roles: tuple[str, ...] = ("Subject",), birth: str = "1987-03-14",
         location: str = PIDF, reason: str = "IncidentCreated", names: tuple[str, str] = ("Sam", "Example")) -> dict:
    """An incident with a caller, a subject, an officer, an agency, two locations and a disposition."""
    return {
        "$id": f"{tracking}:doc", "lastUpdateTimeStamp": at.isoformat().replace("+00:00", "Z"), "eidoVersion": "1.0",
        "incidentTrackingIdentifier": tracking, "reasonForIssueRegistryText": reason,
        "issuingElementIdentification": "cad.apd.example.gov", "agentReference": {"$ref": "officer.ruiz@apd.example.gov"},
        "incidentComponent": [{
            **prologue(f"{tracking}:incident:0", at), "incidentTypeInternalCode": incident_type,
            "incidentTypeInternalText": "DISTURBANCE", "incidentTypeCommonRegistryText": "Disturbance",
            "incidentStatusInternalText": ["CLEARED"],
            "personReference": [{"$ref": f"{tracking}:person:caller"}, {"$ref": f"{tracking}:person:1"}],
            "locationReference": [{"$ref": f"{tracking}:location:0"}, {"$ref": f"{tracking}:location:1"}],
            "agentReference": [{"$ref": "officer.ruiz@apd.example.gov"}],
            "dispositionComponent": [{**prologue(f"{tracking}:disposition:{i}", at),
                                      "dispositionCommonRegistryCode": d} for i, d in enumerate(dispositions)]}],
        "agencyComponent": [{**prologue("apd.example.gov", at), "organizationIdentification": "apd.example.gov",
                             "agencyRoleDescriptionRegistryText": ["Dispatch"], "agencyType": ["police"]}],
        "agentComponent": [
            {**prologue("calltaker.lee@apd.example.gov", at), "agentIdentification": "calltaker.lee@apd.example.gov",
             "agentRoleRegistryText": ["Call Taking"]},
            {**prologue("officer.ruiz@apd.example.gov", at), "agentIdentification": "officer.ruiz@apd.example.gov",
             "agentRoleRegistryText": ["Responder"], "agencyReference": {"$ref": "apd.example.gov"}}],
        "personInformationComponent": [
            {**prologue(f"{tracking}:person:caller", at), "personIncidentRoleRegistryText": ["Caller"],
             "ncPersonComponent": {"name": [{"givenName": ["Morgan"], "surName": ["Neighbor"]}]}},
            {**prologue(f"{tracking}:person:1", at), "personIncidentRoleRegistryText": list(person_roles),
             "ncPersonComponent": {"name": [{"givenName": [{"value": names[0]}], "surName": [names[1]]}],
                                   "birthDate": [{"date": birth}], "sexCode": ["M"]}}],
        "locationInformationComponent": [
            {**prologue(f"{tracking}:location:0", at), "locationTypeDescriptionRegistryText": "IncidentLocation",
             "locationByValue": location},
            {**prologue(f"{tracking}:location:1", at), "locationTypeDescriptionRegistryText": "Caller",
             "locationByValue": POINT}],
        "@context": {"@vocab": "./JSON-LD_Contexts/EmergencyIncidentDataObjectType.jsonld"},
    }


def moved(document: dict, at: datetime, civic_street: str = "Copper") -> dict:
    """The same incident, updated: the person has moved (a new incident location)."""
    update = copy.deepcopy(document)
    update["reasonForIssueRegistryText"] = "IncidentUpdated"
    update["lastUpdateTimeStamp"] = at.isoformat().replace("+00:00", "Z")
    update["locationInformationComponent"][0]["locationByValue"] = PIDF.replace("Central", civic_street)
    update["locationInformationComponent"][0]["lastUpdateTimeStamp"] = update["lastUpdateTimeStamp"]
    return update


def with_children(document: dict, at: datetime) -> dict:
    """The same incident with a child at the scene (role Child), and a second incident component of the
    same call: a domestic disturbance (DV) with another child, a witness."""
    tracking = document["incidentTrackingIdentifier"]
    both = copy.deepcopy(document)
    first = both["incidentComponent"][0]
    first["personReference"].append({"$ref": f"{tracking}:person:child-1"})
    second = {**prologue(f"{tracking}:incident:1", at), "incidentTypeInternalCode": "DV",
              "incidentTypeInternalText": "DOMESTIC DISTURBANCE", "personReference": [{"$ref": f"{tracking}:person:child-2"}],
              "locationReference": [{"$ref": f"{tracking}:location:0"}]}
    both["incidentComponent"].append(second)
    for n, role, (given, family), born in ((1, "Child", ("Philippa", "Quackenbush"), "2016-09-02"),
                                           (2, "Witness", ("Ottoline", "Quill"), "2018-05-05")):
        both["personInformationComponent"].append({
            **prologue(f"{tracking}:person:child-{n}", at), "personIncidentRoleRegistryText": [role],
            "ncPersonComponent": {"name": [{"givenName": [given], "surName": [family]}], "birthDate": [{"date": born}]}})
    return both


def call_transfer(at: datetime) -> dict:
    """A call handed from one PSAP to another: call, callback, agency, agent and person; no incident."""
    call_id = "urn:emergency:uid:callid:91bd:psap.abq.example.gov"
    return {
        "$id": "urn:emergency:uid:incidentid:91bd:psap.abq.example.gov", "lastUpdateTimeStamp": at.isoformat(),
        "eidoVersion": "1.0", "issuingElementIdentification": "idx.abq.example.gov",
        "callComponent": [{**prologue(call_id, at), "queueIdentifier": "sos@psap.example.gov",
                           "standardPrimaryCallType": "emergency", "direction": "incoming",
                           "callBackReference": {"$ref": "cb-1"}, "personReference": [{"$ref": "person-caller"}]}],
        "callbackComponent": [{**prologue("cb-1", at), "callBackInformationUri": ["tel:+15055550188"]}],
        "agencyComponent": [{**prologue("psap.abq.example.gov", at), "agencyType": ["psap"]}],
        "agentComponent": [{**prologue("lee@psap.abq.example.gov", at), "agentRoleRegistryText": ["Call Taking"]}],
        "personComponent": [{**prologue("person-caller", at), "personIncidentRoleRegistryText": ["Caller"],
                             "callIdentifier": [call_id]}],
    }
