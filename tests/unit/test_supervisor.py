"""The local stack's services are kept running as a deployment's would be: a service SIGKILLed is started
again after a backoff that doubles with each failure, and one that keeps failing is given up on, saying so.
Real processes; the backoff's clock is a fake one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from deploy.local_stack import _stop_process
from deploy.supervisor import GaveUp, Supervisor

SLEEPS = [sys.executable, "-c", "import time; time.sleep(60)"]
FAILS = [sys.executable, "-c", "raise SystemExit(3)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def supervised():
    said: list[str] = []
    clock = Clock()
    supervisor = Supervisor(lambda _name, argv: subprocess.Popen(argv), said.append, monotonic=clock)
    yield supervisor, said, clock
    supervisor.stop_all(_stop_process)


def test_a_killed_service_is_started_again_after_its_backoff(supervised) -> None:
    supervisor, said, clock = supervised
    first = supervisor.add("notifier", SLEEPS)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    supervisor.check()
    assert said == ["notifier killed by signal 9; restarting it in 1s (failure 1 of 5 allowed in 120s)"]
    assert supervisor.processes[0][1] is first  # still waiting out its backoff
    clock.now += 1
    supervisor.check()
    [(name, second)] = supervisor.processes
    assert name == "notifier" and second.pid != first.pid and second.poll() is None
    assert said[-1] == f"notifier restarted (pid {second.pid})"

    os.kill(second.pid, signal.SIGKILL)
    second.wait()
    clock.now += 10
    supervisor.check()
    assert "restarting it in 2s (failure 2 of 5" in said[-1]  # the backoff doubles within the window


def test_a_service_that_keeps_failing_is_given_up_on(supervised) -> None:
    supervisor, said, clock = supervised
    process = supervisor.add("api", FAILS)
    backoffs = []
    with pytest.raises(GaveUp, match=r"api exited with code 3, its 5th failure in 120s; not restarting it"):
        for _ in range(10):
            process = supervisor.processes[0][1]
            process.wait()
            supervisor.check()
            backoffs.append(said[-1].split("restarting it in ")[1].split(" ")[0])
            clock.now += 16
            supervisor.check()
    assert backoffs == ["1s", "2s", "4s", "8s"]


def test_failures_long_apart_never_add_up_to_giving_up(supervised) -> None:
    supervisor, said, clock = supervised
    supervisor.add("worker", FAILS)
    for _ in range(8):
        supervisor.processes[0][1].wait()
        supervisor.check()
        assert "failure 1 of 5" in said[-1]  # an hour apart: each is the first in its window
        clock.now += 3600
        supervisor.check()
