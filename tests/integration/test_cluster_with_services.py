"""The services on a 3-broker cluster (replication factor 3, min.insync.replicas 2, acks=all):
one broker SIGKILLed mid-stream, and every referral still gets exactly one page and every child
exactly one notice at the receivers."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.local_stack import LocalKafka
from services.kernel.events import Child
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_REFERRALS, PAGES
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher
from services.ops import read_dead_letters
from services.platform.settings import Settings
from tests.conftest import Broker, eventually
from tests.factories import cad_child, cad_referral

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))
REFERRALS, ENCOUNTERS = 120, 40


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalKafka(brokers=3, work_dir=tmp_path_factory.mktemp("cluster"), heap="384m") as kafka:
        yield kafka


@pytest.fixture
def broker_access(cluster) -> Broker:
    return Broker(cluster.bootstrap_servers)


@pytest.fixture
def kafka_settings(cluster, schema_registry_url, topic_prefix, tmp_path) -> Settings:
    """Overrides the shared single broker: this module's services run on the cluster."""
    return Settings(kafka_bootstrap_servers=cluster.bootstrap_servers, schema_registry_url=schema_registry_url,
                    topic_prefix=topic_prefix, topic_partitions=2, topic_replication_factor=3,
                    data_dir=tmp_path / "var", processing_retry_base_seconds=0.01)


async def test_losing_a_broker_mid_stream_loses_and_duplicates_nothing(cluster, system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", "handle-with-care", now=NOW)
    settings = system.settings
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, PAGES.qualified(settings.topic_prefix))])
        configs = response.resources[0][4]  # (error, message, type, name, entries)
        assert {entry[0]: entry[1] for entry in configs}["min.insync.replicas"] == "2"
    finally:
        await admin.close()

    producer = KafkaPublisher(settings, AvroCodec(registry_from_url(settings.schema_registry_url)))
    await producer.start()

    async def produce(start: int, stop: int) -> None:
        for i in range(start, stop):
            await producer.publish(CAD_REFERRALS, f"CAD-K-{i}", cad_referral(f"CAD-K-{i}", occurred_at=NOW))
            if i < ENCOUNTERS:
                kid = Child(first_name=f"Kid{i}", last_name="Cluster", date_of_birth=date(2016, 1, 1) + timedelta(days=i))
                await producer.publish(CAD_CHILD_ENCOUNTERS, f"CAD-KC-{i}",
                                       cad_child(f"CAD-KC-{i}", child=kid, encountered_at=NOW))

    try:
        await produce(0, REFERRALS // 2)
        await eventually(lambda: len(first_pages(system)) >= REFERRALS // 4, timeout=120)
        cluster.kill_node(2)  # SIGKILL a broker while pages are going out
        await produce(REFERRALS // 2, REFERRALS)
    finally:
        await producer.stop()
    await eventually(lambda: len(first_pages(system)) >= REFERRALS and len(system.messages("webhook")) >= ENCOUNTERS,
                     timeout=240, interval=0.5)
    await asyncio.sleep(2)  # a duplicate would arrive by now

    pages = Counter(key.split("/")[0] for key in first_pages(system))
    notices = Counter(m.idempotency_key.split("/")[0] for m in system.messages("webhook"))
    assert len(pages) == REFERRALS and set(pages.values()) == {1}
    assert len(notices) == ENCOUNTERS and set(notices.values()) == {1}
    assert system.inbox.inbox.duplicates == [], "a send repeated: nothing should be redone when a broker dies"
    assert await read_dead_letters(settings) == []


def first_pages(system) -> list[str]:
    return [m.idempotency_key for m in system.messages("sms") if "/0/0/" in (m.idempotency_key or "")]
