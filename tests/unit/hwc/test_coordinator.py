"""District coordinators: the triage queue, resolving it, the figures; all behind their token."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.handle_with_care.domain.figures import HwcReadModel
from services.handle_with_care.entrypoints.console import _school_given
from services.handle_with_care.events import (
    HwcNoticeAcknowledged,
    HwcNoticeDelivered,
    HwcNoticeEscalated,
    HwcNoticeRequested,
    HwcTriageOpened,
    HwcTriageResolved,
    RecipientRole,
)
from services.kernel.cad import CadChildEncountered
from services.kernel.clock import FakeClock
from services.kernel.events import (
    AcknowledgedVia,
    Channel,
    DeliveryOutcome,
)
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from tests.factories import child

REF = load_reference_data(REPO_ROOT / "config" / "local")
DUE = datetime(2026, 11, 17, 14, 45, tzinfo=UTC)
COORD = {"Authorization": "Bearer local-dev-token-coord-abq"}


def district_of(school_id: str) -> str | None:
    return REF.schools[school_id].district_id if school_id in REF.schools else None


def notice(notice_id: str, delivered: datetime | None, acked: datetime | None, escalated: bool = False):
    events = [HwcNoticeRequested(notice_id=notice_id, child=child(), school_id="lincoln-es", due_at=DUE,
                                 requested_at=DUE - timedelta(hours=10))]
    if delivered:
        events.append(HwcNoticeDelivered(notice_id=notice_id, attempt_id=f"{notice_id}/a", recipient_role=RecipientRole.primary,
                                         contact_id="c", channel=Channel.email, outcome=DeliveryOutcome.delivered,
                                         attempt=1, delivered_at=delivered))
    if escalated:
        events.append(HwcNoticeEscalated(notice_id=notice_id, to_role=RecipientRole.backup, escalated_at=DUE))
    if acked:
        events.append(HwcNoticeAcknowledged(notice_id=notice_id, contact_id="c", via=AcknowledgedVia.link,
                                            acknowledged_at=acked))
    return events


def test_figures_per_district_and_week() -> None:
    model = HwcReadModel(district_of)
    for event in (notice("a", DUE - timedelta(hours=9), DUE - timedelta(hours=1))
                  + notice("b", DUE + timedelta(hours=1), None, escalated=True)
                  + notice("c", None, None)):
        model.apply(event)
        model.apply(event)  # twice: no difference
    [row] = model.figures(now=DUE + timedelta(hours=2))
    assert (row.district_id, row.notices, row.delivered, row.on_time, row.acknowledged, row.escalated, row.unresolved) == (
        "abq-ps", 3, 2, 1, 1, 1, 2)
    assert model.figures(now=DUE - timedelta(hours=5))[0].unresolved == 0


@pytest.fixture
def model() -> HwcReadModel:
    model = HwcReadModel(district_of)
    model.apply(HwcTriageOpened(cad_event_id="cad-9", agency_id="apd", district_id="abq-ps", child=child(),
                                school_name_hint="by the park", encountered_at=DUE - timedelta(hours=12),
                                opened_at=DUE - timedelta(hours=12)))
    return model


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
async def client(memory_settings, model, publisher):
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    app = runtime.build_http_app(settings, REF, publisher, FakeClock(DUE), follow_topics=False)
    app.state.hwc_model.triage.update(model.triage)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_coordinator_sees_and_resolves_the_triage_queue(client, publisher) -> None:
    assert (await client.get("/v1/districts/abq-ps/triage")).status_code == 401
    assert (await client.get("/v1/districts/other/triage", headers=COORD)).status_code == 403
    [item] = (await client.get("/v1/districts/abq-ps/triage", headers=COORD)).json()
    assert item["cad_event_id"] == "cad-9" and item["school_name_hint"] == "by the park"
    bad = await client.post("/v1/triage/cad-9/resolve", json={"school_id": "nowhere"}, headers=COORD)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "school_id"
    ok = await client.post("/v1/triage/cad-9/resolve", json={"school_id": "lincoln-es"}, headers=COORD)
    assert ok.status_code == 202
    [resolved] = publisher.events(HwcTriageResolved)
    assert not publisher.events(CadChildEncountered)  # a placement is no CAD event: the worker sends from it
    assert resolved.resolved_by == "coord-abq" and resolved.child == child()
    assert (resolved.school_id, resolved.encountered_at, resolved.agency_id) == ("lincoln-es", DUE - timedelta(hours=12), "apd")


async def test_coordinator_figures_and_metrics(client) -> None:
    figures = await client.get("/v1/districts/abq-ps/hwc-figures", headers=COORD)
    assert figures.status_code == 200 and figures.json()["rows"] == []
    metrics = await client.get("/metrics", headers=COORD)
    assert 'handoff_hwc_triage_open{district="abq-ps"} 1.0' in metrics.text
    assert (await client.get("/metrics")).status_code == 401


async def test_the_console_triage_keeps_what_the_officer_gave_and_preselects_no_school(client) -> None:
    login = await client.post("/console/login", data={"token": "local-dev-token-coord-abq"})
    assert login.status_code == 303
    page = (await client.get("/console/triage")).text
    assert '<option value="" selected disabled>Choose a school</option>' in page
    assert page.count(" selected") == 1 and 'name="school_id" required' in page
    assert 'school given: &#34;by the park&#34;' in page  # the officer's words, escaped
    given = HwcTriageOpened(cad_event_id="cad-10", agency_id="apd", district_id="abq-ps", child=child(),
                            encountered_at=DUE - timedelta(hours=12), opened_at=DUE - timedelta(hours=12),
                            school_id_given="zzz-unknown", due_at=DUE)
    assert _school_given(given) == 'id "zzz-unknown" (not in the directory)'


def test_a_placement_that_could_not_be_sent_is_back_in_the_queue_and_a_replayed_encounter_is_not(model) -> None:
    [item] = model.open_triage("abq-ps")
    model.apply(HwcTriageResolved(cad_event_id="cad-9", school_id="lincoln-es", resolved_by="coord-abq", resolved_at=DUE))
    assert model.open_triage("abq-ps") == []
    model.apply(item)  # the encounter again (a CAD retry): the child stays placed
    assert model.open_triage("abq-ps") == []
    reopened = item.model_copy(update={"reopened": True, "reason": "placing the child at lincoln-es failed: gone",
                                       "opened_at": DUE})
    model.apply(reopened)
    assert model.open_triage("abq-ps") == [reopened]


def test_one_incidents_children_are_seen_by_state_and_forgotten_with_their_notice() -> None:
    from services.handle_with_care.events import HwcNoticeExpired, HwcNoticeRequested

    model = HwcReadModel(district_of)
    request = HwcNoticeRequested(notice_id="n-1", child=child(), school_id="lincoln-es", due_at=DUE, requested_at=DUE,
                                 agency_id="apd", incident_id="INC-1")
    model.apply(request)
    model.apply(HwcTriageOpened(cad_event_id="cad-2", agency_id="apd", district_id="abq-ps", child=child(),
                                encountered_at=DUE, opened_at=DUE, due_at=DUE, incident_id="INC-1"))
    assert sorted(o.state for o in model.for_incident("apd", "INC-1")) == ["in_triage", "notice_requested"]
    assert model.for_incident("apd", "INC-2") == [] and model.for_incident("other", "INC-1") == []
    model.apply(HwcNoticeExpired(notice_id="n-1", expired_at=DUE))
    assert [o.state for o in model.for_incident("apd", "INC-1")] == ["in_triage"] and not model.incidents


async def test_a_refused_placement_comes_back_with_the_reason_beside_the_childs_school_list(client, model,
                                                                                          publisher) -> None:
    await client.post("/console/login", data={"token": "local-dev-token-coord-abq"})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/console/triage")).text).group(1)

    none = await client.post("/console/triage/cad-9/resolve", data={"csrf_token": csrf, "school_id": ""})
    assert none.status_code == 422 and none.headers["content-type"].startswith("text/html")
    assert 'data-testid="school-error">Choose a school of your district for this child (none was chosen).' in none.text
    assert 'aria-invalid="true"' in none.text

    unknown = await client.post("/console/triage/cad-9/resolve", data={"csrf_token": csrf, "school_id": "nowhere"})
    assert unknown.status_code == 422 and "(unknown school)" in unknown.text
    assert publisher.events(HwcTriageResolved) == []

    placed = await client.post("/console/triage/cad-9/resolve", data={"csrf_token": csrf, "school_id": "lincoln-es"})
    assert placed.status_code == 303 and placed.headers["location"] == "/console/triage?done=1"
    client._transport.app.state.hwc_model.apply(publisher.events(HwcTriageResolved)[0])
    again = await client.post("/console/triage/cad-9/resolve", data={"csrf_token": csrf, "school_id": "lincoln-es"})
    assert again.status_code == 409 and "That child was already placed: nothing was sent twice." in again.text
    assert len(publisher.events(HwcTriageResolved)) == 1

