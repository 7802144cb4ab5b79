"""Reference data on the compacted topic: workers share it and a run-time closure moves deadlines live."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from deploy.dev_inbox import DevInbox
from deploy.local_stack import free_port
from services import runtime
from services.kernel.clock import FakeClock
from services.kernel.topics import CAD_CHILD_ENCOUNTERS
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher, ensure_topics
from services.messaging.reference_feed import ReferenceFeed, publish_reference, read_reference
from services.messaging.streams import prepare_and_start
from services.platform.reference_files import read_reference_directory
from services.platform.settings import REPO_ROOT
from services.runtime import TOPICS
from tests.conftest import broker_env, eventually
from tests.factories import cad_child, child
from tests.integration.conftest import LOCAL_INBOX

pytestmark = pytest.mark.integration
DENVER = ZoneInfo("America/Denver")
TUESDAY_MORNING = datetime(2026, 11, 17, 10, 0, tzinfo=DENVER)


async def test_closure_published_at_run_time_moves_the_next_deadline(kafka_settings) -> None:
    with DevInbox(free_port(), free_port()) as inbox:
        settings = kafka_settings.model_copy(update={"sms_api_base_url": inbox.base_url, "smtp_port": inbox.smtp_port,
                                                     "reference_source": "kafka", "link_signing_key": SecretStr("k")})
        await ensure_topics(settings, TOPICS)
        raw = read_reference_directory(REPO_ROOT / "config" / "local")
        records = [(sec, key, body.replace(LOCAL_INBOX, inbox.base_url)) for sec, key, body in raw.records()]
        await publish_reference(settings, records)
        assert (await read_reference(settings)).sections["schools"].keys() == raw.sections["schools"].keys()

        feed = ReferenceFeed(settings)
        live = await feed.start()
        assert "lincoln-es" in live.schools and live.schools["lincoln-es"].primary_contact.webhook_url.startswith(inbox.base_url)
        clock = FakeClock(TUESDAY_MORNING)
        worker = runtime.build_worker("handle-with-care", settings, live, clock)
        await prepare_and_start(worker, settings, TOPICS)
        producer = KafkaPublisher(settings, AvroCodec(registry_from_url(settings.schema_registry_url)))
        await producer.start()
        try:
            await producer.publish(CAD_CHILD_ENCOUNTERS, "c-1", cad_child("c-1", encountered_at=TUESDAY_MORNING))
            notices = worker.services["hwc"].notices
            await eventually(lambda: len(list(notices.values())) == 1)
            first = next(iter(notices.values())).request
            assert first.due_at == datetime(2026, 11, 18, 7, 45, tzinfo=DENVER)

            snow = json.dumps({"date": "2026-11-18", "reason": "snow day", "school_id": "lincoln-es"}, sort_keys=True)
            await publish_reference(settings, [("closures", "lincoln-es/2026-11-18", snow)])
            await eventually(lambda: live.closures.get("lincoln-es"))
            other = child().model_copy(update={"first_name": "Rosalind"})
            clock.advance(hours=1)  # an encounter an hour later, reported as it happens
            await producer.publish(CAD_CHILD_ENCOUNTERS, "c-2",
                                   cad_child("c-2", child=other, encountered_at=TUESDAY_MORNING + timedelta(hours=1)))
            await eventually(lambda: len(list(notices.values())) == 2)
            dues = sorted(r.request.due_at for r in notices.values())
            assert dues == [datetime(2026, 11, 18, 7, 45, tzinfo=DENVER), datetime(2026, 11, 19, 7, 45, tzinfo=DENVER)]

            # The operator's `handoff hwc due` sees the run-time closure exactly as the worker did.
            env = {**os.environ, "HANDOFF_REFERENCE_SOURCE": "kafka", "HANDOFF_TOPIC_PREFIX": settings.topic_prefix,
                   **broker_env(settings),
                   "HANDOFF_SCHEMA_REGISTRY_URL": settings.schema_registry_url, "HANDOFF_LOG_LEVEL": "WARNING"}
            due = await asyncio.to_thread(subprocess.run, [
                sys.executable, "-m", "services.cli", "hwc", "due", "--school", "lincoln-es",
                "--at", (TUESDAY_MORNING + timedelta(hours=1)).isoformat()], env=env, capture_output=True, text=True,
                timeout=120, cwd=REPO_ROOT)
            assert due.returncode == 0, due.stderr
            assert due.stdout.strip() == "2026-11-19T07:45:00-07:00"
        finally:
            await producer.stop()
            await worker.stop()
            await feed.stop()
