"""An upgrade in place: this release's workers start from the state a previous release's workers kept.

tests/upgrade/state-<commit>.json holds that release's changelogs (captured by tests/upgrade/capture.py,
running that commit's code: a referral paged at step 1 and a Handle With Care notice delivered to the
school's primary contact, both settled). Here they are written back to the broker as an upgraded
deployment's broker would keep them, and this release's workers start on them: the page escalates to
step 2 when its time comes, the notice to the backup contact at its lead time, and nothing the previous
release sent goes out again."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from deploy.dev_inbox import DevInbox
from deploy.local_stack import free_port
from services import runtime
from services.kernel.clock import FakeClock
from services.messaging.kafka import client_options, ensure_topics
from services.messaging.streams import internal_topics, prepare_and_start
from services.platform.settings import REPO_ROOT
from services.runtime import TOPICS
from tests.conftest import eventually
from tests.integration.conftest import reference_for

pytestmark = pytest.mark.integration
PREVIOUS_RELEASE = REPO_ROOT / "tests" / "upgrade" / "state-157eb62.json"
WORKERS = ("referral-intake", "notifier", "handle-with-care")


def sent(inbox, kind: str, part: str) -> list:
    return [m for m in inbox.inbox.of(kind) if part in (m.headers.get("X-Handoff-Delivery") or m.idempotency_key or "")]


async def test_this_release_resumes_the_state_a_previous_release_kept(kafka_settings) -> None:
    kept = json.loads(PREVIOUS_RELEASE.read_text())
    paged_at = datetime.fromisoformat(kept["clock"])
    inbox = DevInbox(free_port(), free_port(), "upgrade-webhook-secret").start()
    settings = kafka_settings.model_copy(update={
        "topic_partitions": 1, "link_signing_key": SecretStr("upgrade-key"),
        "webhook_signing_secret": SecretStr("upgrade-webhook-secret"), "sms_api_base_url": inbox.base_url,
        "smtp_port": inbox.smtp_port, "public_base_url": "http://handoff.test", "escalation_tick_seconds": 0.1,
        "delivery_backoff_seconds": 0.05})
    clock = FakeClock(paged_at + timedelta(minutes=4))  # before the page's first step runs out (5 minutes)
    workers = [runtime.build_worker(name, settings, reference_for(inbox.base_url), clock) for name in WORKERS]
    try:
        producer = AIOKafkaProducer(**client_options(settings))
        await producer.start()
        try:
            for worker in workers:
                await ensure_topics(settings, internal_topics(worker.app, settings), qualify=False)
            for record in kept["records"]:
                await producer.send_and_wait(
                    settings.topic_prefix + record["topic"], partition=record["partition"],
                    key=base64.b64decode(record["key"]),
                    value=None if record["value"] is None else base64.b64decode(record["value"]))
        finally:
            await producer.stop()
        for worker in workers:
            await prepare_and_start(worker, settings, TOPICS)

        clock.set(paged_at + timedelta(minutes=5))  # the first step runs out: step 2, the outreach coordinator
        [step_two] = await eventually(lambda: sent(inbox, "sms", "/0/1/cm-cruz/"), timeout=60, interval=0.1)
        clock.set(datetime.fromisoformat("2027-02-10T07:45:00-07:00") - timedelta(minutes=90))  # Wednesday's backup lead
        await eventually(lambda: sent(inbox, "email", "/backup/"), timeout=60, interval=0.1)
        assert not sent(inbox, "sms", "/0/0/") and not sent(inbox, "email", "/primary/"), \
            "sent again what the previous release sent"
        assert not inbox.inbox.duplicates
        assert all(worker.processor.dead_letters.count == 0 for worker in workers)
    finally:
        for worker in workers:
            await worker.stop()
        inbox.stop()
