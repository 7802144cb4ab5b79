"""The bad-input corpus against a running Handoff on the real broker: every hostile body gets its
answer from both HTTP intakes (never a 500), as many bad records go straight onto both Kafka intake
topics, and afterwards a valid referral still pages and a valid encounter still notifies within
seconds; per topic, every record in is processed or dead-lettered."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import fastavro
import pytest

from services.kernel.events import Child
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_REFERRALS
from services.messaging.avro import AvroCodec, parsed_schema, registry_from_url, to_avro_datum
from services.messaging.kafka import KafkaPublisher
from tests.conftest import eventually
from tests.corpus import bad_kafka_values, intake_cases, wrong_schema_id
from tests.factories import DEMO_NOW, cad_child, cad_referral

pytestmark = pytest.mark.integration
NOW = DEMO_NOW.astimezone(ZoneInfo("America/Denver"))


def impossible(datum: dict, n: int, referral: bool) -> dict:
    """A record Avro reads, whose values the intake must refuse (the same rules as the HTTP path)."""
    time_field = "occurred_at" if referral else "encountered_at"
    person = "person" if referral else "child"
    mutations = [
        lambda d: d.update({time_field: datetime(2099, 1, 1, tzinfo=ZoneInfo("UTC"))}),
        lambda d: d.update({time_field: datetime(1990, 1, 1, tzinfo=ZoneInfo("UTC"))}),
        lambda d: d[person].update({"first_name": "   "}),
        lambda d: d[person].update({"last_name": "x" * 101}),
        lambda d: d[person].update({"date_of_birth": datetime(2030, 1, 1).date()}),
        (lambda d: d.update({"site_id": "gotham"})) if referral else (lambda d: d.update({"home_educated": True})),
        lambda d: d.update({"cad_event_id": "has spaces in it"}),
    ]
    mutations[n % len(mutations)](datum)
    return datum


async def test_hostile_bodies_and_records_leave_the_system_whole(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", "handle-with-care", now=NOW)
    system.expect_dead_letters = True
    cases = intake_cases()
    answers = []
    for case in cases:
        resp = await system.http.post(case.path, content=case.body, headers=case.headers("local-dev-token-apd"))
        answers.append((case.name, case.expect, resp.status_code))
    assert [a for a in answers if a[2] >= 500] == []
    assert [a for a in answers if a[1] != a[2]] == []
    accepted = {intake: sum(1 for c in cases if c.intake == intake and c.expect == 202)
                for intake in ("referrals", "child-encounters")}

    codec = AvroCodec(registry_from_url(system.settings.schema_registry_url))
    producer = KafkaPublisher(system.settings, codec)
    await producer.start()
    sent_bad = {}
    try:
        for topic, intake, sample in ((CAD_REFERRALS, "referrals", cad_referral("CORPUS-K", occurred_at=NOW)),
                                      (CAD_CHILD_ENCOUNTERS, "child-encounters",
                                       cad_child("CORPUS-K", encountered_at=NOW))):
            frame = await codec.encode(sample)
            schema_id = frame[:5]
            mine = [c for c in cases if c.intake == intake]
            for n, case in enumerate(mine):
                if n % 4 == 3:  # Avro that decodes, with values the intake must refuse
                    buf = io.BytesIO()
                    fastavro.schemaless_writer(buf, parsed_schema(type(sample)),
                                               impossible(to_avro_datum(sample), n, topic is CAD_REFERRALS))
                    value = schema_id + buf.getvalue()
                elif n % 11 == 10:
                    value = wrong_schema_id(n)
                else:
                    value = bad_kafka_values(case, n, frame)
                await producer.send_raw(topic, value, key=f"bad-{n}".encode())
            sent_bad[topic.name] = len(mine)
        assert all(n >= 50 for n in sent_bad.values())

        counts = {name: app.processor.counts for name, app in system.apps.items()}
        totals = {CAD_REFERRALS.name: ("referral-intake", accepted["referrals"] + sent_bad[CAD_REFERRALS.name]),
                  CAD_CHILD_ENCOUNTERS.name: ("handle-with-care",
                                              accepted["child-encounters"] + sent_bad[CAD_CHILD_ENCOUNTERS.name])}
        prefix = system.settings.topic_prefix

        def all_in(extra: int = 0) -> bool:
            return all(counts[svc][(prefix + t, "processed")] + counts[svc][(prefix + t, "dead_lettered")] == n + extra
                       for t, (svc, n) in totals.items())

        try:
            await eventually(all_in, timeout=120)
        except AssertionError:  # say which way it is off: a record lost, or one handled twice
            raise AssertionError(f"handled {dict(counts)}, expected {totals}") from None
        sms_before = len(system.messages("sms"))
        # Now a valid referral and a valid encounter: each must still go through within seconds.
        await producer.publish(CAD_REFERRALS, "CORPUS-VALID", cad_referral("CORPUS-VALID", occurred_at=NOW))
        child = Child(first_name="Valentina", last_name="Afterwards", date_of_birth=datetime(2015, 5, 5).date())
        await producer.publish(CAD_CHILD_ENCOUNTERS, "CORPUS-VALID-C",
                               cad_child("CORPUS-VALID-C", encountered_at=NOW, child=child))
    finally:
        await producer.stop()

    await eventually(lambda: len(system.messages("sms")) > sms_before, timeout=15)
    await eventually(lambda: [m for m in system.messages("email") if "Valentina Afterwards" in m.body], timeout=15)
    await eventually(lambda: all_in(1), timeout=15)
    for topic, (service, n) in totals.items():
        processed, dead = counts[service][(prefix + topic, "processed")], counts[service][(prefix + topic, "dead_lettered")]
        assert processed + dead == n + 1
        assert dead >= sent_bad[topic] * 3 // 4  # nearly every bad record was refused (a cut-short one can still read)
