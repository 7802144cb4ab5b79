"""One CAD incident on the real broker: an officer refers an adult and meets a child at the same call. The page
and the child's notice carry one correlation id (the incident's), and a program manager sees both outcomes
together; nobody else does."""

from __future__ import annotations

import pytest

from services.platform.logs import incident_correlation_id
from tests.conftest import eventually
from tests.integration.test_hwc_flow import encounter
from tests.integration.test_lead_flow import NOW, TOKEN, on_call, referral_body

pytestmark = pytest.mark.integration
PM = {"Authorization": "Bearer local-dev-token-pm-abq"}


async def test_a_referral_and_a_child_at_one_incident_share_its_id_and_one_view(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", "handle-with-care", now=NOW)
    adult = await system.http.post("/v1/referrals", json={**referral_body("CAD-INC-A"), "incident_id": "INC-9001"},
                                   headers=TOKEN)
    child = {**encounter("CAD-INC-C"), "incident_id": "INC-9001", "encountered_at": NOW.isoformat()}
    met = await system.http.post("/v1/child-encounters", json=child, headers=TOKEN)
    assert adult.status_code == met.status_code == 202, adult.text + met.text
    expected = incident_correlation_id("apd", "INC-9001")
    assert adult.json()["correlation_id"] == met.json()["correlation_id"] == expected

    await eventually(lambda: [m for m in system.messages("sms") if m.to == on_call(system).phone])
    await eventually(lambda: [m for m in system.messages("email") if m.to == "counselor@lincoln.example.org"])
    notifier = system.apps["notifier"].services["notifier"]
    hwc = system.apps["handle-with-care"].services["hwc"]
    [page] = await eventually(lambda: list(notifier.pages.values()))
    [notice] = await eventually(lambda: list(hwc.notices.values()))
    assert page.correlation_id == notice.correlation_id == expected  # every derived event carries it

    async def view():
        answer = await system.http.get("/v1/agencies/apd/incidents/INC-9001", headers=PM)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        delivered = [c for c in body["handle_with_care"] if c["state"] == "notice_delivered"]
        return body if body["referrals"] and body["referrals"][0]["milestones"].get("paged") and delivered else None

    body = await eventually(view)
    assert body["correlation_id"] == expected and body["referrals"][0]["referral_id"] == adult.json()["referral_id"]
    [outcome] = body["handle_with_care"]
    assert outcome["notice_id"] and "Philippa" not in str(body) and "lincoln" not in str(body)  # no child, no school
    case_manager = {"Authorization": "Bearer local-dev-token-cm-ana"}
    assert (await system.http.get("/v1/agencies/apd/incidents/INC-9001", headers=case_manager)).status_code == 403
    assert (await system.http.get("/v1/agencies/apd/incidents/INC-9001")).status_code == 401
