"""Capture the state a release's workers keep (their tables' changelogs), for the upgrade test.

Run with the release's code first on the path, against a broker and registry:

    git worktree add /tmp/release <commit>
    KAFKA_BOOTSTRAP_SERVERS=... SCHEMA_REGISTRY_URL=... \\
        python tests/upgrade/capture.py --code /tmp/release --out tests/upgrade/state-<commit>.json

It runs that release's referral intake, notifier and Handle With Care workers on a fake clock, sends one
LEAD referral and one child encounter through them, waits until the page and the notice are delivered
and settled, stops the workers, and writes every changelog record (topic without the run's prefix,
partition, key, value) as JSON. tests/integration/test_upgrade.py starts this release's workers on them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from services.runtime import TOPICS

T0 = datetime(2027, 2, 9, 18, 0, tzinfo=UTC)  # a Tuesday, 11:00 in Albuquerque: the notice is due Wednesday
WORKERS = ("referral-intake", "notifier", "handle-with-care")


async def capture(out: Path, commit: str) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from pydantic import SecretStr

    from deploy.dev_inbox import DevInbox
    from deploy.local_stack import free_port
    from services import runtime
    from services.kernel.clock import FakeClock
    from services.kernel.events import Child
    from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_REFERRALS
    from services.messaging.avro import AvroCodec, registry_from_url
    from services.messaging.kafka import KafkaPublisher, client_options, topic_partition_counts
    from services.messaging.streams import internal_topics, prepare_and_start
    from services.platform.settings import Settings
    from tests.factories import cad_child, cad_referral
    from tests.integration.conftest import reference_for

    inbox = DevInbox(free_port(), free_port(), "upgrade-webhook-secret").start()
    prefix = f"upgrade{uuid.uuid4().hex[:8]}."
    settings = Settings(kafka_bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
                        schema_registry_url=os.environ["SCHEMA_REGISTRY_URL"], topic_prefix=prefix,
                        topic_partitions=1, data_dir=Path(f"/tmp/{prefix}"), link_signing_key=SecretStr("upgrade-key"),
                        webhook_signing_secret=SecretStr("upgrade-webhook-secret"), sms_api_base_url=inbox.base_url,
                        smtp_port=inbox.smtp_port, public_base_url="http://handoff.test", escalation_tick_seconds=0.1,
                        delivery_backoff_seconds=0.05)
    reference, clock = reference_for(inbox.base_url), FakeClock(T0)
    workers = [runtime.build_worker(name, settings, reference, clock) for name in WORKERS]
    for worker in workers:
        await prepare_and_start(worker, settings, TOPICS)
    publisher = KafkaPublisher(settings, AvroCodec(registry_from_url(settings.schema_registry_url)))
    await publisher.start()
    await publisher.publish(CAD_REFERRALS, "CAD-UPGRADE-1", cad_referral("CAD-UPGRADE-1", occurred_at=T0))
    child = Child(first_name="Upgrade", last_name="Testchild", date_of_birth=date(2017, 3, 4))
    await publisher.publish(CAD_CHILD_ENCOUNTERS, "CAD-UPGRADE-C1", cad_child("CAD-UPGRADE-C1", child=child,
                                                                               encountered_at=T0))
    await publisher.stop()
    for _ in range(600):
        if inbox.inbox.of("sms") and inbox.inbox.of("webhook"):
            break
        await asyncio.sleep(0.1)
    else:
        raise SystemExit("the page and the notice did not arrive")
    await asyncio.sleep(6)  # their results applied and the changelogs written
    topics = [spec.name for worker in workers for spec in internal_topics(worker.app, settings)]
    for worker in workers:
        await worker.stop()
    inbox.stop()

    counts = await topic_partition_counts(settings, topics)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records = []
    try:
        tps = [TopicPartition(topic, p) for topic in topics for p in range(counts[topic])]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, 0)  # the earliest kept (auto_offset_reset) where compaction removed the first
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                for record in batch:
                    records.append({"topic": tp.topic.removeprefix(prefix), "partition": tp.partition,
                                    "key": base64.b64encode(record.key or b"").decode(),
                                    "value": None if record.value is None else base64.b64encode(record.value).decode()})
    finally:
        await consumer.stop()
    out.write_text(json.dumps({"written_by": commit, "clock": T0.isoformat(), "prefix": prefix,
                               "records": records}, indent=1) + "\n")
    print(f"{len(records)} changelog records from {len(topics)} tables, written by {commit[:10]}: {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", type=Path, required=True, help="the release's source tree (a git worktree)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    out = args.out.resolve()
    sys.path.insert(0, str(args.code.resolve()))
    os.chdir(args.code)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    asyncio.run(capture(out, commit))
