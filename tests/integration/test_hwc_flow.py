"""Handle With Care on the real broker: Friday-night encounter -> notice due Tuesday -> delivered -> acknowledged."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import eventually

pytestmark = pytest.mark.integration
DENVER = ZoneInfo("America/Denver")
FRIDAY_NIGHT = datetime(2027, 1, 15, 22, 30, tzinfo=DENVER)  # Monday 2027-01-18: MLK Day (RRULE in the .ics)
TUESDAY_START = datetime(2027, 1, 19, 7, 45, tzinfo=DENVER)
TOKEN = {"Authorization": "Bearer local-dev-token-apd"}
INCIDENT = {"incident_type": "DOMESTIC DISTURBANCE WITH WEAPON", "address": "1313 Mockingbird Lane",
            "narrative": "Officers observed broken glass", "other_people": ["Mortimer Quackenbush"],
            "officer_name": "Officer Quentin Marlowe"}


def encounter(cad_event_id: str, **child) -> dict:
    return {"cad_event_id": cad_event_id, "agency_id": "apd", "incident_id": "INC-77",
            "encountered_at": FRIDAY_NIGHT.isoformat(),
            "child": {"first_name": "Philippa", "last_name": "Quackenbush", "date_of_birth": "2016-09-02", "grade": "4",
                      **child},
            "school_id": "lincoln-es", "incident": INCIDENT}


async def test_friday_night_encounter_is_noticed_for_tuesday_and_acknowledged(system_factory) -> None:
    system = await system_factory("handle-with-care", now=FRIDAY_NIGHT + timedelta(minutes=2))
    for cad_id, spelling in (("CAD-C1", "Philippa"), ("CAD-C2", "PHILIPPA")):  # two agencies' reports, one child
        resp = await system.http.post("/v1/child-encounters", json=encounter(cad_id, first_name=spelling), headers=TOKEN)
        assert resp.status_code == 202, resp.text

    mail = await eventually(lambda: system.messages("email"))
    hook = await eventually(lambda: system.messages("webhook"))
    assert mail[0].to == "counselor@lincoln.example.org" and hook[0].to == "sis"
    payload = json.loads(hook[0].body)
    assert payload["words"] == "Handle With Care" and payload["school_id"] == "lincoln-es"
    hwc = system.apps["handle-with-care"].services["hwc"]
    [record] = await eventually(lambda: list(hwc.notices.values()) if any(
        r.state.merged_encounters == 2 for r in hwc.notices.values()) else None)
    request = record.request
    assert request.due_at == TUESDAY_START
    assert request.due_at.astimezone(DENVER).isoformat() == "2027-01-19T07:45:00-07:00"
    for text in (mail[0].body, hook[0].body):
        for leaked in ("Mockingbird", "WEAPON", "broken glass", "Mortimer", "Marlowe", "apd"):
            assert leaked not in text

    link = payload["acknowledge_url"].replace("http://handoff.test", "")
    assert (await system.http.post(link)).status_code == 200
    await eventually(lambda: list(hwc.notices.values())[0].state.acknowledged_at)

    system.clock.set(TUESDAY_START + timedelta(hours=1))  # past backup, coordinator and deadline times
    assert await hwc.publish_due_escalations() == 0
    assert len(system.messages("email")) == 1 and len(system.messages("webhook")) == 1


async def test_unknown_school_goes_to_triage_and_the_coordinator_places_the_child(system_factory) -> None:
    system = await system_factory("handle-with-care", now=FRIDAY_NIGHT + timedelta(minutes=2))
    coordinator = {"Authorization": "Bearer local-dev-token-coord-abq"}
    body = {**encounter("CAD-T1"), "school_id": None, "school_name_hint": "the school by the park"}
    assert (await system.http.post("/v1/child-encounters", json=body, headers=TOKEN)).status_code == 202

    async def queue():
        return (await system.http.get("/v1/districts/abq-ps/triage", headers=coordinator)).json()

    [item] = await eventually(queue)
    assert item["school_name_hint"] == "the school by the park" and "incident" not in item
    assert datetime.fromisoformat(item["due_at"]) == TUESDAY_START  # the district's schools start Tuesday 07:45
    # The coordinator is told at once that a child waits, with no child and no incident in the mail.
    [alert] = await eventually(lambda: system.messages("email"))
    assert alert.to == "hwc-coordinator@district.example.org" and "/console/triage" in alert.body
    assert "Philippa" not in alert.body and "Quackenbush" not in alert.body and "Mockingbird" not in alert.body
    resp = await system.http.post("/v1/triage/CAD-T1/resolve", json={"school_id": "lincoln-es"}, headers=coordinator)
    assert resp.status_code == 202
    mail = await eventually(lambda: [m for m in system.messages("email") if m.to == "counselor@lincoln.example.org"])
    assert "Mockingbird" not in mail[0].body
    await eventually(lambda: _empty(queue))
    system.clock.set(TUESDAY_START)  # placed: no reminder however late it gets
    for _ in range(5):
        await eventually(lambda: True, interval=0.2)
    assert len([m for m in system.messages("email") if m.to == "hwc-coordinator@district.example.org"]) == 1


async def test_a_disputed_child_placed_at_either_school_is_noticed_there(system_factory) -> None:
    """The officer names Lincoln, the district's roster has the child at Sunrise: triage, with both shown and
    the coordinator told why. Whichever school the coordinator places the child at is the one told."""
    from services.handle_with_care.entrypoints.worker import roster_secret
    from services.kernel.identity import roster_key

    coordinator = {"Authorization": "Bearer local-dev-token-coord-abq"}
    twins = [("Philippa", "CAD-D1", "lincoln-es", "counselor@lincoln.example.org"),   # the officer's school
             ("Ottoline", "CAD-D2", "sunrise-dc", "director@sunrise.example.org")]    # the roster's
    system = await system_factory("handle-with-care", now=FRIDAY_NIGHT + timedelta(minutes=2), reference_changes={
        "rosters": {"abq-ps": {roster_key(b"integration-key", name, "Quackenbush", date(2016, 9, 2)): "sunrise-dc"
                               for name, *_ in twins}}})
    assert roster_secret(system.settings) == b"integration-key"
    for name, cad_id, _school, _to in twins:
        body = encounter(cad_id, first_name=name)
        assert (await system.http.post("/v1/child-encounters", json=body, headers=TOKEN)).status_code == 202

    async def queue():
        return (await system.http.get("/v1/districts/abq-ps/triage", headers=coordinator)).json()

    items = await eventually(lambda: _at_least(queue, 2))
    assert {(i["school_id_given"], i["roster_school_id"]) for i in items} == {("lincoln-es", "sunrise-dc")}
    alerts = await eventually(lambda: [m for m in system.messages("email") if m.to == "hwc-coordinator@district.example.org"]
                              if len(system.messages("email")) >= 2 else None)
    assert all("roster does not have the child at" in a.body and "not known" not in a.body for a in alerts)
    for _name, cad_id, school_id, _to in twins:
        resp = await system.http.post(f"/v1/triage/{cad_id}/resolve", json={"school_id": school_id}, headers=coordinator)
        assert resp.status_code == 202
    for name, _cad_id, _school_id, to in twins:
        [notice] = await eventually(lambda to=to: [m for m in system.messages("email") if m.to == to])
        assert name in notice.body
    await eventually(lambda: _empty(queue))
    hwc = system.apps["handle-with-care"].services["hwc"]
    assert len(hwc.notices) == 2  # and nothing went back to triage
    assert len([m for m in system.messages("email") if m.to == "hwc-coordinator@district.example.org"]) == 2


async def _at_least(probe, n: int):
    found = await probe()
    return found if len(found) >= n else None


async def test_a_child_still_unplaced_before_the_deadline_brings_a_reminder(system_factory) -> None:
    system = await system_factory("handle-with-care", now=FRIDAY_NIGHT + timedelta(minutes=2))
    body = {**encounter("CAD-T2"), "school_id": "zzz-unknown"}
    assert (await system.http.post("/v1/child-encounters", json=body, headers=TOKEN)).status_code == 202
    coordinator = "hwc-coordinator@district.example.org"
    await eventually(lambda: [m for m in system.messages("email") if m.to == coordinator])
    queue = (await system.http.get("/v1/districts/abq-ps/triage",
                                   headers={"Authorization": "Bearer local-dev-token-coord-abq"})).json()
    assert queue[0]["school_id_given"] == "zzz-unknown"  # what the officer typed is kept
    system.clock.set(TUESDAY_START - timedelta(minutes=45))
    reminder = await eventually(lambda: [m for m in system.messages("email")
                                         if m.to == coordinator and "still" in (m.subject or "")])
    assert "Philippa" not in reminder[0].body


async def _empty(probe) -> bool:
    return (await probe()) == []


async def test_a_notice_is_tombstoned_in_its_changelogs_when_its_retention_ends(system_factory) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from services.messaging.kafka import client_options
    from services.messaging.streams import internal_topics

    system = await system_factory("handle-with-care", now=FRIDAY_NIGHT + timedelta(minutes=2))
    resp = await system.http.post("/v1/child-encounters", json=encounter("CAD-RET-1"), headers=TOKEN)
    assert resp.status_code == 202
    await eventually(lambda: system.messages("email"))
    worker = system.apps["handle-with-care"]
    hwc = worker.services["hwc"]
    [notice_id] = await eventually(lambda: list(hwc.notices.keys()))
    await eventually(lambda: all(r.get("outcome") != "pending" for r in hwc.delivery.deliveries.values()))

    system.clock.set(TUESDAY_START + timedelta(days=system.settings.child_data_retention_days, minutes=1))
    await eventually(lambda: notice_id not in hwc.notices and not list(hwc.delivery.deliveries.keys()))
    await eventually(lambda: system.app.state.hwc_model.requests.get(notice_id) is None)  # the API's copy too

    async def latest_values() -> dict:
        """The last value of every key in the tables' changelogs, as compaction would leave them."""
        names = [spec.name for spec in internal_topics(worker.app, system.settings) if spec.name.endswith("-changelog")]
        consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest",
                                    **client_options(system.settings))
        await consumer.start()
        try:
            partitions = [TopicPartition(n, p) for n in names for p in consumer.partitions_for_topic(n) or
                          range(system.settings.topic_partitions)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            latest: dict = {}
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        latest[(record.topic, record.key)] = record.value
            return latest
        finally:
            await consumer.stop()

    latest = await latest_values()
    about_the_notice = {key: value for key, value in latest.items() if notice_id.encode() in key[1]}
    assert about_the_notice and all(value is None for value in about_the_notice.values())  # tombstones only
    assert not [v for v in latest.values() if v and b"Quackenbush" in v]
