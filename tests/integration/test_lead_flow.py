"""LEAD on the real broker: HTTP referral -> SMS and email page -> acknowledgement -> escalation (or not)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.notifier.domain.schedule import on_call_at
from tests.conftest import eventually

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))
TOKEN = {"Authorization": "Bearer local-dev-token-apd"}


def referral_body(cad_event_id: str) -> dict:
    body = json.loads(open("config/local/demo/referral.json").read())
    return {**body, "cad_event_id": cad_event_id, "occurred_at": NOW.isoformat()}


async def submit(system, cad_event_id: str) -> str:
    resp = await system.http.post("/v1/referrals", json=referral_body(cad_event_id), headers=TOKEN)
    assert resp.status_code == 202, resp.text
    return resp.json()["referral_id"]


def on_call(system):
    site = system.reference.sites["abq"]
    return system.reference.case_managers[on_call_at(site.on_call, site.zone, NOW)]


async def test_referral_pages_by_sms_and_email_and_acknowledgement_stops_escalation(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    await submit(system, "CAD-ACK-1")
    cm = on_call(system)
    sms = await eventually(lambda: system.messages("sms"))
    mail = await eventually(lambda: system.messages("email"))
    assert sms[0].to == cm.phone and mail[0].to == cm.email
    assert "bus shelter, 4th St and Gold Ave SW" in sms[0].body and "+15055550143" in sms[0].body
    assert "Example" not in sms[0].body  # no name in the page

    link = sms[0].body.split("Ack: ")[1].split(" ")[0].replace("http://handoff.test", "")
    assert (await system.http.get(link)).status_code == 200  # GET only shows the form
    assert (await system.http.post(link)).status_code == 200
    officer = await eventually(lambda: [m for m in system.messages("sms") if m.to == "+15055550143"])
    assert "acknowledged" in officer[0].body

    system.clock.advance(minutes=30)  # well past every step's deadline
    notifier = system.apps["notifier"].services["notifier"]
    await eventually(lambda: all(not r.state.exhausted and r.state.acknowledged_at
                                 for r in notifier.pages.values()))
    assert await notifier.publish_due_escalations() == 0
    assert not [m for m in system.messages("sms") if m.to == system.reference.case_managers["cm-cruz"].phone]


async def test_unacknowledged_page_escalates_to_step_two_on_time(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    await submit(system, "CAD-ESC-1")
    await eventually(lambda: system.messages("sms"))
    backup = system.reference.case_managers["cm-cruz"]

    system.clock.advance(minutes=4, seconds=59)
    for _ in range(5):  # several timer ticks at 4:59: nothing yet
        assert not [m for m in system.messages("sms") if m.to == backup.phone]
        await eventually(lambda: True, interval=0.1)
    system.clock.advance(seconds=1)
    escalated = await eventually(lambda: [m for m in system.messages("sms") if m.to == backup.phone])
    assert escalated[0].body.startswith("ESCALATED")
    hook = await eventually(lambda: system.messages("webhook"))
    assert hook[0].to == "outreach" and json.loads(hook[0].body)["type"] == "lead.page"


async def test_same_cad_event_three_times_is_one_referral_and_one_page(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    ids = {await submit(system, "CAD-DUP-1") for _ in range(3)}
    assert len(ids) == 1
    await eventually(lambda: len(system.messages("sms")) >= 1 and len(system.messages("email")) >= 1)
    intake = system.apps["referral-intake"].services["intake"]
    await eventually(lambda: len(list(intake.referrals.keys())) == 1)
    await eventually(lambda: True, interval=1.0)  # give any duplicate a chance to arrive
    assert len(system.messages("sms")) == 1 and len(system.messages("email")) == 1
    assert system.inbox.inbox.duplicates == []


async def test_engagement_is_tracked_from_acknowledgement_to_enrollment(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    referral_id = await submit(system, "CAD-ENG-1")
    cm = on_call(system)
    staff = {"Authorization": f"Bearer local-dev-token-{cm.case_manager_id}"}
    pm = {"Authorization": "Bearer local-dev-token-pm-abq"}
    sms = await eventually(lambda: system.messages("sms"))
    link = sms[0].body.split("Ack: ")[1].split(" ")[0].replace("http://handoff.test", "")
    system.clock.advance(minutes=7)
    await system.http.post(link)

    async def status() -> str | None:
        resp = await system.http.get(f"/v1/referrals/{referral_id}", headers=staff)
        return resp.json()["status"] if resp.status_code == 200 else None

    await eventually(lambda: _is(status, "accepted"))
    view = (await system.http.get(f"/v1/referrals/{referral_id}", headers=staff)).json()
    assert view["seconds_to_acknowledge"] == 7 * 60  # on the fake clock: exact

    for milestone in ("contacted", "enrolled"):
        resp = await system.http.post(f"/v1/referrals/{referral_id}/engagement", json={"milestone": milestone},
                                      headers=staff)
        assert resp.status_code == 202, resp.text
    await eventually(lambda: _is(status, "in_progress"))
    funnel = await eventually(lambda: _funnel_enrolled(system, pm))
    assert funnel["contacted"] == 1 and funnel["referrals"] == 1

    illegal = await system.http.post(f"/v1/referrals/{referral_id}/status", json={"status": "accepted"}, headers=staff)
    assert illegal.status_code == 409


async def _is(probe, expected) -> bool:
    return (await probe()) == expected


async def _funnel_enrolled(system, headers):
    rows = (await system.http.get("/v1/sites/abq/funnel", headers=headers)).json()["rows"]
    return rows[0] if rows and rows[0]["enrolled"] == 1 else None


async def test_same_cad_record_replayed_three_times_on_kafka_is_one_page(system_factory) -> None:
    from services.kernel.cad import CadReferralMade
    from services.kernel.topics import CAD_REFERRALS
    from services.messaging.avro import AvroCodec, registry_from_url
    from services.messaging.kafka import KafkaPublisher

    system = await system_factory("referral-intake", "notifier", now=NOW)
    producer = KafkaPublisher(system.settings, AvroCodec(registry_from_url(system.settings.schema_registry_url)))
    await producer.start()
    try:
        record = CadReferralMade.model_validate(referral_body("CAD-KAFKA-1"))
        for _ in range(3):
            await producer.publish(CAD_REFERRALS, record.cad_event_id, record)
    finally:
        await producer.stop()
    await eventually(lambda: len(system.messages("sms")) >= 1 and len(system.messages("email")) >= 1)
    intake = system.apps["referral-intake"].services["intake"]
    await eventually(lambda: len(list(intake.referrals.keys())) == 1)
    await eventually(lambda: True, interval=1.0)  # room for a duplicate to show itself
    assert len(system.messages("sms")) == 1 and len(system.messages("email")) == 1
