"""LEAD on the real broker: police meet an inactive participant again -> the case manager who took the
referral gets where and when; the CAD system's answer says nothing about it."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.kernel.identity import person_key
from tests.conftest import eventually
from tests.integration.test_lead_flow import NOW, TOKEN, on_call, referral_body

pytestmark = pytest.mark.integration


async def test_police_meeting_an_inactive_participant_alerts_their_case_manager_only(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    first = await system.http.post("/v1/referrals", json=referral_body("CAD-RE-1"), headers=TOKEN)
    referral_id = first.json()["referral_id"]
    cm = on_call(system)
    sms = await eventually(lambda: [m for m in system.messages("sms") if m.to == cm.phone])
    link = sms[0].body.split("Ack: ")[1].split(" ")[0].replace("http://handoff.test", "")
    assert (await system.http.post(link)).status_code == 200
    staff = {"Authorization": f"Bearer local-dev-token-{cm.case_manager_id}"}

    async def recorded(milestone: str) -> bool:
        answer = await system.http.post(f"/v1/referrals/{referral_id}/engagement", json={"milestone": milestone},
                                        headers={**staff, "Idempotency-Key": milestone})
        return answer.status_code == 202

    await eventually(lambda: recorded("contacted"))  # once the API's read model has the acknowledgement
    system.clock.advance(days=3)
    assert await recorded("inactive")
    intake = system.apps["referral-intake"].services["intake"]
    key = person_key("SAM", "example", date(1987, 3, 14))  # as the next CAD event will spell them
    await eventually(lambda: intake.inactive_participant("abq", key) == referral_id)
    before = len(system.messages("sms"))

    system.clock.advance(days=2)  # police meet the same person again, elsewhere
    body = {**referral_body("CAD-RE-2"), "occurred_at": (NOW + timedelta(days=5)).isoformat(),
            "person": {"first_name": "SAM", "last_name": "example", "date_of_birth": "1987-03-14"},
            "location": {"description": "library steps, 5th and Copper"}}
    second = await system.http.post("/v1/referrals", json=body, headers=TOKEN)
    assert second.status_code == 202 and referral_id not in second.text  # nothing goes back to the police side
    alert = await eventually(lambda: [m for m in system.messages("sms")[before:] if "inactive" in m.body])
    assert [m.to for m in alert] == [cm.phone] and "library steps, 5th and Copper" in alert[0].body

    # An overdose response (another pathway's CAD event) naming them tells the same case manager.
    from tests.factories import overdose

    seen = overdose("EMS-RE-3", occurred_at=NOW + timedelta(days=6), location_description="bus shelter on Central")
    seen = seen.model_copy(update={"person": seen.person.model_copy(update={
        "first_name": "Sam", "last_name": "Example", "date_of_birth": date(1987, 3, 14)})})
    system.clock.advance(days=1)
    answer = await system.http.post("/v1/overdoses", json=seen.model_dump(mode="json"), headers=TOKEN)
    assert answer.status_code == 202 and referral_id not in answer.text
    await eventually(lambda: [m for m in system.messages("sms") if "bus shelter on Central" in m.body])
    assert {m.to for m in system.messages("sms") if "bus shelter on Central" in m.body} == {cm.phone}
