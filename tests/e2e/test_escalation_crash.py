"""The notifier SIGKILLed in the middle of an escalation, under the local stack's supervisor: the supervisor
starts it again, the restarted notifier's timer fires the next step (no earlier than its time), and no step
is sent twice. Real processes, the real broker; the first step's time is cut to 45 seconds."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from deploy.supervisor import Supervisor
from services.kernel.topics import CAD_REFERRALS
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher, ensure_topics
from services.runtime import TOPICS
from tests.conftest import eventually
from tests.factories import cad_referral

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
STEP_SECONDS = 45


def step(system, loop_and_step: str, kind: str = "sms") -> list:
    """The step's sends of ``kind`` (an email names its delivery in a header; its idempotency key is its Message-ID)."""
    return [m for m in system.inbox.inbox.of(kind)
            if f"/{loop_and_step}/" in (m.headers.get("X-Handoff-Delivery") or m.idempotency_key or "")]


async def test_an_escalation_resumes_on_time_after_the_notifier_is_killed(process_system, kafka_settings) -> None:
    system = process_system
    sites = system.reference / "sites.toml"
    sites.write_text(sites.read_text().replace("escalate_after_minutes = 60", f"escalate_after_minutes = {STEP_SECONDS / 60}",
                                               1))
    await ensure_topics(kafka_settings, TOPICS)
    said: list[str] = []
    supervisor = Supervisor(lambda name, _argv: system.start(name), said.append)
    for service in ("referral-intake", "notifier"):
        supervisor.add(service, [service])
    await eventually(lambda: system.ready("referral-intake") and system.ready("notifier"), timeout=90, interval=0.2)

    producer = KafkaPublisher(kafka_settings, AvroCodec(registry_from_url(kafka_settings.schema_registry_url)))
    await producer.start()
    try:
        await producer.publish(CAD_REFERRALS, "CAD-ESC-1", cad_referral(
            "CAD-ESC-1", occurred_at=datetime.now(ZoneInfo("America/Denver"))))
    finally:
        await producer.stop()
    await eventually(lambda: step(system, "0/0"), timeout=60, interval=0.2)
    paged_at = time.monotonic()
    await eventually(lambda: step(system, "0/0", "email"), timeout=30, interval=0.2)
    # Both of the step's sends are out; once their results are applied and committed (Faust commits every
    # 2.8 s), a kill has nothing in flight, and nothing may be sent again. (A kill with sends in flight repeats at
    # most those: tests/e2e/test_worker_crash.py.)
    await asyncio.sleep(5)

    system.kill("notifier", signal.SIGKILL)  # in the middle of the first step's wait

    async def restarted() -> bool:
        supervisor.check()
        return system.ready("notifier")

    await eventually(restarted, timeout=90, interval=0.2)
    assert said[0].startswith("notifier killed by signal 9; restarting it in 1s") and "restarted" in said[1]

    [escalated] = await eventually(lambda: step(system, "0/1"), timeout=STEP_SECONDS + 60, interval=0.2)
    assert escalated.received_at - paged_at >= STEP_SECONDS - 5  # not early (the page's own time is a little before)
    await asyncio.sleep(3)  # a repeat would have arrived by now
    # step 1: the on-call case manager by SMS and email; step 2: the outreach coordinator, by SMS only
    assert [len(step(system, "0/0", "sms")), len(step(system, "0/0", "email")), len(step(system, "0/1", "sms"))] == [
        1, 1, 1]
    assert not system.inbox.inbox.duplicates, "a send repeated after the restart"
