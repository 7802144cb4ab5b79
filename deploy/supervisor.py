"""Keeps the local stack's services running, as compose's ``restart: unless-stopped`` and systemd's
``Restart=on-failure`` keep a deployment's: a service that exits is started again after a backoff that
doubles with each failure in the window (1 s, 2 s, 4 s, ... at most ``max_backoff``), and given up on
only after ``burst`` failures within ``window`` seconds, which is a service that cannot start, not one
that crashed. Each restart and the giving up are said, so the person at the terminal knows.

A worker restarted resumes from its committed offsets and its changelogs: its timers fire again on time
and what it already sent is not sent again (the outbox's idempotency keys). tests/unit/test_supervisor.py
kills real processes; tests/e2e/test_worker_crash.py kills a worker mid-stream."""

from __future__ import annotations

import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class GaveUp(Exception):
    """A service failed ``burst`` times within the window: it will not start by trying again."""


@dataclass
class _Service:
    name: str
    argv: list[str]
    process: subprocess.Popen
    failures: deque[float] = field(default_factory=deque)  # when it exited, within the window
    restart_at: float | None = None  # set while it waits out its backoff


class Supervisor:
    def __init__(self, start: Callable[[str, list[str]], subprocess.Popen], say: Callable[[str], None], *,
                 burst: int = 5, window: float = 120.0, first_backoff: float = 1.0, max_backoff: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.start, self.say = start, say
        self.burst, self.window = burst, window
        self.first_backoff, self.max_backoff = first_backoff, max_backoff
        self.monotonic = monotonic
        self.services: list[_Service] = []

    def add(self, name: str, argv: list[str]) -> subprocess.Popen:
        service = _Service(name, argv, self.start(name, argv))
        self.services.append(service)
        return service.process

    @property
    def processes(self) -> list[tuple[str, subprocess.Popen]]:
        return [(s.name, s.process) for s in self.services]

    def check(self) -> None:
        """Notice exits and start again what has waited out its backoff; ``GaveUp`` past the burst."""
        now = self.monotonic()
        for service in self.services:
            if service.restart_at is not None:
                if now >= service.restart_at:
                    service.process, service.restart_at = self.start(service.name, service.argv), None
                    self.say(f"{service.name} restarted (pid {service.process.pid})")
                continue
            code = service.process.poll()
            if code is None:
                continue
            while service.failures and now - service.failures[0] > self.window:
                service.failures.popleft()
            service.failures.append(now)
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            if len(service.failures) >= self.burst:
                raise GaveUp(f"{service.name} {how}, its {len(service.failures)}th failure in "
                             f"{self.window:.0f}s; not restarting it")
            backoff = min(self.max_backoff, self.first_backoff * 2 ** (len(service.failures) - 1))
            service.restart_at = now + backoff
            self.say(f"{service.name} {how}; restarting it in {backoff:.0f}s "
                     f"(failure {len(service.failures)} of {self.burst} allowed in {self.window:.0f}s)")

    def stop_all(self, stop: Callable[[subprocess.Popen], None]) -> None:
        for service in reversed(self.services):
            stop(service.process)
