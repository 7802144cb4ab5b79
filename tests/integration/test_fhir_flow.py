"""FHIR on the real broker, as a case-management system uses it: search its requested Tasks, read one
(and its ServiceRequest), accept it with an update, receive the id-only subscription notification of
the change, read the Task again; every resource validated by fhir.resources."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from tests.conftest import eventually
from tests.integration.test_lead_flow import NOW, TOKEN, referral_body

pytestmark = pytest.mark.integration
ORG = {"Authorization": "Bearer local-dev-token-org-abq-cm"}


async def test_a_case_management_system_searches_reads_accepts_and_is_notified(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    answer = await system.http.post("/v1/referrals", json=referral_body("CAD-FHIR-1"), headers=TOKEN)
    referral_id = answer.json()["referral_id"]

    async def requested():
        bundle = Bundle.model_validate((await system.http.get(
            "/fhir/Task", params={"owner": "Organization/abq-cm", "status": "requested"}, headers=ORG)).json())
        return bundle if bundle.total else None

    [entry] = (await eventually(requested)).entry
    assert entry.resource.id == referral_id and entry.fullUrl == f"http://handoff.test/fhir/Task/{referral_id}"
    task = Task.model_validate((await system.http.get(f"/fhir/Task/{referral_id}", headers=ORG)).json())
    service = ServiceRequest.model_validate((await system.http.get(f"/fhir/ServiceRequest/{referral_id}",
                                                                   headers=ORG)).json())
    assert task.focus.reference == f"ServiceRequest/{service.id}"

    accepted = await system.http.put(f"/fhir/Task/{referral_id}", headers={**ORG, "Content-Type": "application/fhir+json"},
                                     content=task.model_copy(update={"status": "accepted"}).model_dump_json(
                                         exclude_none=True))
    assert accepted.status_code == 200, accepted.text

    [hook] = await eventually(lambda: [m for m in system.messages("webhook") if '"history"' in m.body] or None)
    bundle = Bundle.model_validate(json.loads(hook.body))
    assert bundle.type == "history"
    status, changed = bundle.entry
    assert status.resource.get_resource_type() == "Parameters"
    assert changed.fullUrl == f"http://handoff.test/fhir/Task/{referral_id}" and changed.resource is None  # id only
    for private in ("Zebulon", "Featherstonehaugh", "1987"):
        assert private not in hook.body

    async def accepted_now():
        t = Task.model_validate((await system.http.get(f"/fhir/Task/{referral_id}", headers=ORG)).json())
        return t if t.status == "accepted" else None

    assert (await eventually(accepted_now)).owner.reference == "Organization/abq-cm"


async def test_a_subscription_the_client_creates_is_notified_until_it_deletes_it(system_factory) -> None:
    """R4 Subscriptions Backport, client-managed, on the real broker: the client creates a Subscription (its endpoint
    answers the handshake); a change of a Task notifies it beside the organisation's configured subscription, each
    naming its own Subscription; once deleted, the next change notifies only the configured one."""
    from tests.unit.lead.test_fhir_api import subscription_body

    system = await system_factory("referral-intake", "notifier", now=NOW, fhir_subscription_loopback_endpoints=True)
    hook = f"{system.inbox.base_url}/webhooks/fhir-client"
    answer = await system.http.post("/fhir/Subscription", json=subscription_body(hook), headers=ORG)
    assert answer.status_code == 201, answer.text
    made = answer.json()["id"]
    [handshake] = [m for m in system.messages("webhook") if m.to == "fhir-client"]
    assert '"handshake"' in handshake.body
    listed = Bundle.model_validate((await system.http.get("/fhir/Subscription", headers=ORG)).json())
    assert made in {e.resource.id for e in listed.entry}  # read back at once: the API waits for its own write

    referral_id = (await system.http.post("/v1/referrals", json=referral_body("CAD-FHIR-SUB"),
                                          headers=TOKEN)).json()["referral_id"]
    await eventually(lambda: system.http.get(f"/fhir/Task/{referral_id}", headers=ORG), interval=0.2)

    async def change(status: str) -> None:
        task = (await eventually(lambda: _task(system, referral_id))).model_copy(update={"status": status})
        changed = await system.http.put(f"/fhir/Task/{referral_id}", content=task.model_dump_json(exclude_none=True),
                                        headers={**ORG, "Content-Type": "application/fhir+json"})
        assert changed.status_code == 200, changed.text

    def notified(to: str) -> list:
        return [m for m in system.messages("webhook") if m.to == to and '"event-notification"' in m.body]

    await change("accepted")
    [to_client] = await eventually(lambda: notified("fhir-client") or None)
    await eventually(lambda: notified("fhir") or None)
    assert f"/Subscription/{made}" in to_client.body and f"/Task/{referral_id}" in to_client.body
    for private in ("Zebulon", "Featherstonehaugh", "1987"):
        assert private not in to_client.body

    assert (await system.http.delete(f"/fhir/Subscription/{made}", headers=ORG)).status_code == 204
    assert (await system.http.get(f"/fhir/Subscription/{made}", headers=ORG)).status_code == 404
    system.clock.advance(minutes=1)  # a later change: a notification of its own (numbered by its time)
    await change("in-progress")
    await eventually(lambda: len(notified("fhir")) >= 2 or None)
    assert len(notified("fhir-client")) == 1  # deleted: told nothing more


async def _task(system, referral_id: str) -> Task | None:
    answer = await system.http.get(f"/fhir/Task/{referral_id}", headers=ORG)
    return Task.model_validate(answer.json()) if answer.status_code == 200 else None
