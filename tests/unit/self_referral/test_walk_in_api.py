"""Self-referral over HTTP: the walk-in intake's answers; the volunteer's link (accept, taken,
milestones and expenses, the first name only for the one who took it, audited); the coordinators'
list, figures and the month's expenses as CSV."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.kernel.cad import CadWalkInReported
from services.kernel.clock import FakeClock
from services.messaging.events import DisclosureAudited
from services.messaging.kafka import InMemoryPublisher
from services.self_referral.entrypoints.console import link_for
from services.self_referral.events import VolunteerExpenseClaimed, WalkInAccepted, WalkInMilestoneRecorded, WalkInOpened
from tests.factories import NOW, walk_in

APD = {"Authorization": "Bearer local-dev-token-apd"}
CRUZ = {"Authorization": "Bearer local-dev-token-cm-cruz"}  # outreach, the abq coordinator
ANA = {"Authorization": "Bearer local-dev-token-cm-ana"}  # case manager at abq


def opened(case_id: str = "wi-w-1", **kw) -> WalkInOpened:
    fields = dict(case_id=case_id, walk_in_event_id=case_id[3:], site_id="abq", station_id="foothills",
                  occurred_at=NOW, opened_at=NOW, paged=["vol-dana", "vol-eli"], accept_by=NOW + timedelta(minutes=10),
                  placement_due_at=NOW + timedelta(hours=24), first_name="Sam")
    return WalkInOpened(**{**fields, **kw})


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
def settings(memory_settings):
    return memory_settings.model_copy(update={"link_signing_key": SecretStr("k"), "public_base_url": "http://t"})


@pytest.fixture
async def app(settings, publisher):
    return runtime.build_http_app(settings, publisher=publisher, clock=FakeClock(NOW + timedelta(minutes=3)),
                                  follow_topics=False)


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def link(app, volunteer_id: str, case_id: str = "wi-w-1") -> str:
    """Signed by the app's clock, as the self-referral worker's would be."""
    return link_for(app.state.walk_in_links, case_id, volunteer_id).removeprefix("http://t")


async def test_a_walk_in_is_published_and_answered_with_its_case_id(client, publisher) -> None:
    answer = await client.post("/v1/walk-ins", json=walk_in().model_dump(mode="json"), headers=APD)
    assert answer.status_code == 202 and answer.json()["case_id"] == "wi-w-1"
    [record] = publisher.records
    assert record.topic == "handoff.cad.walk-ins" and record.key == "w-1"
    assert isinstance(record.event, CadWalkInReported)


@pytest.mark.parametrize("changes, status, field", [
    ({"station_id": "airport"}, 422, "station_id"),
    ({"site_id": "santa-fe"}, 403, "site_id"),
    ({"agency_id": "sfpd"}, 403, "agency_id"),
    ({"occurred_at": "2099-01-01T00:00:00Z"}, 422, "occurred_at"),
    ({"first_name": "x" * 101}, 422, "first_name"),
    ({"occurred_at": 1763652600}, 422, "occurred_at"),  # a number is not a time
])
async def test_a_bad_walk_in_is_refused_naming_the_field(client, publisher, changes, status, field) -> None:
    answer = await client.post("/v1/walk-ins", json={**walk_in().model_dump(mode="json"), **changes}, headers=APD)
    assert answer.status_code == status and field in answer.text, answer.text
    assert publisher.records == []


async def test_the_volunteers_link_accepts_then_records_milestones_and_expenses(app, client, publisher) -> None:
    model = app.state.walk_in_model
    model.apply(opened())
    dana = link(app, "vol-dana")
    page = await client.get(dana)
    assert page.status_code == 200 and "Foothills Area Command" in page.text and "I can go" in page.text
    assert "Sam" not in page.text  # not before she takes it
    assert (await client.post(dana, data={"action": "milestone", "milestone": "placed"})).status_code == 409
    accepted = await client.post(dana, data={"action": "accept"})
    assert accepted.status_code == 303
    [acceptance] = publisher.events(WalkInAccepted)
    assert acceptance.volunteer_id == "vol-dana" and acceptance.case_id == "wi-w-1"
    model.apply(acceptance)
    mine = await client.get(dana)
    assert 'data-testid="first-name">Sam<' in mine.text and "Claim an expense" in mine.text
    [audit] = publisher.events(DisclosureAudited)
    assert audit.recipient_id == "vol-dana" and audit.record_kind.value == "walk_in_details"
    for _ in range(2):  # a double tap is one record
        await client.post(dana, data={"action": "milestone", "milestone": "volunteer_arrived", "tap": "n1-arr"})
    assert len({m.milestone_id for m in publisher.events(WalkInMilestoneRecorded)}) == 1
    await client.post(dana, data={"action": "expense", "kind": "mileage", "miles": "12.5",
                                  "incurred_on": "2026-11-20", "tap": "n1-exp"})
    [claim] = publisher.events(VolunteerExpenseClaimed)
    assert claim.amount_cents == 875 and claim.volunteer_id == "vol-dana"  # 12.5 miles at 70 cents
    for form, field, said in (({"kind": "meals", "amount": "", "incurred_on": "2026-11-20"}, "amount",
                               "Required for meals and other expenses."),
                              ({"kind": "meals", "amount": "12", "incurred_on": "2026-10-01"}, "incurred_on",
                               "Must be between the walk-in and today."),
                              ({"kind": "mileage", "miles": "lots", "incurred_on": "2026-11-20"}, "miles",
                               "Write a number, for example 12.5."),
                              ({"kind": "mileage", "miles": "-3", "incurred_on": "2026-11-20"}, "miles",
                               "Must be above 0 and at most 1000."),
                              ({"kind": "yacht", "amount": "12", "incurred_on": "2026-11-20"}, "kind",
                               "Choose what the expense was for.")):
        refused = await client.post(dana, data={"action": "expense", **form})
        # The page again, not JSON: the reason beside its field, and what was typed kept.
        assert refused.status_code == 422 and "text/html" in refused.headers["content-type"], form
        assert f'data-testid="{field}-error">{said}<' in refused.text, (form, refused.text)
        typed = form.get("miles") or form.get("amount")
        assert not typed or f'value="{typed}"' in refused.text
    await client.post(dana, data={"action": "expense", "kind": "mileage", "miles": "24,5",  # a decimal comma
                                  "incurred_on": "2026-11-20", "tap": "n2-exp"})
    assert [c.miles for c in publisher.events(VolunteerExpenseClaimed)] == [12.5, 24.5]
    for claimed in publisher.events(VolunteerExpenseClaimed):
        model.apply(claimed)
    assert "24.5 miles" in (await client.get(dana)).text  # what she claimed is listed
    eli = await client.get(link(app, "vol-eli"))
    assert "Another volunteer took this walk-in" in eli.text and "Sam" not in eli.text
    late = await client.post(link(app, "vol-eli"), data={"action": "accept"})
    assert late.status_code == 409 and len(publisher.events(WalkInAccepted)) == 1


async def test_a_link_is_only_for_its_volunteer_and_walk_in(app, client) -> None:
    app.state.walk_in_model.apply(opened())
    assert (await client.get(link(app, "vol-gus"))).status_code == 403  # not paged for it
    assert (await client.get(link(app, "vol-dana", "wi-nope"))).status_code == 404
    assert (await client.get("/walk-in/forged")).status_code == 410
    page_link = app.state.ack_links.token("page", "wi-w-1", "vol-dana")  # another purpose's token
    assert (await client.get(f"/walk-in/{page_link}")).status_code == 410


async def test_coordinators_see_open_walk_ins_figures_and_the_months_expenses(app, client, publisher) -> None:
    model = app.state.walk_in_model
    model.apply(opened())
    model.apply(opened("wi-w-2", occurred_at=NOW - timedelta(hours=30), placement_due_at=NOW - timedelta(hours=6)))
    model.apply(WalkInAccepted(case_id="wi-w-2", volunteer_id="vol-eli", accepted_at=NOW - timedelta(hours=30)))
    for i, (milestone, minutes) in enumerate((("volunteer_arrived", 20), ("placed", 20 * 60))):
        model.apply(WalkInMilestoneRecorded(milestone_id=f"m{i}", case_id="wi-w-2", site_id="abq", milestone=milestone,
                                            recorded_by="vol-eli",
                                            at=NOW - timedelta(hours=30) + timedelta(minutes=minutes)))
    for i, (volunteer, cents) in enumerate((("vol-eli", 875), ("vol-eli", 1200), ("vol-dana", 350))):
        model.apply(VolunteerExpenseClaimed(expense_id=f"e{i}", case_id="wi-w-2", site_id="abq", volunteer_id=volunteer,
                                            kind="meals", amount_cents=cents, incurred_on=NOW.date(), claimed_at=NOW))
    listed = (await client.get("/v1/walk-ins", params={"site_id": "abq"}, headers=CRUZ)).json()
    assert [w["case_id"] for w in listed] == ["wi-w-1"]  # w-2 is placed
    assert listed[0]["accepted_by"] is None and "Sam" not in repr(listed)
    figures = (await client.get("/v1/walk-ins/figures", params={"site_id": "abq", "month": "2026-11"},
                                headers=CRUZ)).json()
    assert (figures["walk_ins"], figures["accepted"], figures["volunteer_on_scene"], figures["placed"],
            figures["placed_within_target"], figures["median_minutes_to_scene"]) == (2, 1, 1, 1, 1, 20.0)
    csv = await client.get("/v1/walk-ins/expenses", params={"site_id": "abq", "month": "2026-11"}, headers=CRUZ)
    rows = csv.text.splitlines()
    assert rows[0] == "volunteer_id,volunteer,case_id,incurred_on,kind,miles,amount"
    assert "vol-eli,Eli W.,total,,,,20.75" in rows and "vol-dana,Dana K.,total,,,,3.50" in rows
    assert (await client.get("/v1/walk-ins/expenses", params={"site_id": "abq"}, headers=ANA)).status_code == 403
    assert (await client.get("/v1/walk-ins/figures", params={"site_id": "abq", "month": "11/2026"},
                             headers=CRUZ)).status_code == 422
    tap = await client.post("/v1/walk-ins/wi-w-1/milestones", json={"milestone": "assessed"},
                            headers={**CRUZ, "Idempotency-Key": "k1"})
    assert tap.status_code == 202 and tap.json()["milestone_id"] == "wi-w-1/cm-cruz/k1"
    assert (await client.post("/console/login", data={"token": "local-dev-token-cm-cruz"})).status_code == 303
    console = (await client.get("/console/walk-ins")).text
    assert "Foothills Area Command" in console and "nobody has accepted" in console and "Sam" not in console
    assert "2 walk-ins, 1 taken by a volunteer" in console
    assert "20.75" in (await client.get("/console/walk-ins/expenses.csv", params={"site_id": "abq"})).text
