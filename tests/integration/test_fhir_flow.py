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
