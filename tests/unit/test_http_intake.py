"""The HTTP intake's answers: 202, 401, 403, 422 naming fields (never values), 503 with Retry-After."""

from __future__ import annotations

import json

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from services import runtime
from services.kernel.cad import CadChildEncountered, CadReferralMade
from services.kernel.clock import FakeClock
from services.messaging.kafka import InMemoryPublisher
from services.platform.settings import REPO_ROOT
from services.web.events import AccessAudited, AccessEvent
from tests.factories import DEMO_NOW

DEMO = REPO_ROOT / "config" / "local" / "demo"
APD = {"Authorization": "Bearer local-dev-token-apd"}


def referral(**changes) -> dict:
    return {**json.loads((DEMO / "referral.json").read_text()), **changes}


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
async def client(memory_settings, publisher):
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    app = runtime.build_http_app(settings, publisher=publisher, clock=FakeClock(DEMO_NOW), follow_topics=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_valid_referral_is_published_and_answered_with_its_referral_id(client, publisher) -> None:
    first = await client.post("/v1/referrals", json=referral(), headers=APD)
    again = await client.post("/v1/referrals", json=referral(), headers=APD)
    assert first.status_code == again.status_code == 202
    assert first.json()["referral_id"] == again.json()["referral_id"]
    [record, _] = publisher.records
    assert record.topic == "handoff.cad.referrals" and record.key == "DEMO-2026-000123"
    assert isinstance(record.event, CadReferralMade)
    assert dict(record.headers)["correlation_id"].decode() == first.json()["correlation_id"]


async def test_child_encounter_is_published(client, publisher) -> None:
    body = json.loads((DEMO / "child-encounter.json").read_text())
    resp = await client.post("/v1/child-encounters", json=body, headers=APD)
    assert resp.status_code == 202
    assert isinstance(publisher.records[0].event, CadChildEncountered)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
async def test_missing_or_wrong_token_is_401(client, publisher, headers) -> None:
    resp = await client.post("/v1/referrals", json=referral(), headers=headers)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert resp.json()["errors"][0]["field"] == "authorization"
    [audited] = publisher.events(AccessAudited)  # CJIS 5.4.1.1: a refused access is audited, and nothing else happens
    assert (audited.event_type, audited.component, audited.success) == (AccessEvent.access_denied, "api", False)
    assert audited.reason == "POST /v1/referrals: a valid bearer token of an agency is required"
    assert [r.topic for r in publisher.records] == ["handoff.ops.audit"]


async def test_agency_cannot_submit_as_another_agency_or_for_another_site(client) -> None:
    other_agency = await client.post("/v1/referrals", json=referral(agency_id="sfpd"), headers=APD)
    assert other_agency.status_code == 403 and other_agency.json()["errors"][0]["field"] == "agency_id"
    sfpd = {"Authorization": "Bearer local-dev-token-sfpd"}
    other_site = await client.post("/v1/referrals", json=referral(agency_id="sfpd", site_id="abq"), headers=sfpd)
    assert other_site.status_code == 403 and other_site.json()["errors"][0]["field"] == "site_id"


async def test_route_the_site_does_not_accept_is_422(client) -> None:
    sfpd = {"Authorization": "Bearer local-dev-token-sfpd"}
    resp = await client.post("/v1/referrals", json=referral(agency_id="sfpd", site_id="santa-fe",
                                                             referral_type="community"), headers=sfpd)
    assert resp.status_code == 422
    assert resp.json()["errors"] == [{"field": "referral_type", "reason": "site 'santa-fe' does not accept community referrals"}]


async def test_field_errors_name_each_field_and_never_echo_values(client, publisher) -> None:
    body = referral(referral_type="jaywalking", person={"first_name": "", "last_name": "Zyxwvutsrq"},
                    occurred_at="yesterday-ish", unexpected="Qwertyuiop")
    resp = await client.post("/v1/referrals", json=body, headers=APD)
    assert resp.status_code == 422
    fields = {e["field"] for e in resp.json()["errors"]}
    assert {"referral_type", "person.first_name", "occurred_at", "unexpected"} <= fields
    assert all(e["reason"] for e in resp.json()["errors"])
    for value in ("jaywalking", "Zyxwvutsrq", "yesterday-ish", "Qwertyuiop"):
        assert value not in resp.text
    assert publisher.records == []


async def test_naive_timestamp_is_refused(client) -> None:
    resp = await client.post("/v1/referrals", json=referral(occurred_at="2026-11-20T15:42:00"), headers=APD)
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "occurred_at"


async def test_broker_unreachable_is_503_with_retry_after(client, publisher) -> None:
    async def down(*_a, **_k):
        raise KafkaConnectionError("no broker")

    publisher.publish = down
    resp = await client.post("/v1/referrals", json=referral(), headers=APD)
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert resp.json()["errors"][0]["field"] == "service"


async def test_openapi_is_published_to_authenticated_callers(client) -> None:
    assert (await client.get("/openapi.json")).status_code == 401
    spec = (await client.get("/openapi.json", headers=APD)).json()
    assert {"/v1/referrals", "/v1/child-encounters"} <= set(spec["paths"])
    assert (await client.get("/docs", headers=APD)).status_code == 200


async def test_one_incident_gives_one_correlation_id_and_a_callers_own_id_is_honoured(client, publisher) -> None:
    """A referral and a child encounter naming the same CAD incident carry one correlation id; a well-formed
    X-Correlation-ID or traceparent is the caller's to set; a malformed one is ignored, never refused."""
    from services.platform.logs import incident_correlation_id

    child = {**json.loads((DEMO / "child-encounter.json").read_text()), "incident_id": "INC-2026-4411"}
    adult = await client.post("/v1/referrals", json=referral(incident_id="INC-2026-4411"), headers=APD)
    met = await client.post("/v1/child-encounters", json=child, headers=APD)
    assert adult.status_code == met.status_code == 202, adult.text
    assert adult.json()["correlation_id"] == met.json()["correlation_id"] == incident_correlation_id("apd", "INC-2026-4411")
    assert publisher.records[0].event.incident_id == "INC-2026-4411"
    assert {dict(r.headers)["correlation_id"].decode() for r in publisher.records} == {adult.json()["correlation_id"]}

    own = await client.post("/v1/referrals", json=referral(cad_event_id="DEMO-OWN-1"),
                            headers={**APD, "X-Correlation-ID": "cad-trace-0001"})
    assert own.json()["correlation_id"] == "cad-trace-0001"
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = await client.post("/v1/referrals", json=referral(cad_event_id="DEMO-OWN-2"),
                               headers={**APD, "traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    assert traced.json()["correlation_id"] == trace
    for bad in ({"X-Correlation-ID": "x y\n<script>"}, {"X-Correlation-ID": "short"},
                {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}, {"traceparent": "ff-" + trace + "-00f067aa0ba902b7-01"}):
        ignored = await client.post("/v1/referrals", json=referral(cad_event_id="DEMO-OWN-3"), headers={**APD, **bad})
        assert ignored.status_code == 202 and len(ignored.json()["correlation_id"]) == 32
        assert ignored.json()["correlation_id"] not in str(bad)
