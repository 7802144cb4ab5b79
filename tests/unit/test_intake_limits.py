"""The HTTP intake off the happy path: bodies too large (413), wrong content type (415), not JSON
(400, saying where), impossible values (422 naming the field), control characters, unknown
encounter fields, and a reused CAD event id with another body (409)."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.kernel.cad import CadChildEncountered, CadReferralMade
from services.kernel.clock import FakeClock
from services.messaging.kafka import InMemoryPublisher
from services.platform.settings import REPO_ROOT
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.model import open_referral
from tests.factories import DEMO_NOW

DEMO = REPO_ROOT / "config" / "local" / "demo"
APD = {"Authorization": "Bearer local-dev-token-apd"}
JSON = {**APD, "Content-Type": "application/json"}


def referral(**changes) -> dict:
    return {**json.loads((DEMO / "referral.json").read_text()), **changes}


def encounter(**changes) -> dict:
    return {**json.loads((DEMO / "child-encounter.json").read_text()), **changes}


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
def read_model() -> LeadReadModel:
    return LeadReadModel()


@pytest.fixture
async def client(memory_settings, publisher, read_model):
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    app = runtime.build_http_app(settings, publisher=publisher, clock=FakeClock(DEMO_NOW), read_model=read_model,
                                 follow_topics=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def only_error(resp) -> dict:
    [error] = resp.json()["errors"]
    return error


async def test_a_million_character_narrative_is_413_not_503(client, publisher) -> None:
    body = encounter(incident={"narrative": "n" * 1_000_000})
    resp = await client.post("/v1/child-encounters", json=body, headers=APD)
    assert resp.status_code == 413
    assert only_error(resp) == {"field": "body", "reason": "larger than 65536 bytes"}
    assert publisher.records == []


async def test_a_streamed_body_without_length_is_cut_off_at_the_limit(client) -> None:
    async def chunks():
        yield b'{"narrative": "'
        for _ in range(100):
            yield b"x" * 1000

    resp = await client.post("/v1/child-encounters", content=chunks(), headers=JSON)
    assert resp.status_code == 413


async def test_every_free_text_field_has_a_limit(client, publisher) -> None:
    body = encounter(incident={"narrative": "n" * 5000, "other_people": ["p"] * 51, "address": "a" * 501})
    resp = await client.post("/v1/child-encounters", json=body, headers=APD)
    assert resp.status_code == 422
    assert {e["field"] for e in resp.json()["errors"]} == {"incident.narrative", "incident.other_people",
                                                          "incident.address"}
    assert publisher.records == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_another_content_type_is_415(client, content_type) -> None:
    headers = {**APD, **({"Content-Type": content_type} if content_type else {})}
    resp = await client.post("/v1/referrals", content=json.dumps(referral()), headers=headers)
    assert resp.status_code == 415
    assert only_error(resp)["field"] == "content-type"


async def test_malformed_json_is_400_and_says_where_in_words(client) -> None:
    resp = await client.post("/v1/referrals", content=b'{\n  "cad_event_id": "X",\n  oops\n}', headers=JSON)
    assert resp.status_code == 400
    error = only_error(resp)
    assert error["field"] == "body"
    assert error["reason"].startswith("malformed JSON at line 3, column 3")


@pytest.mark.parametrize("content", [b"[" * 5000 + b"]" * 5000, b'{"cad_event_id": "\xc3\x28"}'],
                         ids=["nested too deep", "not UTF-8"])
async def test_unreadable_json_is_400(client, content) -> None:
    resp = await client.post("/v1/referrals", content=content, headers=JSON)
    assert resp.status_code == 400 and only_error(resp)["field"] == "body"


@pytest.mark.parametrize("field, value", [
    ("occurred_at", "2099-01-01T10:00:00Z"),
    ("occurred_at", "1990-01-01T10:00:00Z"),
    ("occurred_at", 1763680920),
    ("person", {"first_name": "Sam", "last_name": "Example", "date_of_birth": "2030-01-01"}),
    ("person", {"first_name": "Sam", "last_name": "Example", "date_of_birth": "1850-01-01"}),
])
async def test_impossible_referral_values_are_422(client, publisher, field, value) -> None:
    resp = await client.post("/v1/referrals", json=referral(**{field: value}), headers=APD)
    assert resp.status_code == 422
    assert only_error(resp)["field"].startswith(field)
    assert publisher.records == []


@pytest.mark.parametrize("changes, field", [
    ({"encountered_at": "2016-10-01T10:00:00Z"}, "encountered_at"),
    ({"encountered_at": "2027-06-01T10:00:00Z"}, "encountered_at"),
    ({"encountered_at": 0}, "encountered_at"),
    ({"home_educated": "yes"}, "home_educated"),
    ({"home_educated": 1}, "home_educated"),
])
async def test_impossible_encounter_values_are_422(client, publisher, changes, field) -> None:
    resp = await client.post("/v1/child-encounters", json=encounter(**changes), headers=APD)
    assert resp.status_code == 422
    assert only_error(resp)["field"] == field
    assert publisher.records == []


async def test_a_child_born_after_the_encounter_or_too_old_is_422(client) -> None:
    for born in ("2027-01-01", "1990-01-01"):
        child = {**encounter()["child"], "date_of_birth": born}
        resp = await client.post("/v1/child-encounters", json=encounter(child=child), headers=APD)
        assert resp.status_code == 422
        assert only_error(resp)["field"] == "child.date_of_birth"


async def test_a_school_and_home_education_together_is_422_naming_both(client, publisher) -> None:
    resp = await client.post("/v1/child-encounters", json=encounter(home_educated=True), headers=APD)
    assert resp.status_code == 422
    reason = only_error(resp)["reason"]
    assert "school_id" in reason and "home_educated" in reason
    assert publisher.records == []


async def test_control_characters_never_reach_what_is_published(client, publisher) -> None:
    person = {"first_name": "Sam\u202e", "last_name": "Ex\x00am\x07ple",
              "description": "red parka\u2028grey backpack\x1b[2J"}
    resp = await client.post("/v1/referrals", json=referral(person=person), headers=APD)
    assert resp.status_code == 202
    [record] = publisher.records
    assert record.event.person.first_name == "Sam"
    assert record.event.person.last_name == "Example"
    assert record.event.person.description == "red parka\ngrey backpack[2J"


async def test_unknown_encounter_fields_are_dropped_and_named_not_refused(client, publisher) -> None:
    body = encounter(weapon="knife", incident={**encounter()["incident"], "victim": "someone"})
    resp = await client.post("/v1/child-encounters", json=body, headers=APD)
    assert resp.status_code == 202
    assert resp.json()["ignored_fields"] == ["incident.victim", "weapon"]
    [record] = publisher.records
    assert isinstance(record.event, CadChildEncountered)
    assert "knife" not in record.event.model_dump_json() and "someone" not in record.event.model_dump_json()


async def test_a_reused_cad_event_id_with_another_body_is_409(client, publisher, read_model) -> None:
    from services.platform.reference_files import load_reference_data

    ref = load_reference_data(REPO_ROOT / "config" / "local")
    first = CadReferralMade.model_validate(referral())
    read_model.apply(open_referral(first, ref.sites["abq"], ref.agencies["apd"], DEMO_NOW))

    same = await client.post("/v1/referrals", json=referral(), headers=APD)
    assert same.status_code == 202 and same.json()["duplicate"] is True
    changed = referral(location={"description": "another corner"})
    resp = await client.post("/v1/referrals", json=changed, headers=APD)
    assert resp.status_code == 409
    assert only_error(resp)["field"] == "cad_event_id"
    assert len(publisher.records) == 1  # the retry went through (it dedups downstream); the changed one did not


async def test_the_time_window_follows_the_clock(memory_settings, publisher) -> None:
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"), "intake_max_age_days": 1})
    app = runtime.build_http_app(settings, publisher=publisher, clock=FakeClock(DEMO_NOW + timedelta(days=2)),
                                 follow_topics=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.post("/v1/referrals", json=referral(), headers=APD)
    assert resp.status_code == 422
    assert only_error(resp) == {"field": "occurred_at", "reason": "more than 1 days before now"}
