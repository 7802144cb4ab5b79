"""A broker restart with the services running: the HTTP intake answers 503 with Retry-After while
Kafka is unreachable (not 500, not a hang), the services reconnect by themselves, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from deploy.local_stack import LocalKafka
from tests.conftest import Broker, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))
TOKEN = {"Authorization": "Bearer local-dev-token-apd"}


def body(cad_event_id: str) -> dict:
    return {**json.loads(open("config/local/demo/referral.json").read()), "cad_event_id": cad_event_id,
            "occurred_at": NOW.isoformat()}


async def post_until_accepted(system, cad_event_id: str, deadline: float) -> None:
    """What a CAD system does: retry on 503 after Retry-After."""
    while True:
        resp = await system.http.post("/v1/referrals", json=body(cad_event_id), headers=TOKEN)
        if resp.status_code == 202:
            return
        assert resp.status_code == 503 and resp.headers["Retry-After"]
        assert time.monotonic() < deadline, "intake never came back"
        await asyncio.sleep(1)


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test's own, to restart. The services' fixtures depend on it (``broker_access``), so it
    is torn down after them (they need it to leave their consumer groups cleanly)."""
    broker = LocalKafka(work_dir=tmp_path / "broker", heap="512m")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker_access(own_broker) -> Broker:
    return Broker(own_broker.bootstrap_servers)


async def test_broker_restart_loses_nothing_and_intake_says_503_meanwhile(own_broker, system_factory) -> None:
    broker = own_broker
    system = await system_factory("referral-intake", "notifier", now=NOW, intake_publish_timeout_seconds=2.0)
    for i in range(5):
        await post_until_accepted(system, f"CAD-BR-{i}", time.monotonic() + 30)
    await eventually(lambda: len(system.messages("sms")) == 5, timeout=60)

    broker.stop_node(0)
    started = time.monotonic()
    resp = await system.http.post("/v1/referrals", json=body("CAD-BR-DOWN"), headers=TOKEN)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert resp.json()["errors"][0]["field"] == "service"
    assert time.monotonic() - started < 10, "503 must come promptly, not after a hang"

    broker.start_node(0)
    await post_until_accepted(system, "CAD-BR-DOWN", time.monotonic() + 90)  # the CAD system's retry
    for i in range(5, 10):
        await post_until_accepted(system, f"CAD-BR-{i}", time.monotonic() + 90)
    await eventually(lambda: len(system.messages("sms")) >= 11, timeout=120, interval=0.5)
    await asyncio.sleep(2)
    pages = [m.idempotency_key.split("/")[0] for m in system.messages("sms")]
    assert len(pages) == len(set(pages)) == 11, "every referral paged exactly once, including the retried one"
