"""Dead letters hold records as received (a CAD system's plain text among them) sealed under a key of their own,
on a key topic kept no longer than the letters. On the broker no letter shows a name; ``handoff dlq`` opens them;
once the letter's key has gone with the retention, the letter reads as erased, in every copy."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from typer.testing import CliRunner

from services.cli import cli
from services.kernel.topics import CAD_REFERRALS, DEAD_LETTER, DEAD_LETTER_KEYS
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher, client_options
from services.ops import read_dead_letters
from tests.conftest import broker_env, eventually
from tests.integration.conftest import raw_values
from tests.integration.test_lead_flow import NOW

pytestmark = pytest.mark.integration

NAME = "Whitfield-Oyelaran"


async def retention_passes(settings, spec) -> None:
    """What the broker's retention does when its time comes: the topic's records are deleted."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        tp = TopicPartition(spec.qualified(settings.topic_prefix), 0)
        consumer = AIOKafkaConsumer(**client_options(settings))
        await consumer.start()
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.stop()
        await admin.delete_records({tp: RecordsToDelete(end)})
    finally:
        await admin.close()


async def test_a_plain_text_record_is_dead_lettered_sealed_and_reads_as_erased_once_its_key_is_gone(system_factory) -> None:
    system = await system_factory("referral-intake", now=NOW)
    system.expect_dead_letters = True
    plain = json.dumps({"cad_event_id": "CAD-PLAIN-1", "person": {"first_name": "Dana", "last_name": NAME}}).encode()
    producer = KafkaPublisher(system.settings, AvroCodec(registry_from_url(system.settings.schema_registry_url)))
    await producer.start()
    system.started.append(producer.stop)
    await producer.send_raw(CAD_REFERRALS, plain, key=b"CAD-PLAIN-1")
    letters = await eventually(lambda: read_dead_letters(system.settings), timeout=30)

    assert letters[0].original_value == plain and letters[0].sealed_under  # opened for the operator
    on_broker = b"".join(await raw_values(system.settings, DEAD_LETTER))
    assert NAME.encode() not in on_broker and b"Dana" not in on_broker

    await retention_passes(system.settings, DEAD_LETTER_KEYS)
    [erased] = await read_dead_letters(system.settings)
    assert erased.original_value is None and erased.sealed_under == letters[0].sealed_under
    env = {**broker_env(system.settings),
           "HANDOFF_SCHEMA_REGISTRY_URL": system.settings.schema_registry_url,
           "HANDOFF_TOPIC_PREFIX": system.settings.topic_prefix, "HANDOFF_DATA_DIR": str(system.settings.data_dir)}
    listed = await asyncio.to_thread(CliRunner().invoke, cli, ["dlq", "list"], env=env)
    assert "original erased: its key is gone" in listed.output and NAME not in listed.output
