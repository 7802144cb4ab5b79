"""NENA-STA-021 EIDO JSON as a JSON Schema (draft 2020-12), written for Handoff from the standard's text: the
021.1b release and the current draft, which share every structure here. What a CAD sends is checked against it
before anything is read, so a document that is not an EIDO is refused naming the JSON path of what is wrong, and
one that is an EIDO is read (``eido.read_eido`` accepts everything this accepts: a property test says so).

Written out in full where Handoff reads (the root, the incident, persons, locations, agents, agencies,
dispositions), every other component by its prologue. Components allow elements not named here, as the
standard's do (extensions, elements a later draft adds). NIEM values (a person's names, birth date, sex) are
arrays of objects holding ``value``, as the standard's NIEM components define them; a single object, or text, is
accepted too, as CAD exports write them.
"""

from __future__ import annotations

from typing import Any

EIDO_VERSIONS = ("1.0",)  # eidoVersion in 021.1b and the current draft


def _component(*required: str, **elements: Any) -> dict[str, Any]:
    """A data component: the prologue every component begins with, and its own elements."""
    own: dict[str, Any] = {"type": "object", "properties": elements}
    if required:
        own["required"] = list(required)
    return {"allOf": [{"$ref": "#/$defs/prologue"}, own]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _array_of(item: dict[str, Any], **bounds: int) -> dict[str, Any]:
    return {"type": "array", "items": item, **bounds}


TEXT = {"type": "string"}
TEXTS = _array_of(TEXT)
REFERENCES = _array_of(_ref("reference"))

EIDO_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://handoff.example/schemas/nena-sta-021-eido.json",
    "title": "NENA-STA-021 Emergency Incident Data Object (the parts Handoff reads, in full)",
    "$defs": {
        "reference": {"type": "object", "required": ["$ref"], "properties": {"$ref": TEXT}},
        "timestamp": {"type": "string", "format": "date-time"},
        "prologue": {
            "type": "object", "required": ["$id", "lastUpdateTimeStamp", "updatedByAgencyReference"],
            "properties": {"$id": TEXT, "lastUpdateTimeStamp": _ref("timestamp"),
                           "updatedByAgencyReference": _ref("reference"), "updatedByAgentReference": _ref("reference"),
                           "AlternateValueReferences": REFERENCES, "externalInformationSourceReferences": REFERENCES,
                           "mediaReferences": REFERENCES}},
        # NIEM: a property is an array of objects holding ``value`` (niem-xs); one object, or text, is read too.
        "niemValue": {"anyOf": [TEXT, {"type": "object", "properties": {"value": TEXT}}]},
        "niemValues": {"anyOf": [_ref("niemValue"), _array_of(_ref("niemValue"))]},
        "niemDate": {"type": "object", "properties": {"date": _ref("niemValues")}},
        "niemPersonName": {"type": "object", "properties": {
            "personGivenName": _ref("niemValues"), "personMiddleName": _ref("niemValues"),
            "personSurName": _ref("niemValues"), "personFullName": _ref("niemValues")}},
        "niemPerson": {"type": "object", "properties": {
            "name": {"anyOf": [_ref("niemPersonName"), _array_of(_ref("niemPersonName"))]},
            "birthDate": {"anyOf": [_ref("niemDate"), _array_of(_ref("niemDate"))]},
            "sexCode": _ref("niemValues"), "sex": _ref("niemValues")}},
        "person": _component("personIncidentRoleRegistryText", ncPersonComponent=_ref("niemPerson"),
                             personIncidentRoleRegistryText=TEXTS, callIdentifier=TEXTS,
                             locationReference=REFERENCES, notesReference=REFERENCES,
                             additionalDataReference=REFERENCES),
        "location": _component("locationTypeDescriptionRegistryText", locationTypeDescriptionRegistryText=TEXT,
                               locationByValue=TEXT, locationByReferenceUrl=TEXT, locationDescriptionText=TEXT,
                               crossStreetByValue=TEXTS, intersectingStreetByValue=TEXTS, cellTowerSectorId=TEXT,
                               localIdentifier=TEXTS, notesReference=REFERENCES),
        "agent": _component("agentRoleRegistryText", "agencyReference", agentJcard=TEXT,
                            agentWorkstationPositionIdentification=TEXT, agentRoleRegistryText=TEXTS,
                            agencyReference=_ref("reference"), notesReference=REFERENCES),
        "agency": _component("agencyRoleDescriptionRegistryText", "agencyType", agencyJcard=TEXT,
                             agencyRoleDescriptionRegistryText=TEXTS, agencyType=TEXTS,
                             incidentOwningAgencyIndicator={"type": "boolean"}, notesReference=REFERENCES),
        "disposition": _component("dispositionCommonRegistryCode", dispositionCommonRegistryCode=TEXT,
                                  dispositionPrimaryIndicator={"type": "boolean"}, dispositionCategoryText=TEXT,
                                  dispositionDescriptionText=TEXT, notesReference=REFERENCES),
        "incident": _component("incidentTypeCommonRegistryText", incidentTypeInternalCode=TEXT,
                               incidentTypeInternalText=TEXT, incidentTypeCommonRegistryText=TEXT,
                               incidentStatusInternalText=TEXTS, incidentStatusCommonRegistryText=TEXTS,
                               internalIncidentId=TEXT, agentReference=REFERENCES, locationReference=REFERENCES,
                               personReference=REFERENCES, organizationReference=REFERENCES,
                               vehicleReference=REFERENCES, incidentPriorityInternalText=TEXT,
                               incidentCommonPriorityNumber={"type": "integer"}, beatOrDispatchGroupText=TEXT,
                               dispositionComponent=_array_of(_ref("disposition")), notesReference=REFERENCES),
        "component": _component(),  # every other kind, by its prologue
    },
    "allOf": [_ref("prologue"), {
        "type": "object",
        "required": ["eidoVersion", "issuingElementIdentification", "agencyComponent"],
        "properties": {
            "eidoVersion": {"enum": list(EIDO_VERSIONS)},
            "eidoExtensionId": TEXTS,
            "issuingElementIdentification": TEXT,
            "incidentComponent": _ref("incident"),  # one incident per EIDO
            "personComponent": _array_of(_ref("person")),
            "locationComponent": _array_of(_ref("location")),
            "agentComponent": _array_of(_ref("agent")),
            "agencyComponent": _array_of(_ref("agency")),
            **{name: _array_of(_ref("component")) for name in (
                "mergeComponent", "linkComponent", "callComponent", "callbackComponent", "dispatchComponent",
                "notesComponent", "emergencyResourceComponent", "alarmsSensorsComponent", "additionalDataComponent",
                "vehicleComponent", "cautionComponent", "mediaComponent", "sharedCommunicationResourceComponent",
                "externalInformationSourceComponent")},
            "@context": {"type": "object"},
        },
    }],
}
