"""Services as real processes (``handoff run ...``) against the real broker, for fault tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn

from deploy.dev_inbox import DevInbox
from deploy.local_stack import _die_with_parent, _stop_process, free_port
from services.messaging.kafka import ensure_topics
from services.platform.settings import REPO_ROOT
from services.runtime import TOPICS
from tests.conftest import broker_env, eventually
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS
from tests.integration.conftest import LOCAL_INBOX, system_factory  # noqa: F401  (the browser tests use it)

WEBHOOK_SECRET = "e2e-webhook-secret"


@dataclass
class ProcessSystem:
    env: dict[str, str]
    inbox: DevInbox
    work: Path
    reference: Path
    signs_in_as: Callable[[str], dict[str, str]] = lambda _service: {}  # a service -> how it reaches the broker
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)

    def start(self, service: str, instance: str | None = None) -> subprocess.Popen:
        """Start ``service`` under its own principal; a second ``instance`` name runs another worker of it (own
        data dir)."""
        name = instance or service
        env = {**self.env, **self.signs_in_as(service), "HANDOFF_DATA_DIR": str(self._data(name))}
        log = (self.work / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", service], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
                                preexec_fn=_die_with_parent)
        self.procs[name] = proc
        self.services[name] = service
        return proc

    def _data(self, name: str) -> Path:
        return self.work / "data" / name

    def ready(self, name: str) -> bool:
        return (self._data(name) / "run" / f"{self.services[name]}.ready").exists()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
        (self._data(name) / "run" / f"{self.services[name]}.ready").unlink(missing_ok=True)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            _stop_process(proc, timeout=20)


@pytest.fixture
async def process_system(kafka_settings, broker_access, tmp_path):
    inbox = DevInbox(free_port(), free_port(), WEBHOOK_SECRET).start()
    reference = tmp_path / "reference"
    shutil.copytree(REPO_ROOT / "config" / "local", reference)
    for path in reference.glob("*.toml"):
        path.write_text(path.read_text().replace(LOCAL_INBOX, inbox.base_url))
    s = kafka_settings
    await ensure_topics(s, TOPICS)  # as the administrator, who grants each service its topics
    await broker_access.grant(s)
    env = {**os.environ, **broker_env(s),
           "HANDOFF_SCHEMA_REGISTRY_URL": s.schema_registry_url, "HANDOFF_TOPIC_PREFIX": s.topic_prefix,
           "HANDOFF_TOPIC_PARTITIONS": str(s.topic_partitions),
           "HANDOFF_REFERENCE_DIR": str(reference), "HANDOFF_SMS_API_BASE_URL": inbox.base_url,
           "HANDOFF_SMTP_PORT": str(inbox.smtp_port), "HANDOFF_LINK_SIGNING_KEY": "e2e-key",
           "HANDOFF_WEBHOOK_SIGNING_SECRET": WEBHOOK_SECRET, "HANDOFF_LOG_LEVEL": os.environ.get("HANDOFF_E2E_LOG_LEVEL", "WARNING"),
           "HANDOFF_DELIVERY_BACKOFF_SECONDS": "0.05",
           # one key provider for every process (and this test's reads), as a KMS would be
           "HANDOFF_KEK_DIRECTORY": str(s.kek_directory or s.data_dir / "keys")}
    # Escalation an hour out, so that however long a test runs, only what it sets up fires.
    sites = reference / "sites.toml"
    sites.write_text(sites.read_text().replace("escalate_after_minutes = 5", "escalate_after_minutes = 60"))
    system = ProcessSystem(env, inbox, tmp_path, reference,
                           signs_in_as=lambda service: broker_env(broker_access.as_principal(s, service)))
    try:
        yield system
    finally:
        system.stop_all()
        inbox.stop()


@pytest.fixture
async def browser():
    """Debian's Chromium, headless, driven by Playwright (which downloads no browser here)."""
    playwright_api = pytest.importorskip("playwright.async_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian's chromium is not installed at {CHROMIUM}: make test installs it (apt-get install chromium)")
    async with playwright_api.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def served():
    """``await serve(app, port)`` runs the HTTP app on 127.0.0.1 in this test's loop until the test ends."""
    servers = []

    async def serve(app, port: int) -> str:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        servers.append((server, asyncio.create_task(server.serve())))
        await eventually(lambda: server.started, timeout=20)
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
