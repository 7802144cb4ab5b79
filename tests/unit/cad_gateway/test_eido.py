"""NENA EIDO into Handoff: components found by ``$id``, persons by their incident role, the place from
PIDF-LO, the agency's call-type table deciding what a call becomes; an update maps to the same ids;
a call transfer is "nothing to map", never an error; hostile XML expands nothing."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.cad_gateway.domain.calls import event_id_for, map_calls
from services.cad_gateway.domain.eido import NothingToMap, check_eido, read_eido
from services.kernel.cad import CadChildEncountered, CadOverdoseResponded, CadReferralMade
from services.kernel.clock import FakeClock
from services.kernel.errors import Rejected
from services.kernel.events import (
    ReferralType,
)
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from tests.eido_documents import TRACKING, call_transfer, eido, moved, person, with_children
from tests.factories import NOW

REF = load_reference_data(REPO_ROOT / "config" / "local")
APD = REF.agencies["apd"]
AT = NOW - timedelta(minutes=20)
TOKEN = {"Authorization": "Bearer local-dev-token-apd"}


def mapped(document: dict):
    return map_calls(read_eido(document), APD, REF.sites, NOW)


def test_a_diverted_disturbance_becomes_a_lead_referral_of_the_subject_only() -> None:
    [(kind, key, referral)] = mapped(eido(AT)).events
    assert kind == "referral" and isinstance(referral, CadReferralMade)
    assert key == event_id_for(TRACKING, f"{TRACKING}:person:1")  # the call's id and the person's component
    assert (referral.person.first_name, referral.person.last_name, str(referral.person.date_of_birth)) == (
        "Sam", "Example", "1987-03-14")  # not the caller
    assert referral.referral_type is ReferralType.social_contact and referral.site_id == "abq"
    assert referral.location.description == "600 Central Ave SW, Albuquerque, NM"
    assert (referral.location.latitude, referral.location.longitude) == (35.0844, -106.6504)
    assert referral.officer.name == "Officer Dana Ruiz"  # the responder's jCard, not the call taker's
    assert referral.officer.callback_phone == "+15055550100"  # the agency's dispatch desk
    assert referral.occurred_at == AT


def test_the_call_type_table_decides_overdose_child_or_nothing() -> None:
    [(kind, _, overdose)] = mapped(eido(AT, "OD", ("NARCAN",), person_roles=("Patient",))).events
    assert kind == "overdose" and isinstance(overdose, CadOverdoseResponded)
    assert overdose.naloxone_given and not overdose.fatal and overdose.age_range == "35-44"
    assert overdose.sex.value == "male" and overdose.person.last_name == "Example"
    [(_, _, fatal)] = mapped(eido(AT, "OD", ("DOA",), person_roles=("Patient",))).events
    assert fatal.fatal
    [(kind, _, child)] = mapped(eido(AT, "DV", (), person_roles=("Witness",), birth="2016-09-02")).events
    assert kind == "child_encountered" and isinstance(child, CadChildEncountered) and child.school_id is None
    assert mapped(eido(AT, "DV", (), person_roles=("Witness",))).events == []  # an adult witness: not HWC's
    plain = mapped(eido(AT, "415", ("GOA",)))
    assert plain.nothing and "ignored by the agency's call-type table" in plain.skipped[0]
    unknown = mapped(eido(AT, "BURGLARY", ()))
    assert unknown.nothing and "not in the agency's call-type table" in unknown.skipped[0]


def test_an_update_of_the_same_incident_maps_to_the_same_ids_with_the_new_place() -> None:
    first = mapped(eido(AT)).events[0]
    update = mapped(moved(eido(AT), AT + timedelta(minutes=5))).events[0]
    assert update[1] == first[1]
    assert update[2].location.description == "600 Copper Ave SW, Albuquerque, NM"


def test_a_call_transfer_with_no_incident_is_nothing_to_map() -> None:
    with pytest.raises(NothingToMap, match="no incidentComponent"):
        read_eido(call_transfer(AT))


def _without(document: dict, *path) -> dict:
    changed = copy.deepcopy(document)
    *steps, last = path
    target = changed
    for step in steps:
        target = target[step]
    del target[last]
    return changed


def _with(document: dict, value, *path) -> dict:
    changed = copy.deepcopy(document)
    *steps, last = path
    target = changed
    for step in steps:
        target = target[step]
    target[last] = value
    return changed


@pytest.mark.parametrize("document, path, why", [
    ([], "$", "JSON object"),
    (_with(eido(AT), [eido(AT)["incidentComponent"]], "incidentComponent"), "$.incidentComponent",
     "must be of type 'object'"),  # one incident per EIDO, not a list of them
    (_without(eido(AT), "updatedByAgencyReference"), "$", "'updatedByAgencyReference' is a required property"),
    (_without(eido(AT), "agentComponent", 1, "agencyReference"), "$.agentComponent[1]",
     "'agencyReference' is a required property"),
    (_with(eido(AT), "2026-11-20T15:00:00", "incidentComponent", "lastUpdateTimeStamp"),
     "$.incidentComponent.lastUpdateTimeStamp", "must be a date-time"),  # no offset from UTC
    (_with(eido(AT), "2.0", "eidoVersion"), "$.eidoVersion", "must be one of ['1.0']"),
    (_with(eido(AT), [{"ref": "x"}], "incidentComponent", "personReference"), "$.incidentComponent.personReference[0]",
     "'$ref' is a required property"),
    (_with(eido(AT), [eido(AT)["personComponent"][1] | {"personInformationComponent": 1}], "personInformationComponent"),
     None, None),  # a name the standard does not have is only an extension: allowed, and not read
])
def test_an_eido_the_standard_does_not_allow_is_refused_naming_the_json_path(document, path, why) -> None:
    if path is None:
        check_eido(document)
        return
    with pytest.raises(Rejected) as refused:
        read_eido(document)
    assert refused.value.field == path and why in refused.value.detail
    assert "Sam" not in refused.value.detail and "Ruiz" not in refused.value.detail  # rules, never values


def test_a_refusal_never_repeats_a_value_it_was_sent() -> None:
    document = eido(AT)
    document["personComponent"][1]["personIncidentRoleRegistryText"] = "Sam Example, 1987-03-14"
    with pytest.raises(Rejected) as refused:
        read_eido(document)
    assert refused.value.field == "$.personComponent[1].personIncidentRoleRegistryText"
    assert refused.value.detail == "not valid under NENA-STA-021: must be of type 'array'"


def test_every_test_document_is_valid_under_the_standard() -> None:
    demo = json.loads((REPO_ROOT / "config" / "local" / "demo" / "eido.json").read_text().replace(
        "__NOW__", "2026-11-20T15:00:00Z"))
    draft = eido(AT)  # elements the current draft adds to 021.1b: alternate values, media, an extension
    draft["incidentComponent"]["AlternateValueReferences"] = [{"$ref": f"{TRACKING}:alternate:0"}]
    draft["eidoExtensionId"] = ["urn:example:handoff-test"]
    draft["mediaComponent"] = [{**draft["locationComponent"][0], "$id": f"{TRACKING}:media:0",
                                "uri": "https://cad.example.gov/media/1", "contentType": "image/jpeg"}]
    for document in (eido(AT), moved(eido(AT), AT), with_children(eido(AT), AT), call_transfer(AT), demo, draft,
                     eido(AT, "OD", ("NARCAN",), person_roles=("Patient",))):
        check_eido(document)
    assert [c.call_id for c in read_eido(draft)] == [TRACKING]


def test_a_person_named_only_by_a_full_name_or_in_plain_text_is_still_read() -> None:
    document = eido(AT)
    document["personComponent"][1]["ncPersonComponent"] = {"name": {"personFullName": "Sam Q Example"},
                                                           "birthDate": {"date": "1987-03-14"}}
    [call] = read_eido(document)
    subject = call.persons[1]
    assert (subject.first_name, subject.last_name, str(subject.date_of_birth)) == ("Sam Q", "Example", "1987-03-14")


def test_hostile_xml_in_a_location_expands_nothing() -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            '<presence xmlns="urn:ietf:params:xml:ns:pidf"><A3>&lol2;</A3></presence>')
    external = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                '<presence xmlns="urn:ietf:params:xml:ns:pidf"><A3>&xxe;</A3></presence>')
    for xml in (bomb, external, "<not xml"):
        [call] = read_eido(eido(AT, location=xml))
        assert call.location_text is None  # the caller's point is still there
        assert (call.latitude, call.longitude) == (35.0844, -106.6504)


@pytest.fixture
async def client(memory_settings):
    publisher = InMemoryPublisher()
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    app = runtime.build_http_app(settings, publisher=publisher, clock=FakeClock(NOW), follow_topics=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        c.publisher = publisher
        yield c


async def test_the_endpoint_answers_what_the_call_became_and_never_a_500(client) -> None:
    answer = await client.post("/v1/eido", json=eido(AT), headers=TOKEN)
    assert answer.status_code == 202 and answer.json()["events"] == [
        {"kind": "referral", "id": event_id_for(TRACKING, f"{TRACKING}:person:1")}]
    [record] = client.publisher.records
    assert record.topic == "handoff.cad.referrals" and "Sam" not in answer.text
    transfer = await client.post("/v1/eido", json=call_transfer(AT), headers=TOKEN)
    assert transfer.status_code == 200 and transfer.json()["status"] == "nothing_to_map"
    ignored = await client.post("/v1/eido", json=eido(AT, "415", ("GOA",)), headers=TOKEN)
    assert ignored.status_code == 200 and ignored.json()["status"] == "nothing_to_map"
    for bad in ([1, 2], "text", {"incidentComponent": {}}):
        refused = await client.post("/v1/eido", json=bad, headers=TOKEN)
        assert refused.status_code in (400, 422), refused.text
    late = await client.post("/v1/eido", json=eido(NOW - timedelta(days=90)), headers=TOKEN)
    assert late.status_code == 422 and "occurred_at" in late.text
    assert (await client.post("/v1/eido", json=eido(AT))).status_code == 401
    assert [r.topic for r in client.publisher.records] == ["handoff.cad.referrals", "handoff.ops.audit"]


def test_every_person_and_incident_becomes_an_event_or_a_reason() -> None:
    """A LEAD incident with two children at the scene: the referral, a Handle With Care encounter for each child,
    and the caller named as left out, with why."""
    result = mapped(with_children(eido(AT), AT))
    kinds = {key: kind for kind, key, _ in result.events}
    assert kinds == {event_id_for(TRACKING, f"{TRACKING}:person:1"): "referral",
                     event_id_for(TRACKING, f"{TRACKING}:person:child-1"): "child_encountered",
                     event_id_for(TRACKING, f"{TRACKING}:person:child-2"): "child_encountered"}
    children = [e for kind, _, e in result.events if kind == "child_encountered"]
    assert {c.child.first_name for c in children} == {"Philippa", "Ottoline"}
    assert result.skipped == [f"person {TRACKING}:person:caller (Caller): role not one of "
                              "['involved', 'subject', 'suspect'] for a referral"]
    assert not any("Philippa" in s or "Morgan" in s for s in result.skipped)  # ids and roles, never names

    quiet = APD.model_copy(update={"call_types": [r.model_copy(update={"children_get_handle_with_care": False})
                                                  for r in APD.call_types]})
    without = map_calls(read_eido(with_children(eido(AT), AT)), quiet, REF.sites, NOW)
    assert [kind for kind, *_ in without.events] == ["referral"]
    assert any(f"{TRACKING}:person:child-1 (Child): a referral call" in s and "children_get_handle_with_care" in s
               for s in without.skipped)


def test_persons_no_incident_refers_to_and_adults_in_a_childs_role_are_named_as_left_out() -> None:
    document = with_children(eido(AT), AT)
    document["personComponent"].append(person("stray", AT, ("Caller",)))
    document["personComponent"][3]["ncPersonComponent"]["birthDate"] = [{"date": [{"value": "1990-01-01"}]}]
    result = mapped(document)
    assert "person stray (Caller): no incident component refers to this person" in result.skipped
    assert f"person {TRACKING}:person:child-2 (Witness): 18 or over: not a child for Handle With Care" in result.skipped
    ignored = mapped(eido(AT, "415", ("GOA",)))
    assert ignored.nothing and len(ignored.skipped) == 3  # the incident, and each of its two persons


def test_an_incident_referring_to_a_person_the_document_does_not_hold_is_answered_naming_it() -> None:
    """Valid under the standard, but its subject is listed under a name the standard does not have: the answer says
    which reference found nothing, not just that nothing mapped."""
    document = eido(AT)
    document["personInformationComponent"] = [document["personComponent"].pop(1)]
    result = mapped(document)
    assert result.nothing
    assert f"person {TRACKING}:person:1: the incident refers to it, and the document holds no such component" \
        in result.skipped
