"""Bad records on the Kafka intake topics: each is dead-lettered with its reason, the stream keeps
flowing, and the counts add up (in = processed + dead-lettered)."""

from __future__ import annotations

import random
import struct
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_REFERRALS
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher
from services.ops import read_dead_letters
from tests.conftest import eventually
from tests.factories import cad_child, cad_referral

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))


async def test_bad_records_are_dead_lettered_and_the_stream_keeps_flowing(system_factory) -> None:
    system = await system_factory("referral-intake", "handle-with-care", now=NOW)
    system.expect_dead_letters = True
    rng = random.Random(20261123)
    codec = AvroCodec(registry_from_url(system.settings.schema_registry_url))
    producer = KafkaPublisher(system.settings, codec)
    await producer.start()
    sent = Counter()
    try:
        valid = [await codec.encode(cad_referral(f"CAD-OK-{i}", occurred_at=NOW)) for i in range(20)]
        bad: list[tuple[str, bytes]] = []
        bad += [("garbage", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))) for _ in range(15)]
        bad += [("truncated", v[: rng.randint(5, len(v) - 1)]) for v in valid[:8]]
        bad += [("wrong schema id", b"\x00" + struct.pack(">I", 90_000 + i) + valid[0][5:]) for i in range(4)]
        bad += [("wrong event type", await codec.encode(cad_child(f"CAD-X-{i}"))) for i in range(3)]  # on the referral topic
        bad += [("oversized", b"\x00" + b"\x01" * (600 * 1024))]
        records = [("valid", v) for v in valid] + bad
        rng.shuffle(records)
        for n, (kind, value) in enumerate(records):
            await producer.send_raw(CAD_REFERRALS, value, key=f"k{n}".encode())
            sent[kind] += 1
        # and the other intake topic keeps working meanwhile
        await producer.publish(CAD_CHILD_ENCOUNTERS, "CAD-C-1", cad_child("CAD-C-1", encountered_at=NOW))
    finally:
        await producer.stop()

    counts = system.apps["referral-intake"].processor.counts
    topic = CAD_REFERRALS.qualified(system.settings.topic_prefix)
    await eventually(lambda: counts[(topic, "processed")] + counts[(topic, "dead_lettered")] == len(records), timeout=60)
    assert counts[(topic, "processed")] == sent["valid"] == 20
    assert counts[(topic, "dead_lettered")] == len(bad)
    await eventually(lambda: system.messages("email"))  # the HWC worker went on undisturbed
    assert len(list(system.apps["referral-intake"].services["intake"].referrals.keys())) == 20

    letters = await read_dead_letters(system.settings, limit=1000)
    assert len(letters) == len(bad)
    assert Counter(d.error_type for d in letters) == {"decode": len(bad)}
    reasons = " | ".join(d.error for d in letters)
    for phrase in ("magic byte", "does not match schema id", "is not in the registry", "not expected on this topic",
                   "exceeds the limit"):
        assert phrase in reasons
    assert {d.original_value for d in letters} == {value for _, value in bad}
