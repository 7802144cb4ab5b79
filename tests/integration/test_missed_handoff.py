"""Off the happy path of a LEAD page, on the real broker: nobody acknowledges (a missed handoff, with
its fallback), and the referral stops waiting for a case manager before anyone does (paging stops,
and stays stopped across a restart)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import eventually

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))
APD = {"Authorization": "Bearer local-dev-token-apd"}
PM = {"Authorization": "Bearer local-dev-token-pm-abq"}
OFFICER = "+15055550143"


async def submit(system, cad_event_id: str) -> str:
    body = {**json.loads(open("config/local/demo/referral.json").read()), "cad_event_id": cad_event_id,
            "occurred_at": NOW.isoformat()}
    resp = await system.http.post("/v1/referrals", json=body, headers=APD)
    assert resp.status_code == 202, resp.text
    return resp.json()["referral_id"]


def to(system, kind: str, address: str):
    return [m for m in system.messages(kind) if m.to == address]


async def test_a_page_nobody_acknowledges_reaches_the_fallback_the_officer_and_the_worklist(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    referral_id = await submit(system, "CAD-MISSED-1")
    await eventually(lambda: system.messages("sms"))

    system.clock.advance(minutes=31)  # past both steps of both loops (5 + 10 minutes, twice)
    pm_mail = await eventually(lambda: to(system, "email", "pm@lead.example.org"), timeout=60)
    assert pm_mail[0].subject.startswith("MISSED LEAD warm handoff")
    officer = await eventually(lambda: [m for m in to(system, "sms", OFFICER) if "no LEAD case manager" in m.body])
    assert len(officer) == 1

    async def worklist():
        rows = (await system.http.get("/v1/sites/abq/outreach-worklist", headers=PM)).json()
        return rows if rows and "handoff_missed" in rows[0]["flags"] else None

    [row] = await eventually(worklist)
    assert row["referral_id"] == referral_id and row["status"] == "requested"
    funnel = (await system.http.get("/v1/sites/abq/funnel", headers=PM)).json()["rows"]
    assert funnel[0]["handoffs_missed"] == 1
    await eventually(lambda: True, interval=1.0)  # room for a repeat to show itself
    assert len(to(system, "email", "pm@lead.example.org")) == 1 and system.inbox.inbox.duplicates == []


async def test_a_rejected_referral_stops_paging_and_stays_stopped_across_a_restart(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    referral_id = await submit(system, "CAD-REJECT-1")
    await eventually(lambda: system.messages("sms"))
    resp = await system.http.post(f"/v1/referrals/{referral_id}/status", headers=PM,
                                  json={"status": "rejected", "reason": "ineligible"})
    assert resp.status_code == 202, resp.text
    notifier = system.apps["notifier"].services["notifier"]
    await eventually(lambda: [r for r in notifier.pages.values() if r.state.stopped_because == "status rejected"])

    await system.restart("notifier")
    notifier = system.apps["notifier"].services["notifier"]
    await eventually(lambda: [r for r in notifier.pages.values() if r.state.stopped_at])
    sent = len(system.inbox.inbox.messages)
    system.clock.advance(minutes=31)
    for _ in range(10):  # timer ticks well past every step
        await eventually(lambda: True, interval=0.2)
    assert len(system.inbox.inbox.messages) == sent
    assert not to(system, "sms", system.reference.case_managers["cm-cruz"].phone)


async def test_a_contact_after_escalation_stops_the_next_loop_across_a_restart(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    referral_id = await submit(system, "CAD-CONTACT-1")
    await eventually(lambda: system.messages("sms"))
    backup = system.reference.case_managers["cm-cruz"]
    system.clock.advance(minutes=5)
    await eventually(lambda: to(system, "sms", backup.phone))  # step two paged the outreach coordinator

    staff = {"Authorization": "Bearer local-dev-token-cm-cruz"}
    resp = await system.http.post(f"/v1/referrals/{referral_id}/engagement", json={"milestone": "contacted"},
                                  headers=staff)
    assert resp.status_code == 202, resp.text
    await eventually(lambda: [r for r in system.apps["notifier"].services["notifier"].pages.values()
                              if r.state.stopped_because == "milestone contacted"])
    await system.restart("notifier")
    sent = len(system.inbox.inbox.messages)
    system.clock.advance(minutes=31)
    for _ in range(10):
        await eventually(lambda: True, interval=0.2)
    assert len(system.inbox.inbox.messages) == sent
