"""Pathways as a site's setting: every pathway a site runs is described the same way (clock, who is
paged, milestones, funnel, target), and the dashboard and the monthly report show each one's month
against its own target, LEAD's routes beside the Quick Response Team and self-referral."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.kernel.clock import FakeClock
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.quick_response.domain.deidentify import deidentify
from services.quick_response.events import FollowUpAttempted, FollowUpOpened
from services.self_referral.events import WalkInMilestoneRecorded, WalkInOpened
from tests.factories import NOW, overdose

REF = load_reference_data(REPO_ROOT / "config" / "local")



def test_each_site_lists_the_pathways_it_runs_lead_routes_first() -> None:
    abq = [p.key for p in runtime.pathway_catalogue(REF.sites["abq"])]
    assert abq == ["arrest_diversion", "social_contact", "community", "officer_intervention", "officer_prevention",
                   "quick_response", "self_referral"]
    assert [p.key for p in runtime.pathway_catalogue(REF.sites["santa-fe"])] == ["arrest_diversion", "social_contact"]
    qrt = next(p for p in runtime.pathway_catalogue(REF.sites["abq"]) if p.key == "quick_response")
    assert qrt.clock == "follow-up within 72 hours of the overdose" and qrt.target == "contacted 50% of follow-ups"
    intervention = next(p for p in runtime.pathway_catalogue(REF.sites["abq"]) if p.key == "officer_intervention")
    assert "legal deadline warned 14 days before" in intervention.clock


@pytest.fixture
async def app(memory_settings):
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    return runtime.build_http_app(settings, publisher=InMemoryPublisher(), clock=FakeClock(NOW + timedelta(hours=2)),
                                  follow_topics=False)


async def test_the_dashboard_and_the_monthly_report_show_every_pathway_against_its_target(app) -> None:
    qrt, walk_ins = app.state.qrt_model, app.state.walk_in_model
    qrt.apply(deidentify(overdose(), b"k"))
    qrt.apply(FollowUpOpened(task_id="fu-1", overdose_event_id="od-1", site_id="abq", kind="outreach", occurred_at=NOW,
                             due_at=NOW, opened_at=NOW))
    qrt.apply(FollowUpAttempted(attempt_id="a", task_id="fu-1", site_id="abq", outcome="engaged", recorded_by="cm-cruz",
                                attempted_at=NOW))
    walk_ins.apply(WalkInOpened(case_id="wi-1", walk_in_event_id="1", site_id="abq", station_id="foothills",
                                occurred_at=NOW, opened_at=NOW, paged=["vol-dana"], accept_by=NOW,
                                placement_due_at=NOW + timedelta(hours=24)))
    walk_ins.apply(WalkInMilestoneRecorded(milestone_id="m", case_id="wi-1", site_id="abq", milestone="declined",
                                           recorded_by="vol-dana", at=NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/console/login", data={"token": "local-dev-token-pm-abq"})).status_code == 303
        dashboard = (await client.get("/console/dashboard")).text
        for title in ("LEAD: arrest diversion", "Officer intervention (charges held)",
                      "Quick Response Team (naloxone plus)", "Self-referral (volunteer pool)"):
            assert title in dashboard
        assert "100%, meets" in dashboard  # the follow-up was contacted: 1 of 1 against 50%
        assert "0%, <strong>below</strong>" in dashboard  # the walk-in was not placed
        report = (await client.get("/console/reports/abq/2026-11")).text
        assert "Quick Response Team (naloxone plus)" in report and "pathways.csv" in report
        # In words, a measure per line (it prints whole on a page): no CSV column names, no 0.000.
        for label in ("Enrollment rate (enrolled of referred)", "Warm handoffs missed (nobody acknowledged)",
                      "Median minutes from page to acknowledgement", "Median minutes from the CAD event to the page",
                      "All referrals"):
            assert label in report, label
        assert "median_minutes" not in report and "0.000" not in report
        rows = (await client.get("/console/reports/abq/2026-11/pathways.csv")).text.splitlines()
        assert rows[0] == "month,site_id,pathway,stage,count,target_measure,target,rate,meets_target"
        assert "2026-11,abq,quick_response,contacted,1,contacted / follow-ups,0.500,1.000,yes" in rows
        assert "2026-11,abq,self_referral,walk-ins,1,placed within 24 h / walk-ins,0.500,0.000,no" in rows
        assert "2026-11,abq,arrest_diversion,referrals,0,enrolled / referrals,0.600,," in rows
        assert (await client.get("/console/reports/abq/11-2026/pathways.csv")).status_code == 422
        refused = await client.get("/console/reports/abq/11-2026")
        assert refused.status_code == 422  # a page for people: a sentence, no field name
        assert "A month is written as year and month, for example 2026-11." in refused.text
        assert "month:" not in refused.text
