"""Whatever NENA-STA-021 allows, Handoff reads: EIDO documents generated from the standard's schema
(``eido_standard.EIDO_SCHEMA``) by a generator we did not write (schemathesis, from the schema published as an
OpenAPI request body) are each valid under the schema, read without a refusal (an incident, or "nothing to map"),
and mapped through an agency's call-type table without an error."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import schemathesis
from hypothesis import HealthCheck, given, settings

from services.cad_gateway.domain.calls import map_calls
from services.cad_gateway.domain.eido import NothingToMap, check_eido, read_eido
from services.cad_gateway.domain.eido_standard import EIDO_SCHEMA
from services.kernel.errors import Rejected
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from tests.factories import NOW

REF = load_reference_data(REPO_ROOT / "config" / "local")
EARLIEST, LATEST = datetime(1, 3, 1, tzinfo=UTC), datetime(9999, 11, 1, tzinfo=UTC)


def _at_most(schema: object, items: int) -> None:
    """Every array in ``schema`` bounded to ``items`` (in place): documents of a size a CAD sends, made quickly."""
    if isinstance(schema, dict):
        if schema.get("type") == "array":
            schema["maxItems"] = items
        for value in schema.values():
            _at_most(value, items)
    elif isinstance(schema, list):
        for value in schema:
            _at_most(value, items)


def as_request_body(schema: dict, required: tuple[str, ...] = (), items: int = 3) -> schemathesis.BaseSchema:
    """The schema as an OpenAPI 3.1 request body (its ``$defs`` as components), its arrays bounded, optionally with
    more of the root's elements required: a narrower schema, so every document it makes is valid under the
    standard's too (``check_eido`` says so of each)."""
    parts = json.loads(json.dumps({"defs": schema["$defs"], "root": {
        k: v for k, v in schema.items() if k not in ("$defs", "$schema", "$id")}}).replace(
        '"#/$defs/', '"#/components/schemas/'))
    _at_most(parts, items)
    root = copy.deepcopy(parts["root"])
    if required:
        root["allOf"][1]["required"] = [*root["allOf"][1]["required"], *required]
    return schemathesis.openapi.from_dict({
        "openapi": "3.1.0", "info": {"title": "NENA-STA-021 EIDO", "version": "1.0"},
        "paths": {"/eido": {"post": {
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/EmergencyIncidentDataObject"}}}},
            "responses": {"200": {"description": "read"}}}}},
        "components": {"schemas": {**parts["defs"], "EmergencyIncidentDataObject": root}}})


ANY_EIDO = as_request_body(EIDO_SCHEMA)["/eido"]["POST"].as_strategy()
AN_INCIDENT_WITH_PERSONS = as_request_body(
    EIDO_SCHEMA, ("incidentComponent", "personComponent", "locationComponent", "agentComponent"))["/eido"]["POST"]


def read_and_mapped(document: dict) -> None:
    check_eido(document)  # the generator's document is valid under the standard (else this test is wrong)
    try:
        calls = read_eido(document)
    except NothingToMap:
        assert "incidentComponent" not in document
        return
    at = calls[0].occurred_at
    now = at if EARLIEST < at < LATEST else NOW  # as if it happened just now, where "now" can be
    for agency in REF.agencies.values():
        try:
            mapped = map_calls(calls, agency, REF.sites, now)
        except Rejected as refused:  # Handoff's window on event times, not the standard
            assert refused.field == "occurred_at" and now is NOW
            continue
        assert mapped.events or mapped.skipped  # every incident becomes events, or reasons


@given(ANY_EIDO)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_document_the_standard_allows_is_read_or_is_nothing_to_map(case) -> None:
    read_and_mapped(case.body)


@given(AN_INCIDENT_WITH_PERSONS.as_strategy())
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_incident_with_persons_the_standard_allows_is_read_and_mapped(case) -> None:
    read_and_mapped(case.body)
