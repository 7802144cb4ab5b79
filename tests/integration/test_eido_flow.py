"""NENA EIDO on the real broker: an agency's EIDO (a disturbance the officer cleared to LEAD) -> a
referral paged to the on-call case manager, who acknowledges -> an update of the same incident (the
person moved) reaches that case manager, and only them -> the same update again sends nothing; a call
transfer is "nothing to map" and publishes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.cad_gateway.domain.calls import event_id_for
from services.platform.logs import incident_correlation_id
from tests.conftest import eventually
from tests.eido_documents import TRACKING, call_transfer, eido, moved, with_children
from tests.integration.test_lead_flow import NOW, TOKEN, on_call

pytestmark = pytest.mark.integration


async def test_an_eido_opens_a_referral_and_its_update_reaches_the_case_manager_who_took_it(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    document = eido(NOW - timedelta(minutes=3))
    answer = await system.http.post("/v1/eido", json=document, headers=TOKEN)
    assert answer.status_code == 202, answer.text
    [event] = answer.json()["events"]
    assert event["kind"] == "referral"
    transfer = await system.http.post("/v1/eido", json=call_transfer(NOW), headers=TOKEN)
    assert transfer.status_code == 200 and transfer.json()["status"] == "nothing_to_map"

    cm = on_call(system)
    sms = await eventually(lambda: [m for m in system.messages("sms") if m.to == cm.phone])
    assert "600 Central Ave SW, Albuquerque, NM" in sms[0].body and "+15055550100" in sms[0].body  # dispatch desk
    link = sms[0].body.split("Ack: ")[1].split(" ")[0].replace("http://handoff.test", "")
    assert (await system.http.post(link)).status_code == 200
    notifier = system.apps["notifier"].services["notifier"]
    await eventually(lambda: any(record.state.acknowledged_by for record in notifier.pages.values()))
    before = len(system.messages("sms"))

    update = moved(document, NOW)
    for _ in range(2):  # the EIDO server sends the update twice
        again = await system.http.post("/v1/eido", json=update, headers=TOKEN)
        assert again.status_code == 202 and again.json()["events"] == [event]  # the same ids
    told = await eventually(lambda: [m for m in system.messages("sms")[before:] if "now at" in m.body] or None)
    assert [m.to for m in told] == [cm.phone] and "600 Copper Ave SW" in told[0].body
    await eventually(lambda: True, interval=1.0)
    assert len([m for m in system.messages("sms") if "now at" in m.body]) == 1  # told once


async def test_children_at_an_eido_incident_reach_handle_with_care_and_nobody_is_dropped_unsaid(system_factory) -> None:
    """A LEAD incident with two children at the scene (a child, a witness): the referral is paged, and both children are Handle With Care encounters (here: triage, as EIDO names no school);
    the caller, who becomes nothing, is listed in ``skipped`` with the reason."""
    system = await system_factory("referral-intake", "notifier", "handle-with-care", now=NOW)
    answer = await system.http.post("/v1/eido", json=with_children(eido(NOW - timedelta(minutes=3)), NOW), headers=TOKEN)
    assert answer.status_code == 202, answer.text
    assert sorted(e["kind"] for e in answer.json()["events"]) == ["child_encountered", "child_encountered", "referral"]
    [skipped] = answer.json()["skipped"]
    assert ":person:caller (Caller): role not one of" in skipped
    incident = event_id_for(TRACKING)  # every event of the call names it: one correlation id, one view
    assert answer.json()["correlation_id"] == incident_correlation_id("apd", incident)
    await eventually(lambda: [m for m in system.messages("sms") if m.to == on_call(system).phone])

    async def queue():
        items = (await system.http.get("/v1/districts/abq-ps/triage",
                                       headers={"Authorization": "Bearer local-dev-token-coord-abq"})).json()
        return items if len(items) == 2 else None

    items = await eventually(queue)
    assert {i["child"]["first_name"] for i in items} == {"Philippa", "Ottoline"}
