"""No personal value used in the flows appears in any log line (issue: reliability and security).

Runs a LEAD referral (page, acknowledgement, engagement), Handle With Care encounters (a notice
and a triage), an overdose (a Quick Response follow-up, its list read, an attempt) and a walk-in (volunteers
paged, one accepts and sees the first name, a milestone and an expense) end to end
with every log line captured, at the production level, then searches the capture for each personal
value the test used.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.kernel.topics import AUDIT
from services.platform.logs import configure_logging
from tests.conftest import eventually

pytestmark = pytest.mark.integration
DENVER = ZoneInfo("America/Denver")
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=DENVER)
AGENCY = {"Authorization": "Bearer local-dev-token-apd"}
PERSON = {"first_name": "Zebulon", "last_name": "Featherstonehaugh", "date_of_birth": "1987-03-14",
          "description": "wearing a tangerine poncho"}
OFFICER = {"name": "Officer Quentin Marlowe", "badge_number": "B-4471", "callback_phone": "+15055550143"}
CHILD = {"first_name": "Philippa", "last_name": "Quackenbush", "date_of_birth": "2016-09-02", "grade": "4"}
PERSONAL_VALUES = ["Zebulon", "Featherstonehaugh", "1987-03-14", "tangerine poncho", "Quentin Marlowe",
                   "+15055550143", "5550143", "Sycamore Underpass", "Philippa", "Quackenbush", "2016-09-02",
                   "1313 Mockingbird", "broken glass", "Mortimer", "the school by the creek",
                   "counselor@lincoln.example.org", "+15055550101", "+15055550102",
                   "Bartholomew", "1994-03-17", "4400 Central", "+15055550177", "motel parking lot",
                   "Ermengarde", "+15055550201"]


@pytest.fixture
def captured_logs():
    stream = io.StringIO()
    configure_logging("INFO", "json", service="leak-test", stream=stream)
    yield stream
    configure_logging("WARNING", "json", stream=io.StringIO())


async def test_flows_log_no_personal_data(system_factory, captured_logs) -> None:
    system = await system_factory("referral-intake", "notifier", "handle-with-care", "quick-response", "self-referral",
                                  now=NOW)
    referral = {"cad_event_id": "CAD-LEAK-1", "agency_id": "apd", "site_id": "abq", "referral_type": "social_contact",
                "occurred_at": NOW.isoformat(), "officer": OFFICER, "person": PERSON,
                "location": {"description": "Sycamore Underpass by the river"}}
    resp = await system.http.post("/v1/referrals", json=referral, headers=AGENCY)
    referral_id = resp.json()["referral_id"]
    bad = await system.http.post("/v1/referrals", json={**referral, "person": {**PERSON, "first_name": ""}},
                                 headers=AGENCY)
    assert bad.status_code == 422
    sms = await eventually(lambda: system.messages("sms"))
    link = sms[0].body.split("Ack: ")[1].split(" ")[0].replace("http://handoff.test", "")
    await system.http.post(link)
    cm = sms[0].idempotency_key.split("/")[3]
    staff = {"Authorization": f"Bearer local-dev-token-{cm}"}

    async def accepted() -> bool:
        r = await system.http.get(f"/v1/referrals/{referral_id}", headers=staff)
        return r.status_code == 200 and r.json()["status"] == "accepted"

    await eventually(accepted)
    await system.http.post(f"/v1/referrals/{referral_id}/engagement", json={"milestone": "contacted"}, headers=staff)

    incident = {"incident_type": "DISTURBANCE", "address": "1313 Mockingbird Lane", "narrative": "broken glass",
                "other_people": ["Mortimer Quackenbush"], "officer_name": OFFICER["name"]}
    encounter = {"cad_event_id": "CAD-LEAK-C1", "agency_id": "apd", "incident_id": "INC-1",
                 "encountered_at": NOW.isoformat(), "child": CHILD, "school_id": "lincoln-es", "incident": incident}
    await system.http.post("/v1/child-encounters", json=encounter, headers=AGENCY)
    await system.http.post("/v1/child-encounters", headers=AGENCY, json={
        **encounter, "cad_event_id": "CAD-LEAK-C2", "school_id": None, "school_name_hint": "the school by the creek"})
    await eventually(lambda: system.messages("email") and system.messages("webhook"))

    from tests.factories import overdose

    team = {"Authorization": "Bearer local-dev-token-cm-cruz"}
    body = overdose("EMS-LEAK-1", occurred_at=NOW).model_dump(mode="json")
    assert (await system.http.post("/v1/overdoses", json=body, headers=AGENCY)).status_code == 202

    async def listed() -> bool:
        rows = (await system.http.get("/v1/qrt/follow-ups", params={"site_id": "abq"}, headers=team)).json()
        return bool(rows)

    await eventually(listed)
    await system.http.post("/v1/qrt/follow-ups/fu-EMS-LEAK-1/attempts", json={"outcome": "not_home"}, headers=team)

    from tests.factories import walk_in

    body = walk_in("STN-LEAK-1", occurred_at=NOW, first_name="Ermengarde").model_dump(mode="json")
    assert (await system.http.post("/v1/walk-ins", json=body, headers=AGENCY)).status_code == 202
    page = await eventually(lambda: [m for m in system.messages("sms") if m.to == "+15055550201"] or None)
    volunteer_link = page[0].body.split("http://handoff.test")[1].split()[0]
    model = system.app.state.walk_in_model
    await eventually(lambda: model.walk_ins.get("wi-STN-LEAK-1"))
    await system.http.post(volunteer_link, data={"action": "accept"})
    await eventually(lambda: model.walk_ins["wi-STN-LEAK-1"].accepted)
    assert "Ermengarde" in (await system.http.get(volunteer_link)).text
    await system.http.post(volunteer_link, data={"action": "milestone", "milestone": "volunteer_arrived"})
    await system.http.post(volunteer_link, data={"action": "expense", "kind": "meals", "amount": "9.50",
                                                 "incurred_on": NOW.date().isoformat()})
    await eventually(lambda: True, interval=1.0)  # let the last log lines land

    logs = captured_logs.getvalue()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    events = {line.get("event") for line in lines}
    assert {"referral_opened", "page_opened", "hwc_notice_requested", "delivery", "engagement_recorded",
            "hwc_encounter_needs_triage", "follow_up_opened", "overdose_accepted", "walk_in_opened",
            "walk_in_accepted"} <= events, \
        "the capture must hold the flows' own log lines"
    assert any(line.get("correlation_id") for line in lines)
    leaked = [value for value in PERSONAL_VALUES if value in logs]
    assert leaked == [], f"personal data in logs: {leaked}"

    # The audit topic records each disclosure (page, officer confirmation, notice), never the data.
    raw, audits = await read_audit(system.settings)
    assert [value for value in PERSONAL_VALUES if value.encode() in raw] == []
    assert {a.record_kind.value for a in audits} >= {"lead_page", "lead_officer_confirmation", "hwc_notice",
                                                     "qrt_follow_up_list", "walk_in_page", "walk_in_details"}
    assert all(a.correlation_id for a in audits)


async def read_audit(settings) -> tuple[bytes, list]:
    """Every audit record so far: the raw bytes (to search) and the decoded events."""
    from aiokafka import AIOKafkaConsumer

    from services.messaging.avro import AvroCodec, registry_from_url
    from services.messaging.events import DisclosureAudited
    from services.messaging.kafka import client_options

    consumer = AIOKafkaConsumer(AUDIT.qualified(settings.topic_prefix), auto_offset_reset="earliest",
                                enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    values: list[bytes] = []
    try:
        while batch := await consumer.getmany(timeout_ms=2000):
            values += [r.value for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    codec = AvroCodec(registry_from_url(settings.schema_registry_url))
    return b"".join(values), [await codec.decode(v, (DisclosureAudited,)) for v in values]
