"""``handoff run all`` (``runtime.serve_all``): every service and the API in one process, for a small site, on the
real broker, each service signing in as itself (a password file per principal): a referral posted to the API is
paged to the on-call case manager, as with a process per service; then it stops cleanly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from deploy.dev_inbox import DevInbox
from deploy.local_stack import free_port
from deploy.local_system import reference_for_inbox
from services import runtime
from services.messaging.kafka import ensure_topics
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.runtime import TOPICS
from tests.conftest import eventually
from tests.integration.conftest import WEBHOOK_SECRET
from tests.integration.test_lead_flow import TOKEN, referral_body

pytestmark = pytest.mark.integration


async def test_every_service_in_one_process_pages_a_referral(kafka_settings, broker_access, tmp_path) -> None:
    inbox = DevInbox(free_port(), free_port(), WEBHOOK_SECRET).start()
    passwords = tmp_path / "principals"
    passwords.mkdir()
    for name, password in (broker_access.passwords or {}).items():
        (passwords / name).write_text(password)
    port = free_port()
    settings = kafka_settings.model_copy(update={
        "kafka_sasl_password_dir": passwords if broker_access.passwords else None,
        "reference_dir": reference_for_inbox(REPO_ROOT / "config" / "local", tmp_path / "reference", inbox.base_url),
        "sms_api_base_url": inbox.base_url, "smtp_port": inbox.smtp_port, "http_port": port,
        "link_signing_key": SecretStr("one-process-key"), "webhook_signing_secret": SecretStr(WEBHOOK_SECRET),
        "public_base_url": f"http://127.0.0.1:{port}", "escalation_tick_seconds": 0.2})
    await ensure_topics(settings, TOPICS)
    await broker_access.grant(settings)
    stop = asyncio.Event()
    running = asyncio.create_task(runtime.serve_all(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            async def serving():
                if running.done():
                    running.result()  # it failed to start: say why
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(serving, timeout=90, interval=0.2)
            body = {**referral_body("CAD-ONE-PROCESS"), "occurred_at": datetime.now(UTC).isoformat()}
            answer = await http.post("/v1/referrals", json=body, headers=TOKEN)
            assert answer.status_code == 202, answer.text
            paged = await eventually(lambda: [m for m in inbox.inbox.of("sms") if "Ack: " in m.body] or None,
                                     timeout=60)
            assert paged[0].to in {cm.phone for cm in load_reference_data(settings.reference_dir)
                                   .case_managers.values()}
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)
        inbox.stop()
    assert running.done() and running.exception() is None  # stopped cleanly
