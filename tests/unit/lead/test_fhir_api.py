"""LEAD referrals over FHIR R4 for case-management systems (SDOH Clinical Care referral pattern): the
CapabilityStatement, Task search by owner, status and _lastUpdated, Task and ServiceRequest reads,
status and milestone updates under the lifecycle's rules (409 OperationOutcome when illegal), consent
scope deciding what an organisation sees, every read audited; each answer validated by fhir.resources."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from pydantic import SecretStr

from services import runtime
from services.delivery.channels import WebhookChannel
from services.kernel.clock import FakeClock
from services.kernel.events import (
    AcknowledgedVia,
    Consent,
    ConsentRole,
)
from services.kernel.fhir import (
    BACKPORT_HEARTBEAT_PERIOD,
    BACKPORT_PAYLOAD_CONTENT,
    BACKPORT_SUBSCRIPTION,
    LEAD_TASK_TOPIC,
    FhirSubscriptionCreated,
    FhirSubscriptionDeleted,
)
from services.kernel.lead import EngagementRecorded, PageAcknowledged, ReferralStatusChanged
from services.kernel.reference import Organization, hash_token
from services.messaging.events import DisclosedRecord, DisclosureAudited
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.model import open_referral
from tests.factories import NOW, cad_referral

REF = load_reference_data(REPO_ROOT / "config" / "local")
ORG = {"Authorization": "Bearer local-dev-token-org-abq-cm"}


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
async def client(memory_settings, publisher):
    model = LeadReadModel()
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"), "public_base_url": "http://t"})
    app = runtime.build_http_app(settings, REF, publisher, FakeClock(NOW + timedelta(hours=2)), model,
                                 follow_topics=False)
    referrals = [open_referral(cad_referral("CAD-F1", occurred_at=NOW), REF.sites["abq"], REF.agencies["apd"], NOW),
                 open_referral(cad_referral("CAD-F2", occurred_at=NOW + timedelta(minutes=30)), REF.sites["abq"],
                               REF.agencies["apd"], NOW + timedelta(minutes=30)),
                 open_referral(cad_referral("CAD-F3", occurred_at=NOW, consent=Consent(
                     recipient_roles=[ConsentRole.outreach])), REF.sites["abq"], REF.agencies["apd"], NOW)]
    for r in referrals:
        model.apply(r)
        app.state.handoff_details.apply(r)
    first = referrals[0].referral_id
    model.apply(PageAcknowledged(page_id="p", referral_id=first, acknowledged_by="cm-ana", via=AcknowledgedVia.link,
                                 acknowledged_at=NOW + timedelta(minutes=5)))
    model.apply(ReferralStatusChanged(referral_id=first, site_id="abq", status="accepted", previous_status="requested",
                                      changed_at=NOW + timedelta(minutes=5), changed_by="cm-ana"))
    endpoint = Endpoint()
    app.state.webhooks = WebhookChannel(settings, endpoint)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        c.referrals, c.endpoint, c.app, c.publisher = referrals, endpoint, app, publisher
        yield c


@dataclass(frozen=True)
class Posted:
    url: str
    content: bytes
    headers: dict[str, str]


class Endpoint:
    """A case-management system's rest-hook endpoint, in the place of the channel's HTTP client: what it was posted,
    and what it answers (200 unless told)."""

    def __init__(self) -> None:
        self.received: list[Posted] = []
        self.status = 200

    async def post(self, url: str, body: bytes, headers: dict[str, str] | None = None, what: str = "") -> int:
        self.received.append(Posted(url, body, headers or {}))
        return self.status


def subscription_body(endpoint: str = "https://cm.example.org/fhir-hook", **channel) -> dict:
    """A client's Subscription as the R4 Subscriptions Backport IG writes one."""
    return {"resourceType": "Subscription", "status": "requested", "reason": "our LEAD referrals",
            "criteria": LEAD_TASK_TOPIC, "meta": {"profile": [BACKPORT_SUBSCRIPTION]},
            "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                        "_payload": {"extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
                        "extension": [{"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": 600}], **channel}}


async def created(client, body: dict | None = None, headers: dict = ORG) -> httpx.Response:
    """POST it, and fold what was published into the API's read model (its follower's job, on a broker)."""
    answer = await client.post("/fhir/Subscription", json=body or subscription_body(), headers=headers)
    for event in client.publisher.events():
        if isinstance(event, FhirSubscriptionCreated | FhirSubscriptionDeleted):
            client.app.state.fhir_subscriptions.apply(event)
    return answer


async def test_the_capability_statement_names_the_guide(client) -> None:
    statement = CapabilityStatement.model_validate((await client.get("/fhir/metadata")).json())
    assert statement.fhirVersion == "4.0.1" and {r.type for r in statement.rest[0].resource} >= {"Task",
                                                                                                 "ServiceRequest"}


async def test_search_finds_the_organisations_tasks_within_consent(client, publisher) -> None:
    first, second, outside = (r.referral_id for r in client.referrals)
    everything = Bundle.model_validate((await client.get("/fhir/Task", params={"owner": "Organization/abq-cm"},
                                                         headers=ORG)).json())
    assert {e.resource.id for e in everything.entry} == {first, second}  # the third's consent names outreach only
    requested = Bundle.model_validate((await client.get("/fhir/Task", params={"status": "requested"},
                                                        headers=ORG)).json())
    assert [e.resource.id for e in requested.entry] == [second]
    both = Bundle.model_validate((await client.get("/fhir/Task", params={"status": "requested,accepted"},
                                                   headers=ORG)).json())
    assert {e.resource.id for e in both.entry} == {first, second}
    later = Bundle.model_validate((await client.get("/fhir/Task", headers=ORG, params={
        "_lastUpdated": "gt" + (NOW + timedelta(minutes=20)).isoformat()})).json())
    assert [e.resource.id for e in later.entry] == [second]  # created 30 minutes in; the first last changed at 5
    other = Bundle.model_validate((await client.get("/fhir/Task", params={"owner": "Organization/elsewhere"},
                                                    headers=ORG)).json())
    assert other.total == 0
    audits = [a for a in publisher.events(DisclosureAudited) if a.record_kind is DisclosedRecord.lead_fhir_task]
    assert audits and all(a.recipient_id == "abq-cm" for a in audits)
    bad = await client.get("/fhir/Task", params={"_lastUpdated": "gt2026-11-20T00:00:00"}, headers=ORG)
    assert bad.status_code == 400 and OperationOutcome.model_validate(bad.json()).issue[0].code == "invalid"
    assert (await client.get("/fhir/Task")).status_code == 401


async def test_reads_return_valid_task_and_service_request_and_hide_what_consent_does_not_allow(client) -> None:
    first, _, outside = (r.referral_id for r in client.referrals)
    task = Task.model_validate((await client.get(f"/fhir/Task/{first}", headers=ORG)).json())
    assert task.status == "accepted" and task.focus.reference == f"ServiceRequest/{first}"
    assert task.businessStatus.coding[0].code == "acknowledged" and task.for_fhir.display == "Zebulon Featherstonehaugh"
    request = ServiceRequest.model_validate((await client.get(f"/fhir/ServiceRequest/{first}", headers=ORG)).json())
    assert request.status == "active" and request.code.coding[0].code == "arrest-diversion"
    hidden = await client.get(f"/fhir/Task/{outside}", headers=ORG)
    assert hidden.status_code == 404 and OperationOutcome.model_validate(hidden.json())
    assert (await client.get("/fhir/Task/nope", headers=ORG)).status_code == 404


async def test_updates_follow_the_lifecycle_and_refuse_illegal_moves(client, publisher) -> None:
    first, second, _ = (r.referral_id for r in client.referrals)
    task = (await client.get(f"/fhir/Task/{first}", headers=ORG)).json()
    moved = await client.put(f"/fhir/Task/{first}", headers={**ORG, "Content-Type": "application/fhir+json"},
                             json={**task, "businessStatus": {"coding": [{"code": "contacted"}]},
                                   "status": "in-progress"})
    assert moved.status_code == 200 and Task.model_validate(moved.json()).status == "in-progress"
    [engagement] = publisher.events(EngagementRecorded)
    assert engagement.milestone.value == "contacted" and engagement.recorded_by == "org:abq-cm"
    assert publisher.events(ReferralStatusChanged) == []  # "contacted" implies in progress: one event, not two
    pending = (await client.get(f"/fhir/Task/{second}", headers=ORG)).json()
    illegal = await client.put(f"/fhir/Task/{second}", headers=ORG, json={**pending, "status": "completed"})
    assert illegal.status_code == 409
    issue = OperationOutcome.model_validate(illegal.json()).issue[0]
    assert issue.code == "business-rule" and "requested" in issue.diagnostics and "completed" in issue.diagnostics
    garbage = await client.put(f"/fhir/Task/{second}", headers=ORG, json={"resourceType": "Task", "status": "sleepy"})
    assert garbage.status_code == 400
    wrong = await client.put(f"/fhir/Task/{second}", headers=ORG,
                             json={**pending, "businessStatus": {"coding": [{"code": "arrested"}]}})
    assert wrong.status_code == 422 and "businessStatus" in wrong.text


async def test_every_refusal_under_fhir_is_an_operation_outcome(client) -> None:
    """Routing's own 404 and 405, authentication's 401, a token's 403, a body too large or of another type: a FHIR
    client reads each as FHIR words it, never Handoff's own error JSON."""
    first = client.referrals[0].referral_id
    answers = {
        "no such resource type": (await client.get("/fhir/Patient/1", headers=ORG), 404, "not-found"),
        "another's subscription": (await client.get("/fhir/Subscription/elsewhere", headers=ORG), 404, "not-found"),
        "no such Task": (await client.get("/fhir/Task/nope", headers=ORG), 404, "not-found"),
        "a method not served": (await client.delete(f"/fhir/Task/{first}", headers=ORG), 405, "not-supported"),
        "no credential": (await client.get("/fhir/Task"), 401, "login"),
        "a body too large": (await client.put(f"/fhir/Task/{first}", headers={**ORG, "Content-Length": str(10**9)},
                                              content=b"{}"), 413, "too-long"),
        "not JSON": (await client.put(f"/fhir/Task/{first}", headers={**ORG, "Content-Type": "application/fhir+json"},
                                      content=b"{not json"), 400, "structure"),
    }
    for what, (answer, status, code) in answers.items():
        assert answer.status_code == status, what
        assert answer.headers["content-type"].startswith("application/fhir+json"), what
        issue = OperationOutcome.model_validate(answer.json()).issue[0]
        assert issue.code == code and issue.diagnostics, what
    assert "errors" in (await client.get("/v1/nowhere")).json()  # the rest of the API keeps its own shape


async def test_the_capability_statement_advertises_exactly_what_answers(client) -> None:
    """Every interaction the CapabilityStatement names is served (and nothing it does not name is claimed)."""
    first = client.referrals[0].referral_id
    statement = CapabilityStatement.model_validate((await client.get("/fhir/metadata")).json())
    ids = {"Task": first, "ServiceRequest": first, "Subscription": "abq-cm"}  # the organisation's subscription
    bodies = {"Subscription": subscription_body()}

    async def delete(kind: str) -> httpx.Response:
        made = (await created(client)).json()["id"]
        return await client.delete(f"/fhir/{kind}/{made}", headers=ORG)

    asked = {"read": lambda kind: client.get(f"/fhir/{kind}/{ids[kind]}", headers=ORG),
             "search-type": lambda kind: client.get(f"/fhir/{kind}", headers=ORG),
             "create": lambda kind: client.post(f"/fhir/{kind}", json=bodies[kind], headers=ORG),
             "delete": delete}
    success = {"create": 201, "delete": 204}
    for resource in statement.rest[0].resource:
        for interaction in resource.interaction:
            if interaction.code == "update":
                current = (await client.get(f"/fhir/{resource.type}/{ids[resource.type]}", headers=ORG)).json()
                answer = await client.put(f"/fhir/{resource.type}/{ids[resource.type]}", headers=ORG, json=current)
            else:
                answer = await asked[interaction.code](resource.type)
            assert answer.status_code == success.get(interaction.code, 200), (resource.type, interaction.code,
                                                                               answer.text)
        for operation in resource.operation or []:
            answer = await client.get(f"/fhir/{resource.type}/{ids[resource.type]}/{operation.name}", headers=ORG)
            assert answer.status_code == 200, (resource.type, operation.name, answer.text)
    assert {r.type for r in statement.rest[0].resource} == {"Task", "ServiceRequest", "Subscription"}


async def test_the_subscription_each_notification_names_can_be_read_with_its_status(client) -> None:
    """A notification's SubscriptionStatus names Subscription/{organisation}: a client follows it to its
    Subscription (R4 Backport: topic, rest-hook endpoint, id-only) and its $status."""
    from fhir.resources.R4B.parameters import Parameters
    from fhir.resources.R4B.subscription import Subscription

    from services.notifier.domain.fhir_notification import notification

    first = client.referrals[0].referral_id
    sent = notification("abq-cm", first, 1, "http://t/fhir", NOW)
    named = next(p.valueReference.reference for p in sent.entry[0].resource.parameter if p.name == "subscription")
    answer = await client.get(named.removeprefix("http://t"), headers=ORG)
    subscription = Subscription.model_validate(answer.json())
    assert (subscription.status, subscription.channel.type) == ("active", "rest-hook")
    assert subscription.channel.endpoint == REF.organizations["abq-cm"].subscription_url
    assert subscription.criteria == next(p.valueCanonical for p in sent.entry[0].resource.parameter if p.name == "topic")
    status = Bundle.model_validate((await client.get(f"{named.removeprefix('http://t')}/$status", headers=ORG)).json())
    parameters = Parameters.model_validate(status.entry[0].resource.model_dump())
    assert {p.name: p.valueCode for p in parameters.parameter if p.valueCode} == {"status": "active",
                                                                                  "type": "query-status"}


async def test_a_client_creates_its_subscription_after_a_handshake_reads_it_and_deletes_it(client) -> None:
    """R4 Subscriptions Backport, created by the client itself: the endpoint is sent a signed handshake first; the
    Subscription is then active, listed beside the configured one, readable with its $status, and gone once
    deleted. Another organisation cannot see it."""
    from fhir.resources.R4B.subscription import Subscription

    answer = await created(client)
    assert answer.status_code == 201, answer.text
    made = Subscription.model_validate(answer.json())
    assert made.status == "active" and answer.headers["location"] == f"http://t/fhir/Subscription/{made.id}"
    [handshake] = client.endpoint.received
    assert handshake.url == "https://cm.example.org/fhir-hook" and "X-Handoff-Signature" in handshake.headers
    bundle = Bundle.model_validate_json(handshake.content)
    status = {p.name: p.valueCode for p in bundle.entry[0].resource.parameter if p.valueCode}
    assert bundle.type == "history" and status == {"status": "requested", "type": "handshake"}
    [published] = client.publisher.events(FhirSubscriptionCreated)
    assert (published.organization_id, published.heartbeat_seconds, published.created_by) == ("abq-cm", 600,
                                                                                             "org:abq-cm")

    read = Subscription.model_validate((await client.get(f"/fhir/Subscription/{made.id}", headers=ORG)).json())
    assert read.channel.endpoint == "https://cm.example.org/fhir-hook" and read.criteria == LEAD_TASK_TOPIC
    listed = Bundle.model_validate((await client.get("/fhir/Subscription", headers=ORG)).json())
    assert {e.resource.id for e in listed.entry} == {"abq-cm", made.id}
    assert (await client.get(f"/fhir/Subscription/{made.id}/$status", headers=ORG)).status_code == 200
    client.app.state.reference = REF.model_copy(update={"organizations": {**REF.organizations, "other": Organization(
        organization_id="other", name="Other Org", sites=frozenset({"abq"}), token_sha256=hash_token("other-token"))}})
    other = {"Authorization": "Bearer other-token"}
    assert Bundle.model_validate((await client.get("/fhir/Subscription", headers=other)).json()).total == 0
    for path in (f"/fhir/Subscription/{made.id}", f"/fhir/Subscription/{made.id}/$status"):
        assert (await client.get(path, headers=other)).status_code == 404
    assert (await client.delete(f"/fhir/Subscription/{made.id}", headers=other)).status_code == 404

    assert (await client.delete(f"/fhir/Subscription/{made.id}", headers=ORG)).status_code == 204
    for event in client.publisher.events(FhirSubscriptionDeleted):
        client.app.state.fhir_subscriptions.apply(event)
    gone = await client.get(f"/fhir/Subscription/{made.id}", headers=ORG)
    assert gone.status_code == 404 and OperationOutcome.model_validate(gone.json()).issue[0].code == "not-found"
    configured = await client.delete("/fhir/Subscription/abq-cm", headers=ORG)
    assert configured.status_code == 405 and "reference data" in configured.text


@pytest.mark.parametrize("change, expression", [
    ({"criteria": "http://example.org/SubscriptionTopic/anything"}, "Subscription.criteria"),
    ({"channel": {**subscription_body()["channel"], "endpoint": "http://cm.example.org/hook"}},
     "Subscription.channel.endpoint"),
    *(({"channel": {**subscription_body()["channel"], "endpoint": inside}}, "Subscription.channel.endpoint")
      for inside in ("https://127.0.0.1/hook", "https://10.20.0.7/hook", "https://[::1]:8443/hook",
                     "https://169.254.169.254/latest/meta-data")),  # into Handoff's own network: never
    ({"channel": {**subscription_body()["channel"], "type": "websocket"}}, "Subscription.channel.type"),
    ({"channel": {**subscription_body()["channel"], "header": ["Authorization: Bearer s3cret"]}},
     "Subscription.channel.header"),
    ({"channel": {**subscription_body()["channel"], "_payload": {"extension": [
        {"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "full-resource"}]}}}, "Subscription.channel.payload"),
    ({"channel": {**subscription_body()["channel"], "extension": [
        {"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": 5}]}}, "Subscription.channel.extension"),
    ({"channel": "rest-hook, please"}, "Subscription"),  # not a Subscription at all
])
async def test_a_subscription_handoff_does_not_serve_is_refused_naming_the_element(client, change,
                                                                                 expression) -> None:
    answer = await client.post("/fhir/Subscription", json={**subscription_body(), **change}, headers=ORG)
    assert answer.status_code == 422, answer.text
    [issue] = OperationOutcome.model_validate(answer.json()).issue
    assert issue.expression == [expression] and issue.diagnostics
    assert client.endpoint.received == [] and client.publisher.events(FhirSubscriptionCreated) == []


async def test_an_endpoint_that_refuses_the_handshake_gets_no_subscription(client) -> None:
    client.endpoint.status = 500
    answer = await client.post("/fhir/Subscription", json=subscription_body(), headers=ORG)
    assert answer.status_code == 422 and "handshake" in answer.text
    assert len(client.endpoint.received) == 1 and client.publisher.events(FhirSubscriptionCreated) == []
