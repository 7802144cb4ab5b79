"""The Docker-free launcher itself: a 3-broker KRaft cluster on loopback survives losing a broker."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.local_stack import LocalKafka
from tests.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_three_broker_cluster_loses_nothing_when_a_broker_is_killed(tmp_path) -> None:
    cluster = LocalKafka(brokers=3, work_dir=tmp_path / "cluster", heap="384m")
    cluster.start()
    try:
        bootstrap = cluster.bootstrap_servers
        assert len(bootstrap.split(",")) == 3
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("replicated", 3, 3, topic_configs={"min.insync.replicas": "2"})])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                    request_timeout_ms=20000)
        await producer.start()
        try:
            for i in range(200):
                await producer.send_and_wait("replicated", f"{i}".encode(), key=f"k{i}".encode())
            cluster.kill_node(1)  # SIGKILL, mid-stream
            for i in range(200, 400):
                await producer.send_and_wait("replicated", f"{i}".encode(), key=f"k{i}".encode())
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer("replicated", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id="verify")
        await consumer.start()
        seen: set[bytes] = set()
        try:
            async def all_seen() -> bool:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.update(r.value for r in records)
                return len(seen) == 400
            await eventually(all_seen, timeout=60)
        finally:
            await consumer.stop()
        assert seen == {f"{i}".encode() for i in range(400)}

        cluster.restart_node(1)
        assert cluster.nodes[1].is_running()
    finally:
        cluster.stop()
    assert not any(node.is_running() for node in cluster.nodes)
