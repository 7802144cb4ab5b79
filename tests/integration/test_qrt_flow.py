"""Quick Response Teams on the real broker: an overdose -> a follow-up due exactly at the site's window
-> attempts logged by the team -> the team lead told before the window closes -> the funnel and the
de-identified feed updated; a restart in the middle loses nothing and repeats no alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import eventually
from tests.factories import overdose

pytestmark = pytest.mark.integration
OCCURRED = datetime(2027, 3, 2, 1, 47, 12, tzinfo=UTC)
APD = {"Authorization": "Bearer local-dev-token-apd"}
CRUZ = {"Authorization": "Bearer local-dev-token-cm-cruz"}  # abq's team lead (config/local/sites.toml)
PRIVATE = ("Bartholomew", "Quackenbush", "1994", "Central", "+15055550177", "motel")


async def test_an_overdose_is_followed_up_within_its_window_and_the_lead_warned_before_it_closes(system_factory):
    system = await system_factory("quick-response", now=OCCURRED + timedelta(minutes=20))
    event = overdose("EMS-7781", occurred_at=OCCURRED).model_dump(mode="json")
    answer = await system.http.post("/v1/overdoses", json=event, headers=APD)
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["task_id"]
    assert (await system.http.post("/v1/overdoses", json=event, headers=APD)).status_code == 202  # a CAD retry

    qrt = system.apps["quick-response"].services["qrt"]
    record = await eventually(lambda: qrt.follow_ups.get(task_id))
    assert record.state.due_at == OCCURRED + timedelta(hours=72)

    async def listed():
        rows = (await system.http.get("/v1/qrt/follow-ups", params={"site_id": "abq"}, headers=CRUZ)).json()
        return rows if rows else None

    [row] = await eventually(listed)  # one follow-up, though CAD sent the overdose twice
    assert row["task_id"] == task_id and row["contact_address"].startswith("4400")

    tap = await system.http.post(f"/v1/qrt/follow-ups/{task_id}/attempts", json={"outcome": "not_home"},
                                 headers={**CRUZ, "Idempotency-Key": "first-visit"})
    assert tap.status_code == 202
    await eventually(lambda: qrt.follow_ups[task_id].state.attempts == ("not_home",))

    system.clock.set(OCCURRED + timedelta(hours=60, seconds=-1))  # 12 hours before it closes, less a second
    assert await qrt.publish_due_warnings() == 0
    qrt = (await system.restart("quick-response")).services["qrt"]  # recovers its follow-ups from the changelog
    await eventually(lambda: qrt.follow_ups.get(task_id))
    system.clock.set(OCCURRED + timedelta(hours=60))
    sms = await eventually(lambda: system.messages("sms"))
    hook = await eventually(lambda: system.messages("webhook"))
    assert [m.to for m in sms] == ["+15055550103"] and json.loads(hook[0].body)["task_id"] == task_id
    for text in (sms[0].body, hook[0].body):
        for private in PRIVATE:
            assert private not in text

    await system.http.post(f"/v1/qrt/follow-ups/{task_id}/attempts", json={"outcome": "referred_to_treatment"},
                           headers=CRUZ)
    await eventually(lambda: qrt.follow_ups[task_id].state.closed_by == "referred_to_treatment")

    async def funnel():
        figures = (await system.http.get("/v1/qrt/funnel", params={"site_id": "abq", "week": "2027-03-01"},
                                         headers=CRUZ)).json()
        return figures if figures["referred_to_treatment"] else None

    figures = await eventually(funnel)
    assert (figures["overdose_calls"], figures["follow_ups"], figures["contacted"], figures["engaged"]) == (1, 1, 1, 1)
    feed = (await system.http.get("/v1/public/overdoses", params={"site_id": "abq"}, headers=CRUZ)).text
    assert '"hour":"2027-03-02T01:00:00Z"' in feed
    for private in PRIVATE:
        assert private not in feed
    system.clock.set(OCCURRED + timedelta(hours=71))
    assert await qrt.publish_due_warnings() == 0
    assert len(system.messages("sms")) == 1  # told once, across the restart


async def test_the_public_report_carries_nothing_that_leads_back_to_its_event(system_factory):
    """No correlation id, no header at all, and an id that neither the CAD event id nor the state report's id
    matches: what EMS was answered (the correlation id, its own event id) finds nothing on the public topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from services.messaging.kafka import client_options
    from services.quick_response.topics import OVERDOSE_REPORTS

    system = await system_factory("quick-response", now=OCCURRED + timedelta(minutes=20))
    answer = await system.http.post("/v1/overdoses", json=overdose("EMS-7790", occurred_at=OCCURRED).model_dump(mode="json"),
                                    headers=APD)
    assert answer.status_code == 202
    correlation_id = answer.json()["correlation_id"]
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **client_options(system.settings))
    await consumer.start()
    try:
        topic = OVERDOSE_REPORTS.qualified(system.settings.topic_prefix)
        consumer.assign([TopicPartition(topic, p) for p in range(system.settings.topic_partitions)])

        async def fetched():
            return [r for records in (await consumer.getmany(timeout_ms=500)).values() for r in records]

        [record] = await eventually(fetched)
    finally:
        await consumer.stop()
    assert not record.headers
    for linked in (correlation_id, "EMS-7790"):
        assert linked.encode() not in record.value and linked.encode() not in record.key
    state = (await system.http.get("/v1/qrt/state-report", params={"site_id": "abq"}, headers=CRUZ))
    assert state.status_code == 200 and record.key.decode() not in state.text
