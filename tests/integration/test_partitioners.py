"""One referral per CAD event, whatever client wrote it (issue #28): a CAD's own Kafka client (Confluent's, which
hashes keys with CRC32 by default) and Handoff's HTTP intake (murmur2, as Java clients) send the same event, and
two intake workers each own one of the two partitions it lands on. Exactly one referral, one page."""

from __future__ import annotations

import asyncio
import json
import zlib
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from services import runtime
from services.kernel.lead import ReferralCreated
from services.kernel.topics import CAD_REFERRALS, REFERRALS
from services.messaging.avro import MAGIC_BYTE, AvroCodec, registry_from_url
from services.messaging.kafka import client_options
from services.messaging.streams import MOVED_HEADER, key_partition, prepare_and_start
from services.notifier.domain.schedule import on_call_at
from services.platform.settings import REPO_ROOT, Settings
from services.runtime import TOPICS
from tests.conftest import eventually
from tests.integration.conftest import raw_records

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))
APD = {"Authorization": "Bearer local-dev-token-apd"}


def owned(worker, topic: str) -> set[int]:
    return {tp.partition for tp in worker.app.consumer.assignment() if tp.topic == topic}


def librdkafka_config(settings: Settings) -> dict:
    """The connection a CAD vendor's librdkafka producer would be given (its default partitioner, CRC32)."""
    config = {"bootstrap.servers": settings.kafka_bootstrap_servers,
              "security.protocol": settings.kafka_security_protocol.lower(), "partitioner": "consistent_random"}
    if settings.kafka_ssl_cafile:
        config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
    if settings.kafka_security_protocol.startswith("SASL"):
        config |= {"sasl.mechanism": settings.kafka_sasl_mechanism, "sasl.username": settings.kafka_sasl_username,
                   "sasl.password": settings.kafka_sasl_password.get_secret_value()}
    return config


def demo_body(cad_event_id: str) -> dict:
    body = json.loads((REPO_ROOT / "config" / "local" / "demo" / "referral.json").read_text())
    return {**body, "cad_event_id": cad_event_id, "occurred_at": NOW.isoformat()}


def as_the_cad_writes_it(cad_event_id: str) -> dict:
    """The same event as a CAD vendor fills in the published schema (schemas/cad_referral_made.avsc), plain text:
    every field the HTTP body has, and the schema's own types (a date for the date of birth)."""
    body = demo_body(cad_event_id)
    person = body["person"]
    return {**body, "occurred_at": NOW, "submitted_by": None, "consent": None, "charges_held_until": None,
            "incident_id": None, "person": {**person, "date_of_birth": date.fromisoformat(person["date_of_birth"])}}


async def all_committed(settings: Settings, group: str, topic: str) -> bool:
    """Every record of ``topic`` handled and committed by ``group`` (a record commits only after its writes)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        committed = {tp.partition: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(group)).items()
                     if tp.topic == topic}
    finally:
        await admin.close()
    records = await raw_records(settings, topic)
    ends: dict[int, int] = {}
    for record in records:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return all(committed.get(p, 0) >= end for p, end in ends.items())


async def test_the_same_cad_event_from_a_crc32_client_and_over_http_is_one_referral_and_one_page(
        system_factory, tmp_path) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    first_settings = system.settings_of("referral-intake")
    settings = first_settings.model_copy(update={  # its own state, the deployment's one key-encryption key
        "data_dir": tmp_path / "second-intake",
        "kek_directory": first_settings.kek_directory or first_settings.data_dir / "keys"})
    second = runtime.build_worker("referral-intake", settings, system.reference, system.clock)
    await prepare_and_start(second, settings, TOPICS)
    system.started.append(second.stop)
    system.apps["referral-intake#2"] = second  # its dead letters count too: the test fails on any
    first = system.apps["referral-intake"]
    topic = CAD_REFERRALS.qualified(system.settings.topic_prefix)
    partitions = system.settings.topic_partitions
    await eventually(lambda: owned(first, topic) and owned(second, topic)
                     and owned(first, topic) | owned(second, topic) == set(range(partitions)), timeout=60)

    # An event id the two partitioners put on partitions of different workers: no single worker sees both copies.
    a, b = owned(first, topic), owned(second, topic)
    cad_event_id = next(k for k in (f"CAD-PART-{i}" for i in range(1000))
                        if {zlib.crc32(k.encode()) % partitions, key_partition(k, partitions)} & a
                        and {zlib.crc32(k.encode()) % partitions, key_partition(k, partitions)} & b
                        and zlib.crc32(k.encode()) % partitions != key_partition(k, partitions))

    admin = system.settings
    registry = SchemaRegistryClient({"url": admin.schema_registry_url})
    serializer = AvroSerializer(registry, (REPO_ROOT / "schemas" / "cad_referral_made.avsc").read_text(),
                                conf={"subject.name.strategy": record_subject_name_strategy})
    producer = Producer(librdkafka_config(admin))
    delivered: list = []
    producer.produce(topic, key=cad_event_id.encode(),
                     value=serializer(as_the_cad_writes_it(cad_event_id), SerializationContext(topic, MessageField.VALUE)),
                     on_delivery=lambda err, msg: delivered.append((err, msg.partition())))
    await asyncio.get_running_loop().run_in_executor(None, producer.flush, 30)
    [(error, landed)] = delivered
    assert error is None and landed == zlib.crc32(cad_event_id.encode()) % partitions != key_partition(
        cad_event_id, partitions)  # where librdkafka put it: not where Handoff would

    answer = await system.http.post("/v1/referrals", headers=APD, json=demo_body(cad_event_id))
    assert answer.status_code == 202, answer.text
    referral_id = answer.json()["referral_id"]

    site = system.reference.sites["abq"]
    on_call = system.reference.case_managers[on_call_at(site.on_call, site.zone, NOW)]
    await eventually(lambda: [m for m in system.messages("sms") if m.to == on_call.phone])
    group = f"{system.settings.topic_prefix}handoff-referral-intake"
    await eventually(lambda: all_committed(admin, group, topic), timeout=30)  # every copy handled, writes done

    moved = [r for r in await raw_records(admin, topic) if r.key == cad_event_id.encode()
             and any(name == MOVED_HEADER for name, _ in r.headers)]
    assert [r.partition for r in moved] == [key_partition(cad_event_id, partitions)]  # moved once, to the key's
    created_id = await AvroCodec(registry_from_url(admin.schema_registry_url)).schema_id(ReferralCreated)
    created = [r for r in await raw_records(admin, REFERRALS.qualified(admin.topic_prefix))
               if r.key == referral_id.encode() and r.value[:5] == bytes([MAGIC_BYTE]) + created_id.to_bytes(4, "big")]
    assert len(created) == 1  # one referral
    assert len([m for m in system.messages("sms") if m.to == on_call.phone]) == 1  # one page
