"""What the broker's disks and the workers' memory hold after the LEAD, HWC, QRT and walk-in flows: no personal
value in the clear, anywhere (issue #26). The test reads the broker's log segment files as a thief with the disks
would, every topic and changelog of every prefix, and the raw values of every worker's tables.

The one window where a name is readable: a record an agency's CAD system writes itself, in plain text, on a CAD
intake topic, for that topic's retention (README, "How personal data is protected"). Nothing Handoff writes from
it is plain."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.handle_with_care.topics import HWC_NOTICES
from services.kernel.topics import CAD_REFERRALS, PAGES, REFERRALS
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher
from tests.conftest import eventually
from tests.factories import cad_referral, overdose, walk_in

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OCCURRED = datetime(2027, 3, 2, 1, 47, 12, tzinfo=UTC)  # a Monday evening in Albuquerque
APD = {"Authorization": "Bearer local-dev-token-apd"}
WORKERS = ("referral-intake", "notifier", "handle-with-care", "quick-response", "self-referral")


def personal_values(tag: str) -> dict[str, str]:
    """Values no other test uses, so that a hit anywhere on the broker is this test's."""
    return {"first_name": f"Zephyrine{tag}", "last_name": f"Quillfeather{tag}", "description": f"plaid parka {tag}",
            "officer": f"Ofc. Marlowe{tag}", "location": f"bus shelter {tag}", "child_first": f"Philippa{tag}",
            "child_last": f"Thistlewood{tag}", "address": f"1313 Mockingbird {tag}", "narrative": f"broken glass {tag}",
            "od_first": f"Bartholomew{tag}", "od_address": f"4400 Central {tag}", "walk_in": f"Samwise{tag}",
            "note": f"sleeps by the river {tag}",
            "phone": f"+1505{secrets.randbelow(10**7):07d}"}


def segment_hits(log_dirs: list[Path], values: dict[str, str]) -> dict[str, set[str]]:
    """value name -> the topic partitions (directories) whose log segments hold it in the clear."""
    hits: dict[str, set[str]] = {}
    for log_dir in log_dirs:
        for segment in log_dir.glob("*/*.log"):
            data = segment.read_bytes()
            for name, value in values.items():
                if value.encode() in data:
                    hits.setdefault(name, set()).add(segment.parent.name)
    return hits


def table_hits(workers: dict, values: dict[str, str]) -> dict[str, set[str]]:
    hits: dict[str, set[str]] = {}
    for worker in workers.values():
        for table in worker.app.tables.values():
            stored = b"".join(v if isinstance(v, bytes) else repr(v).encode() for v in table.data.values())
            for name, value in values.items():
                if value.encode() in stored:
                    hits.setdefault(name, set()).add(table.name)
    return hits


async def run_the_four_flows(system, values: dict[str, str]) -> None:
    referral = cad_referral("CAD-REST-1", occurred_at=OCCURRED).model_dump(mode="json")
    referral["person"] |= {"first_name": values["first_name"], "last_name": values["last_name"],
                           "description": values["description"]}
    referral["officer"] |= {"name": values["officer"], "callback_phone": values["phone"]}
    referral["location"] |= {"description": values["location"]}
    encounter = {"cad_event_id": "CAD-REST-2", "agency_id": "apd", "incident_id": "INC-REST",
                 "encountered_at": OCCURRED.isoformat(), "school_id": "lincoln-es",
                 "child": {"first_name": values["child_first"], "last_name": values["child_last"],
                           "date_of_birth": "2016-09-02", "grade": "4"},
                 "incident": {"incident_type": "DOMESTIC DISTURBANCE", "address": values["address"],
                              "narrative": values["narrative"], "officer_name": values["officer"]}}
    od = overdose("EMS-REST-3", occurred_at=OCCURRED).model_dump(mode="json")
    od["person"] |= {"first_name": values["od_first"], "contact_address": values["od_address"]}
    walk = walk_in("STN-REST-4", occurred_at=OCCURRED, first_name=values["walk_in"]).model_dump(mode="json")
    answers = {}
    for path, body in (("/v1/referrals", referral), ("/v1/child-encounters", encounter), ("/v1/overdoses", od),
                       ("/v1/walk-ins", walk)):
        answer = await system.http.post(path, json=body, headers=APD)
        assert answer.status_code == 202, (path, answer.text)
        answers[path] = answer.json()
    await write_a_note(system, answers["/v1/referrals"]["referral_id"], values["note"])

    await eventually(lambda: entries(system, "notifier", "pages") >= 1)  # the LEAD page
    await eventually(lambda: entries(system, "handle-with-care", "notices") >= 1)  # the child's notice
    await eventually(lambda: entries(system, "quick-response", "follow-ups") >= 1)  # the follow-up
    await eventually(lambda: entries(system, "self-referral", "walk-ins") >= 1)  # the walk-in's case
    await eventually(lambda: len(system.messages("sms")) >= 2)  # the page and the walk-in's volunteers


async def write_a_note(system, referral_id: str, text: str) -> None:
    """A case manager's note on the referral, from the console: personal, so sealed like the rest."""
    await eventually(lambda: referral_id in system.app.state.read_model.views)
    await system.http.post("/console/login", data={"token": "local-dev-token-cm-ana"})
    page = (await system.http.get(f"/console/referrals/{referral_id}")).text
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    saved = await system.http.post(f"/console/referrals/{referral_id}/notes", data={"csrf_token": csrf, "text": text})
    assert saved.status_code == 303, saved.text
    await eventually(lambda: referral_id in system.app.state.handoff_details.notes)


def entries(system, worker: str, table: str) -> int:
    return len(system.apps[worker].app.tables[table].data)


async def test_no_personal_value_is_in_the_clear_on_disk_or_in_table_state_after_the_flows(
        system_factory, kafka_log_dirs) -> None:
    system = await system_factory(*WORKERS, now=OCCURRED + timedelta(minutes=5))
    values = personal_values(secrets.token_hex(4))
    await run_the_four_flows(system, values)

    # A CAD system's own record, in plain text: readable on its intake topic, and only there.
    plain_name = f"Plainly{secrets.token_hex(4)}"
    cad = KafkaPublisher(system.settings, AvroCodec(registry_from_url(system.settings.schema_registry_url)))
    await cad.start()
    try:
        await cad.publish(CAD_REFERRALS, "CAD-REST-5", cad_referral(
            "CAD-REST-5", occurred_at=OCCURRED).model_copy(update={"person": cad_referral().person.model_copy(
                update={"last_name": plain_name})}))
    finally:
        await cad.stop()
    await eventually(lambda: entries(system, "notifier", "pages") >= 2)  # re-published by the intake (sealed), paged

    on_disk = segment_hits(kafka_log_dirs, {**values, "plain": plain_name})
    assert {name: dirs for name, dirs in on_disk.items() if name != "plain"} == {}
    cad_dirs = {f"{CAD_REFERRALS.qualified(system.settings.topic_prefix)}-{p}"
                for p in range(system.settings.topic_partitions)}
    assert on_disk["plain"] and on_disk["plain"] <= cad_dirs  # found, as CAD wrote it, and nowhere else
    assert table_hits(system.apps, {**values, "plain": plain_name}) == {}

    # And the records are there, sealed: they open with the keys (the flows above read them).
    written = {spec.name for spec in (REFERRALS, PAGES, HWC_NOTICES)}
    for log_dir in kafka_log_dirs:
        sizes = {d.name: sum(f.stat().st_size for f in d.glob("*.log")) for d in log_dir.iterdir() if d.is_dir()}
        assert all(any(size for name, size in sizes.items()
                       if name.startswith(f"{system.settings.topic_prefix}{topic}-")) for topic in written)
