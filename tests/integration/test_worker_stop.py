"""A worker told to stop while it is still starting (its broker not answering) stops: it does not outlive what ran
it (a worker whose broker went away mid-start once ignored SIGTERM for good)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.integration


class SilentBroker:
    """Accepts connections on 127.0.0.1 and never answers: a broker that hangs, to a client."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def test_a_worker_stopped_while_its_broker_does_not_answer_exits(tmp_path) -> None:
    broker = SilentBroker()
    log = tmp_path / "notifier.log"
    env = {**os.environ, "HANDOFF_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker.port}",
           "HANDOFF_DATA_DIR": str(tmp_path / "data"), "HANDOFF_KEK_DIRECTORY": str(tmp_path / "keys"),
           "HANDOFF_LINK_SIGNING_KEY": "stop-test-key", "HANDOFF_WEBHOOK_SIGNING_SECRET": "stop-test-secret",
           "HANDOFF_LOG_LEVEL": "INFO"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "notifier"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        # Past the signal handlers' installation, and waiting on the broker
        while not ("worker_starting" in log.read_text() and broker.accepted.is_set()):
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the worker never reached its broker"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
        assert "worker_stopped_while_starting" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.close()
