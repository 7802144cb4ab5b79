"""The Quick Response Team over HTTP: the overdose intake's answers, the team's list (JSON and CSV,
every read audited), one-tap attempts, the funnel and the de-identified feed."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.kernel.cad import CadOverdoseResponded
from services.kernel.clock import FakeClock
from services.messaging.events import DisclosureAudited
from services.messaging.kafka import InMemoryPublisher
from services.quick_response.domain.deidentify import deidentify
from services.quick_response.events import FollowUpAttempted, FollowUpOpened
from services.web.console import local_time
from tests.factories import NOW, overdose

APD = {"Authorization": "Bearer local-dev-token-apd"}
CRUZ = {"Authorization": "Bearer local-dev-token-cm-cruz"}  # outreach: abq and santa-fe
ANA = {"Authorization": "Bearer local-dev-token-cm-ana"}  # abq only


def body(**changes) -> dict:
    return {**overdose().model_dump(mode="json"), **changes}


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
async def app(memory_settings, publisher):
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    return runtime.build_http_app(settings, publisher=publisher, clock=FakeClock(NOW), follow_topics=False)


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_an_overdose_is_published_and_answered_with_its_follow_up_id(client, publisher) -> None:
    answer = await client.post("/v1/overdoses", json=body(), headers=APD)
    assert answer.status_code == 202 and answer.json()["task_id"] == "fu-od-1"
    [record] = publisher.records
    assert record.topic == "handoff.cad.overdoses" and record.key == "od-1"
    assert isinstance(record.event, CadOverdoseResponded)
    fatal = await client.post("/v1/overdoses", json=body(overdose_event_id="od-2", fatal=True), headers=APD)
    assert fatal.json()["task_id"] == "fu-od-2"  # abq offers family support


@pytest.mark.parametrize("changes, status, field", [
    ({"site_id": "santa-fe"}, 403, "site_id"),
    ({"agency_id": "sfpd"}, 403, "agency_id"),
    ({"latitude": 35.1, "longitude": None}, 422, "latitude"),
    ({"naloxone_given": False}, 422, "naloxone_doses"),
    ({"age_range": "about 30"}, 422, "age_range"),
    ({"fatal": "no"}, 422, "fatal"),
    ({"occurred_at": "2099-01-01T00:00:00Z"}, 422, "occurred_at"),  # a broken CAD clock
])
async def test_a_bad_overdose_is_refused_naming_the_field(client, publisher, changes, status, field) -> None:
    answer = await client.post("/v1/overdoses", json=body(**changes), headers=APD)
    assert answer.status_code == status and field in answer.text
    assert "Quackenbush" not in answer.text and publisher.records == []


async def test_the_teams_list_is_due_first_audited_and_safe_as_csv(app, client, publisher) -> None:
    model = app.state.qrt_model
    for event_id, hours in (("od-late", 72), ("od-soon", 24)):
        model.apply(FollowUpOpened(task_id=f"fu-{event_id}", overdose_event_id=event_id, site_id="abq",
                                   kind="outreach", occurred_at=NOW, due_at=NOW + timedelta(hours=hours),
                                   opened_at=NOW,
                                   person=overdose(person=overdose().person.model_copy(
                                       update={"first_name": "=HYPERLINK(1)"})).person))
    listed = await client.get("/v1/qrt/follow-ups", params={"site_id": "abq"}, headers=CRUZ)
    assert [r["task_id"] for r in listed.json()] == ["fu-od-soon", "fu-od-late"]
    model.apply(FollowUpOpened(task_id="fu-od-old", overdose_event_id="od-old", site_id="abq", kind="outreach",
                               occurred_at=NOW - timedelta(hours=30), due_at=NOW + timedelta(hours=42), opened_at=NOW))
    last_day = await client.get("/v1/qrt/follow-ups", params={"site_id": "abq", "last_hours": 24}, headers=CRUZ)
    assert [r["task_id"] for r in last_day.json()] == ["fu-od-soon", "fu-od-late"]  # not the one 30 hours old
    csv = await client.get("/v1/qrt/follow-ups", params={"site_id": "abq"}, headers={**CRUZ, "Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv") and "'=HYPERLINK(1)" in csv.text
    assert len(publisher.events(DisclosureAudited)) == 3  # each read of who and where is audited
    assert (await client.get("/v1/qrt/follow-ups", params={"site_id": "santa-fe"}, headers=ANA)).status_code == 403


async def test_an_attempt_is_logged_in_one_tap_and_the_funnel_counts_it(app, client, publisher) -> None:
    model = app.state.qrt_model
    model.apply(FollowUpOpened(task_id="fu-od-1", overdose_event_id="od-1", site_id="abq", kind="outreach",
                               occurred_at=NOW, due_at=NOW, opened_at=NOW))
    model.apply(deidentify(overdose(), b"k"))
    tap = await client.post("/v1/qrt/follow-ups/fu-od-1/attempts", json={"outcome": "engaged"},
                            headers={**CRUZ, "Idempotency-Key": "tap-1"})
    assert tap.status_code == 202
    [attempt] = publisher.events(FollowUpAttempted)
    assert attempt.attempt_id == "fu-od-1/cm-cruz/tap-1" and attempt.recorded_by == "cm-cruz"
    model.apply(attempt)
    funnel = (await client.get("/v1/qrt/funnel", params={"site_id": "abq"}, headers=CRUZ)).json()
    assert (funnel["overdose_calls"], funnel["follow_ups"], funnel["contacted"], funnel["engaged"],
            funnel["referred_to_treatment"]) == (1, 1, 1, 1, 0)
    missing = await client.post("/v1/qrt/follow-ups/fu-nope/attempts", json={"outcome": "engaged"}, headers=CRUZ)
    assert missing.status_code == 404
    bad = await client.post("/v1/qrt/follow-ups/fu-od-1/attempts", json={"outcome": "arrested"}, headers=CRUZ)
    assert bad.status_code == 422 and "outcome" in bad.text
    for when in ("1990-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "2026-11-20T15:30:00"):  # a bad clock, no offset
        late = await client.post("/v1/qrt/follow-ups/fu-od-1/attempts", headers=CRUZ,
                                 json={"outcome": "visited", "attempted_at": when})
        assert late.status_code == 422 and "attempted_at" in late.text


async def test_the_public_feed_is_de_identified(app, client) -> None:
    app.state.qrt_model.apply(deidentify(overdose(), b"k"))
    feed = await client.get("/v1/public/overdoses", params={"site_id": "abq"}, headers=CRUZ)
    assert feed.status_code == 200 and len(feed.json()) == 1
    for private in ("Bartholomew", "Quackenbush", "1994", "Central", "motel", ":30:"):
        assert private not in feed.text


async def test_the_console_list_shows_who_and_where_due_first_and_takes_an_attempt_in_one_tap(app, client,
                                                                                              publisher) -> None:
    model = app.state.qrt_model
    model.apply(FollowUpOpened(task_id="fu-od-1", overdose_event_id="od-1", site_id="abq", kind="outreach",
                               occurred_at=NOW, due_at=NOW + timedelta(hours=72), opened_at=NOW,
                               person=overdose().person, location_description="motel parking lot"))
    assert (await client.post("/console/login", data={"token": "local-dev-token-cm-cruz"})).status_code == 303
    page = (await client.get("/console/qrt")).text
    assert "Bartholomew Quackenbush" in page and "4400 Central Ave SE" in page and "(scene)" in page
    assert len(publisher.events(DisclosureAudited)) == 1  # the showing is audited
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"csrf_token": csrf, "outcome": "not_home", "tap": "fu-od-1-0-not_home"}
    for _ in range(2):  # a double tap
        done = await client.post("/console/qrt/fu-od-1/attempts", data=form)
        assert done.status_code == 303 and done.headers["location"] == "/console/qrt?done=not_home"
    assert {a.attempt_id for a in publisher.events(FollowUpAttempted)} == {"fu-od-1/cm-cruz/fu-od-1-0-not_home"}
    model.apply(publisher.events(FollowUpAttempted)[0])
    tried = (await client.get("/console/qrt")).text.split('data-testid="attempts">')[1].split("</ul>")[0]
    when = local_time(publisher.events(FollowUpAttempted)[0].attempted_at, "America/Denver")
    assert tried == f"<li>Not home, {when} by Cruz M. (outreach)</li>"  # each attempt: when, and by whom
    forged = await client.post("/console/qrt/fu-od-1/attempts", data={**form, "csrf_token": "forged"})
    assert forged.status_code == 403
    client.cookies.clear()
    await client.post("/console/login", data={"token": "local-dev-token-cm-ana"})  # abq case manager: same site
    assert (await client.get("/console/qrt")).status_code == 200


async def test_a_fatal_overdoses_card_is_for_the_family_with_no_treatment_step(app, client, publisher) -> None:
    app.state.qrt_model.apply(FollowUpOpened(
        task_id="fu-od-9", overdose_event_id="od-9", site_id="abq", kind="family_support", occurred_at=NOW,
        due_at=NOW + timedelta(hours=72), opened_at=NOW, person=overdose().person, location_description="motel"))
    assert (await client.post("/console/login", data={"token": "local-dev-token-cm-cruz"})).status_code == 303
    page = (await client.get("/console/qrt")).text
    assert "The family of Bartholomew Quackenbush" in page and "died of an overdose" in page
    assert "bereavement" in page and "Family supported, resources given" in page
    assert "Referred to treatment" not in page  # the words and the buttons fit what happened
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    refused = await client.post("/console/qrt/fu-od-9/attempts",
                                data={"csrf_token": csrf, "outcome": "referred_to_treatment", "tap": "t"})
    assert refused.status_code == 422 and "no treatment step" in refused.text
    assert publisher.events(FollowUpAttempted) == []


async def test_the_states_24_hour_report_has_its_fields_and_names_no_one(app, client, publisher) -> None:
    from services.kernel.cad import DrugType

    model = app.state.qrt_model
    model.apply(overdose("od-7", drug_type=DrugType.opioid, occurred_at=NOW.replace(second=41)))
    model.apply(overdose("od-8", agency_id="sfpd"))  # an agency that does not serve abq: dead-lettered, left out
    model.apply(overdose("od-old", occurred_at=NOW - timedelta(hours=30)))
    answer = await client.get("/v1/qrt/state-report", params={"site_id": "abq"}, headers=CRUZ)
    [row] = answer.json()
    assert row["occurred_at"] == "2026-11-20T15:30:00Z" and row["report_due_by"] == "2026-11-21T15:30:00Z"
    assert (row["approximate_latitude"], row["approximate_longitude"]) == (35.081, -106.652)
    assert (row["naloxone_given"], row["naloxone_doses"], row["fatal"], row["sex"], row["age_range"],
            row["suspected_substance"], row["drug_type"], row["prior_overdose"]) == \
        (True, 2, False, "male", "25-34", "fentanyl", "opioid", True)
    assert row["report_id"].startswith("st-") and "od-7" not in answer.text  # a keyed id, not the CAD event's nor the public one
    for private in ("Bartholomew", "Quackenbush", "1994", "Central", "+15055550177", "motel"):
        assert private not in answer.text
    csv = await client.get("/v1/qrt/state-report", params={"site_id": "abq", "last_hours": 48},
                           headers={**CRUZ, "Accept": "text/csv"})
    assert csv.text.splitlines()[0].startswith("report_id,site_id,agency_id,occurred_at") and len(
        csv.text.splitlines()) == 3
    audits = [a for a in publisher.events(DisclosureAudited) if a.record_kind.value == "qrt_state_report"]
    assert len(audits) == 2
    refused = await client.get("/v1/qrt/state-report", params={"site_id": "santa-fe"}, headers=CRUZ)
    assert refused.status_code == 404 and "site_id" in refused.text  # Santa Fe does not enable it
