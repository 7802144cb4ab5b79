"""Self-referral on the real broker: a walk-in -> the three nearest available volunteers paged -> one
accepts on their link -> the other two told it is taken -> milestones to placement recorded and
counted; a restart in the middle pages nobody twice, and nobody accepting tells the coordinator."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import eventually
from tests.factories import walk_in

pytestmark = pytest.mark.integration
OCCURRED = datetime(2027, 3, 2, 1, 47, 12, tzinfo=UTC)  # Monday 18:47 in Albuquerque: Gus is not on tonight
APD = {"Authorization": "Bearer local-dev-token-apd"}
CRUZ = {"Authorization": "Bearer local-dev-token-cm-cruz"}  # abq's self-referral coordinator
VOLUNTEERS = {"+15055550201": "vol-dana", "+15055550202": "vol-eli", "+15055550203": "vol-faye"}


def link_in(text: str) -> str:
    return re.search(r"http://handoff\.test(/walk-in/\S+)", text).group(1)


async def test_a_walk_in_pages_three_volunteers_the_first_to_accept_takes_it_and_placement_is_recorded(
        system_factory):
    system = await system_factory("self-referral", now=OCCURRED + timedelta(minutes=1))
    event = walk_in("STN-0412", occurred_at=OCCURRED).model_dump(mode="json")
    answer = await system.http.post("/v1/walk-ins", json=event, headers=APD)
    assert answer.status_code == 202, answer.text
    case_id = answer.json()["case_id"]
    assert (await system.http.post("/v1/walk-ins", json=event, headers=APD)).status_code == 202  # a CAD retry

    pages = await eventually(lambda: len(system.messages("sms")) >= 3 and system.messages("sms"))
    assert {m.to for m in pages} == set(VOLUNTEERS)
    for page in pages:
        assert "Valley" not in page.body and "Foothills Area Command" in page.body and "Sam" not in page.body
    links = {VOLUNTEERS[m.to]: link_in(m.body) for m in pages}

    service = (await system.restart("self-referral")).services["walk_ins"]  # recovers the case from its changelog
    await eventually(lambda: service.walk_ins.get(case_id))

    async def shown(volunteer: str, text: str):
        page = await system.http.get(links[volunteer])
        return page.text if text in page.text else None

    await eventually(lambda: shown("vol-eli", "I can go"))  # the API's read model has the walk-in
    assert (await system.http.post(links["vol-eli"], data={"action": "accept"})).status_code == 303
    await eventually(lambda: service.walk_ins[case_id].state.accepted_by == "vol-eli")
    mine = await eventually(lambda: shown("vol-eli", "Claim an expense"))
    assert 'data-testid="first-name">Sam<' in mine

    await eventually(lambda: len([m for m in system.messages("sms") if "taken by another" in m.body]) == 2)
    taken = [m for m in system.messages("sms") if "taken by another" in m.body]
    assert {m.to for m in taken} == {"+15055550201", "+15055550203"}  # Dana and Faye, not Eli
    assert "Another volunteer took this walk-in" in (await system.http.get(links["vol-dana"])).text

    for milestone in ("volunteer_arrived", "placed"):
        system.clock.set(OCCURRED + timedelta(minutes=25 if milestone == "volunteer_arrived" else 9 * 60))
        await system.http.post(links["vol-eli"], data={"action": "milestone", "milestone": milestone,
                                                       "tap": f"t-{milestone}"})
    await eventually(lambda: service.walk_ins[case_id].state.closed_by == "placed")
    await system.http.post(links["vol-eli"], data={"action": "expense", "kind": "mileage", "miles": "18",
                                                   "incurred_on": "2027-03-01", "tap": "t-exp"})

    async def figures():
        f = (await system.http.get("/v1/walk-ins/figures", params={"site_id": "abq", "month": "2027-03"},
                                   headers=CRUZ)).json()
        return f if f["placed"] else None

    f = await eventually(figures)
    assert (f["walk_ins"], f["accepted"], f["volunteer_on_scene"], f["placed"], f["placed_within_target"]) == \
        (1, 1, 1, 1, 1)
    assert f["median_minutes_to_scene"] == 25.0

    async def expenses():
        csv = (await system.http.get("/v1/walk-ins/expenses", params={"site_id": "abq", "month": "2027-03"},
                                     headers=CRUZ)).text
        return csv if "vol-eli" in csv else None

    assert "vol-eli,Eli W.,total,,,,12.60" in await eventually(expenses)  # 18 miles at 70 cents
    system.clock.set(OCCURRED + timedelta(hours=30))
    assert await service.publish_due() == 0  # placed: the coordinator hears nothing
    assert len([m for m in system.messages("sms") if "Handoff: someone asked" in m.body]) == 3  # paged once each


async def test_a_walk_in_nobody_accepts_tells_the_coordinator(system_factory):
    system = await system_factory("self-referral", now=OCCURRED + timedelta(minutes=1))
    answer = await system.http.post("/v1/walk-ins", json=walk_in("STN-0413", occurred_at=OCCURRED).model_dump(
        mode="json"), headers=APD)
    case_id = answer.json()["case_id"]
    service = system.apps["self-referral"].services["walk_ins"]
    await eventually(lambda: len(system.messages("sms")) >= 3)
    system.clock.set(OCCURRED + timedelta(minutes=12))  # ten minutes after it opened, nobody accepted
    told = await eventually(lambda: [m for m in system.messages("sms") if m.to == "+15055550103"] or None)
    assert case_id in told[0].body and "nobody accepted" in told[0].body and "Sam" not in told[0].body
    assert "unanswered" in service.walk_ins[case_id].state.escalations
