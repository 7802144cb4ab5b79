"""Benchmarks: Handoff against the raw Kafka floor, in one run, on one broker.

    python -m bench.run            # full counts (minutes)
    python -m bench.run --smoke    # tiny counts: the suite runs this so the benchmark cannot rot

Starts the local broker and registry (or uses KAFKA_BOOTSTRAP_SERVERS / SCHEMA_REGISTRY_URL),
runs the services as processes (``handoff run ...``) against a dev inbox in this process, and
writes the figures as Markdown to docs/benchmarks.md and as JSON to bench/results/.

- floor: a bare aiokafka producer, relay and consumer moving the same Avro payload through the
  same two topic hops a referral takes to become a page (CAD topic -> referral topic).
- referral_to_page: HTTP intake -> intake worker -> notifier -> SMS request at the receiver;
  latency at a steady rate and in a burst (every shift change at once).
- throughput: CAD referrals and child encounters written to Kafka as fast as it takes them; how
  many per second come out as pages and notices, with one worker per service and with two.
- hwc_backlog: child encounters written while the HWC worker is stopped, then the worker started:
  time until every notice reached the receivers, and the worker's peak memory.
- cold_start: process start to ready, per service.
Nothing here is a test: figures are reported against the targets, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from deploy.dev_inbox import DevInbox
from deploy.local_stack import (
    LocalKafka,
    LocalRegistry,
    _die_with_parent,
    _stop_process,
    free_port,
    pinned_versions,
)
from services.kernel.events import CadChildEncountered, CadReferralMade, Child
from services.kernel.settings import REPO_ROOT, Settings
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_REFERRALS
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import ensure_topics

RESULTS = REPO_ROOT / "bench" / "results"
REPORT = REPO_ROOT / "docs" / "benchmarks.md"
# The run before any profile-driven fix; every report compares itself with it.
BASELINE = RESULTS / "20261123T112913Z.json"
# What the profiles showed and what was done about it: written by hand, appended to every report.
FINDINGS = REPO_ROOT / "bench" / "findings.md"
LOCAL_INBOX = "http://127.0.0.1:8025"
AGENCY = {"Authorization": "Bearer local-dev-token-apd"}
DEMO = json.loads((REPO_ROOT / "config" / "local" / "demo" / "referral.json").read_text())
TARGETS = {"p99_vs_floor": 2.0, "p99_ms": 250.0, "throughput_vs_floor": 0.5, "backlog_seconds": 60.0,
           "backlog_mib": 1024.0}


@dataclass
class Counts:
    floor: int = 2000
    steady: int = 300
    steady_rate: float = 20.0   # referrals per second
    burst: int = 200
    throughput: int = 5000
    backlog: int = 100_000

    @classmethod
    def smoke(cls) -> Counts:
        return cls(floor=30, steady=5, steady_rate=10.0, burst=5, throughput=30, backlog=20)


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"n": len(ordered), "p50_ms": at(0.50) * 1e3, "p95_ms": at(0.95) * 1e3, "p99_ms": at(0.99) * 1e3,
            "max_ms": ordered[-1] * 1e3, "mean_ms": statistics.fmean(ordered) * 1e3}


# --- the floor ------------------------------------------------------------------------------------
async def floor(settings: Settings, payload: bytes, n: int, rate: float | None) -> dict[str, Any]:
    """``n`` copies of ``payload`` through two topic hops with bare aiokafka; latency and throughput."""
    run = uuid.uuid4().hex[:8]
    hop1, hop2 = f"{settings.topic_prefix}floor-{run}.hop1", f"{settings.topic_prefix}floor-{run}.hop2"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(t, settings.topic_partitions, 1) for t in (hop1, hop2)])
    # A consumer assigned to a partition whose leader is not elected yet can miss it for minutes.
    while True:
        described = await admin.describe_topics([hop1, hop2])
        if all(p["leader"] >= 0 for t in described for p in t["partitions"]) and \
                all(len(t["partitions"]) == settings.topic_partitions for t in described):
            break
        await asyncio.sleep(0.1)
    await admin.close()
    await asyncio.sleep(1.0)  # the brokers' own metadata catches up a moment after the controller's
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=0)
    relay_out = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=0)
    # Assigned partitions rather than groups: no join, no metadata wait; the floor is a lower bound.
    relay_in = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    sink = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest",
                            enable_auto_commit=False)
    for client in (producer, relay_out, relay_in, sink):
        await client.start()
    relay_in.assign([TopicPartition(hop1, p) for p in range(settings.topic_partitions)])
    sink.assign([TopicPartition(hop2, p) for p in range(settings.topic_partitions)])
    latencies: list[float] = []
    done = asyncio.Event()
    last_at = [0.0]

    async def relay() -> None:
        async for record in relay_in:
            await relay_out.send(hop2, record.value, key=record.key, headers=list(record.headers))

    async def drain() -> None:
        async for record in sink:
            sent = float(dict(record.headers)["t0"].decode())
            now = time.monotonic()
            latencies.append(now - sent)
            last_at[0] = now
            if len(latencies) >= n:
                done.set()
                return

    tasks = [asyncio.create_task(relay()), asyncio.create_task(drain())]
    try:
        first = time.monotonic()
        for i in range(n):
            key = f"floor-{i}".encode()
            if rate:
                await producer.send_and_wait(hop1, payload, key=key, headers=[("t0", str(time.monotonic()).encode())])
                await asyncio.sleep(max(0.0, first + (i + 1) / rate - time.monotonic()))
            else:
                await producer.send(hop1, payload, key=key, headers=[("t0", str(time.monotonic()).encode())])
        await producer.flush()
        await asyncio.wait_for(done.wait(), timeout=120 + n / 50)
        elapsed = last_at[0] - first
    finally:
        for task in tasks:
            task.cancel()
        for client in (producer, relay_out, relay_in, sink):
            await client.stop()
    return {**percentiles(latencies), "messages_per_second": n / elapsed if elapsed > 0 else None}


# --- the system under test -------------------------------------------------------------------------
@dataclass
class System:
    settings: Settings
    env: dict[str, str]
    inbox: DevInbox
    work: Path
    http_port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, service: str, instance: int = 1) -> subprocess.Popen:
        """Start ``service``; ``instance`` > 1 is one more worker in the same consumer group (its own
        data dir, so its ready file is its own). Processes are named ``service`` or ``service#N``."""
        name = service if instance == 1 else f"{service}#{instance}"
        ready = self.ready_file(name)
        ready.unlink(missing_ok=True)
        log = (self.work / f"{name}.log").open("ab")
        env = self.env if instance == 1 else {**self.env, "HANDOFF_DATA_DIR": str(self.data_dir(name))}
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", service], env=env, cwd=REPO_ROOT,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_die_with_parent)
        self.procs[name] = proc
        return proc

    def data_dir(self, name: str) -> Path:
        _, _, instance = name.partition("#")
        return self.work / ("data" if not instance else f"data-{instance}")

    def ready_file(self, name: str) -> Path:
        return self.data_dir(name) / "run" / f"{name.partition('#')[0]}.ready"

    def is_ready(self, name: str) -> bool:
        if name == "api":
            try:
                return httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False
        return self.ready_file(name).exists()

    async def wait_ready(self, *services: str, timeout: float = 120) -> float:
        started = time.monotonic()
        while not all(self.is_ready(s) for s in services):
            for s in services:
                if self.procs[s].poll() is not None:
                    raise RuntimeError(f"{s} exited; see {self.work / (s + '.log')}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{services} not ready after {timeout}s")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def stop(self, service: str) -> None:
        proc = self.procs.pop(service, None)
        if proc is not None:
            _stop_process(proc, timeout=30)

    def stop_all(self) -> None:
        for service in list(self.procs):
            self.stop(service)


def make_system(settings: Settings, work: Path, stack: ExitStack) -> System:
    inbox = DevInbox(free_port(), free_port(), "bench-webhook-secret").start()
    stack.callback(inbox.stop)
    reference = work / "reference"
    shutil.copytree(REPO_ROOT / "config" / "local", reference)
    for path in reference.glob("*.toml"):
        path.write_text(path.read_text().replace(LOCAL_INBOX, inbox.base_url))
    sites = reference / "sites.toml"  # no escalations during a run: they would be traffic of their own
    sites.write_text(sites.read_text().replace("escalate_after_minutes = 5", "escalate_after_minutes = 600"))
    http_port = free_port()
    env = {**os.environ, "HANDOFF_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "HANDOFF_SCHEMA_REGISTRY_URL": settings.schema_registry_url, "HANDOFF_TOPIC_PREFIX": settings.topic_prefix,
           "HANDOFF_TOPIC_PARTITIONS": str(settings.topic_partitions), "HANDOFF_DATA_DIR": str(work / "data"),
           "HANDOFF_REFERENCE_DIR": str(reference), "HANDOFF_SMS_API_BASE_URL": inbox.base_url,
           "HANDOFF_SMTP_PORT": str(inbox.smtp_port), "HANDOFF_LINK_SIGNING_KEY": "bench-key",
           "HANDOFF_WEBHOOK_SIGNING_SECRET": "bench-webhook-secret", "HANDOFF_HTTP_PORT": str(http_port),
           "HANDOFF_PUBLIC_BASE_URL": f"http://127.0.0.1:{http_port}", "HANDOFF_LOG_LEVEL": os.environ.get("BENCH_SERVICE_LOG_LEVEL", "WARNING")}
    system = System(settings, env, inbox, work, http_port)
    stack.callback(system.stop_all)
    return system


class FirstPages:
    """referral id -> arrival time of its first-step SMS page, read from the inbox as pages arrive
    (each poll looks only at what came since the last)."""

    def __init__(self, inbox: DevInbox) -> None:
        self.inbox = inbox
        self.seen = 0
        self.at: dict[str, float] = {}

    def update(self) -> dict[str, float]:
        arrived = self.inbox.inbox.of("sms")
        for m in arrived[self.seen:]:
            key = m.idempotency_key or ""
            if key.startswith("pg-") and "/0/0/" in key:
                self.at.setdefault(key.split("/")[0].removeprefix("pg-"), m.received_at)
        self.seen = len(arrived)
        return self.at


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def referral_to_page(system: System, n: int, rate: float | None, tag: str) -> dict[str, Any]:
    """POST ``n`` referrals (at ``rate`` per second, or all at once) and time each to its SMS page."""
    sent: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{system.http_port}", timeout=30,
                                 limits=httpx.Limits(max_connections=64)) as client:
        async def post(i: int) -> None:
            body = {**DEMO, "cad_event_id": f"BENCH-{tag}-{i}", "occurred_at": datetime.now(UTC).isoformat()}
            started = time.monotonic()
            resp = await client.post("/v1/referrals", json=body, headers=AGENCY)
            resp.raise_for_status()
            sent[resp.json()["referral_id"]] = started

        begin = time.monotonic()
        if rate:
            for i in range(n):
                await post(i)
                await asyncio.sleep(max(0.0, begin + (i + 1) / rate - time.monotonic()))
        else:
            await asyncio.gather(*(post(i) for i in range(n)))
    pages = FirstPages(system.inbox)
    await wait_for(lambda: sent.keys() <= pages.update().keys(), 60 + n, f"{n} pages ({tag})")
    arrived = pages.at
    return percentiles([arrived[rid] - at for rid, at in sent.items()])


async def throughput(system: System, codec: AvroCodec, n: int, children_from: int) -> dict[str, Any]:
    """``n`` CAD referrals and ``n // 4`` child encounters written at once; pages+notices per second.

    Children are numbered from ``children_from``: a child already noticed today would be merged
    into that notice (one per child, school and day) and send nothing new."""
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]
    referrals = [await codec.encode(CadReferralMade.model_validate(
        {**DEMO, "cad_event_id": f"TP-{run}-{i}", "occurred_at": now.isoformat()})) for i in range(n)]
    encounters = [await codec.encode(encounter(f"TPC-{run}-{i}", children_from + i, now)) for i in range(n // 4)]
    pages = FirstPages(system.inbox)
    before_pages, before_notices = len(pages.update()), system.inbox.inbox.count("webhook")
    producer = AIOKafkaProducer(bootstrap_servers=system.settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    started = time.monotonic()
    try:
        for i, value in enumerate(referrals):
            await producer.send(CAD_REFERRALS.qualified(system.settings.topic_prefix), value, key=f"TP-{run}-{i}".encode())
        for i, value in enumerate(encounters):
            await producer.send(CAD_CHILD_ENCOUNTERS.qualified(system.settings.topic_prefix), value,
                                key=f"TPC-{run}-{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    total = n + n // 4
    try:
        await wait_for(lambda: len(pages.update()) - before_pages >= n
                       and system.inbox.inbox.count("webhook") - before_notices >= n // 4, 120 + total / 5,
                       "throughput run to drain")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}: {len(pages.update()) - before_pages} of {n} pages, "
                           f"{system.inbox.inbox.count('webhook') - before_notices} of {n // 4} notices") from None
    elapsed = time.monotonic() - started
    return {"referrals": n, "encounters": n // 4, "seconds": elapsed, "messages_per_second": total / elapsed}


WORKERS = ("referral-intake", "notifier", "handle-with-care")


async def wait_groups_settled(settings: Settings, members: int, timeout: float = 120) -> None:
    """Until every worker's consumer group is Stable with ``members`` members: the rebalance that a
    joining worker causes is over."""
    ids = [f"{settings.topic_prefix}handoff-{service}" for service in WORKERS]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    deadline = time.monotonic() + timeout
    seen: Any = None
    try:
        while True:
            try:
                # One group per request: aiokafka 0.14 reads the v3 answer with the v2 layout, which
                # only comes out right for a single group.
                described = [g for group_id in ids for response in await admin.describe_consumer_groups([group_id])
                             for g in response.groups]
                # rows: (error_code, group_id, state, protocol_type, protocol, members, ...)
                seen = [(g[1], g[2], len(g[5])) for g in described]
                if len(described) == len(ids) and all(g[2] == "Stable" and len(g[5]) == members for g in described):
                    return
            except KafkaError as exc:
                seen = repr(exc)  # a coordinator moving or a connection dropped mid-rebalance: ask again
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumer groups did not settle with {members} workers each: {seen}")
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def with_second_workers(system: System, codec: AvroCodec, n: int) -> dict[str, Any]:
    """The throughput scenario with two workers per service (same consumer groups), then back to one."""
    for service in WORKERS:
        system.start(service, instance=2)
    try:
        await system.wait_ready(*(f"{service}#2" for service in WORKERS))
        await wait_groups_settled(system.settings, 2)
        await referral_to_page(system, 5, None, "warmup2")
        return await throughput(system, codec, n, children_from=2_000_000)
    finally:
        for service in WORKERS:
            system.stop(f"{service}#2")


def encounter(cad_event_id: str, i: int, at: datetime) -> CadChildEncountered:
    child = Child(first_name=f"Kid{i}", last_name="Bench", date_of_birth=date(2012, 1, 1) + timedelta(days=i % 3000),
                  grade=None)
    return CadChildEncountered(cad_event_id=cad_event_id, agency_id="apd", incident_id=f"INC-{cad_event_id}",
                               encountered_at=at, child=child, school_id="lincoln-es")


async def hwc_backlog(system: System, codec: AvroCodec, n: int) -> dict[str, Any]:
    """``n`` encounters while HWC is stopped; start it; time to the last notice; its peak memory."""
    system.stop("handle-with-care")
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:6]
    before = system.inbox.inbox.count("webhook")
    producer = AIOKafkaProducer(bootstrap_servers=system.settings.kafka_bootstrap_servers, acks="all",
                                linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        for i in range(n):
            value = await codec.encode(encounter(f"BL-{run}-{i}", i + 10_000_000, now))
            await producer.send(CAD_CHILD_ENCOUNTERS.qualified(system.settings.topic_prefix), value,
                                key=f"BL-{run}-{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    started = time.monotonic()
    proc = system.start("handle-with-care")
    peak = 0
    while system.inbox.inbox.count("webhook") - before < n:
        peak = max(peak, peak_rss_kib(proc.pid))
        if proc.poll() is not None:
            raise RuntimeError("handle-with-care exited during the backlog run")
        if time.monotonic() - started > 600 + n / 20:
            raise RuntimeError("backlog not drained in time")
        await asyncio.sleep(0.2)
    peak = max(peak, peak_rss_kib(proc.pid))
    return {"encounters": n, "seconds": time.monotonic() - started, "peak_rss_mib": peak / 1024}


def peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def cold_start(system: System) -> dict[str, float]:
    out = {}
    for service in ("api", "referral-intake", "notifier", "handle-with-care"):
        system.stop(service)
        system.start(service)
        out[service] = await system.wait_ready(service)
    return out


# --- the run --------------------------------------------------------------------------------------
SCENARIOS = ("floor", "cold_start", "steady", "burst", "throughput", "throughput2", "backlog")


async def run_all(settings: Settings, counts: Counts, work: Path, only: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    """Every scenario (or those in ``only``, while working on one of them)."""
    await ensure_topics(settings)
    codec = AvroCodec(registry_from_url(settings.schema_registry_url))
    payload = await codec.encode(CadReferralMade.model_validate(
        {**DEMO, "cad_event_id": "FLOOR-1", "occurred_at": datetime.now(UTC).isoformat()}))
    results: dict[str, Any] = {}
    if "floor" in only:
        results["floor_steady"] = await floor(settings, payload, counts.steady, counts.steady_rate)
        results["floor_throughput"] = await floor(settings, payload, counts.floor, None)
    with ExitStack() as stack:
        system = make_system(settings, work, stack)
        results["cold_start_seconds"] = await cold_start(system)
        await asyncio.sleep(2)  # let the consumer groups settle after the last start
        await referral_to_page(system, min(5, counts.steady), counts.steady_rate, "warmup")
        if "steady" in only:
            results["referral_to_page_steady"] = await referral_to_page(system, counts.steady, counts.steady_rate,
                                                                        "steady")
        if "burst" in only:
            results["referral_to_page_burst"] = await referral_to_page(system, counts.burst, None, "burst")
        if "throughput" in only:
            results["throughput"] = await throughput(system, codec, counts.throughput, children_from=1_000_000)
        if "throughput2" in only:
            results["throughput_two_workers"] = await with_second_workers(system, codec, counts.throughput)
        if "backlog" in only:
            results["hwc_backlog"] = await hwc_backlog(system, codec, counts.backlog)
    return results


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "python": platform.python_version(), "kafka": pinned_versions()["kafka.version"],
            "platform": platform.platform(), "when": datetime.now(UTC).isoformat(timespec="seconds")}


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    steady, floor_steady = results["referral_to_page_steady"], results["floor_steady"]
    floor_tp = results["floor_throughput"]
    best_tp = max(results["throughput"]["messages_per_second"], results["throughput_two_workers"]["messages_per_second"])
    backlog = results["hwc_backlog"]
    ratio = steady["p99_ms"] / floor_steady["p99_ms"] if floor_steady.get("p99_ms") else None
    tp_ratio = best_tp / floor_tp["messages_per_second"] if floor_tp.get("messages_per_second") else None
    return {
        "p99_vs_floor": {"value": ratio, "target": f"<= {TARGETS['p99_vs_floor']}x",
                         "met": ratio is not None and ratio <= TARGETS["p99_vs_floor"]},
        "p99_ms": {"value": steady["p99_ms"], "target": f"< {TARGETS['p99_ms']:.0f} ms",
                   "met": steady["p99_ms"] < TARGETS["p99_ms"]},
        "throughput_vs_floor": {"value": tp_ratio, "target": f">= {TARGETS['throughput_vs_floor']:.0%} (the better of one and two workers)",
                                "met": tp_ratio is not None and tp_ratio >= TARGETS["throughput_vs_floor"]},
        "backlog_seconds": {"value": backlog["seconds"], "target": f"< {TARGETS['backlog_seconds']:.0f} s "
                            f"(at 100,000; this run {backlog['encounters']:,})",
                            "met": backlog["seconds"] < TARGETS["backlog_seconds"]},
        "backlog_mib": {"value": backlog["peak_rss_mib"], "target": f"< {TARGETS['backlog_mib']:.0f} MiB",
                        "met": backlog["peak_rss_mib"] < TARGETS["backlog_mib"]},
    }


def markdown(report: dict[str, Any]) -> str:
    r, m, v = report["results"], report["machine"], report["verdicts"]

    def row(name: str, figures: dict[str, Any], floor_figures: dict[str, Any] | None = None) -> str:
        ratio = (f"{figures['p99_ms'] / floor_figures['p99_ms']:.1f}x" if floor_figures and floor_figures.get("p99_ms")
                 else "")
        return (f"| {name} | {figures['n']} | {figures['p50_ms']:.1f} | {figures['p95_ms']:.1f} | "
                f"{figures['p99_ms']:.1f} | {figures['max_ms']:.1f} | {ratio} |")

    def throughput_row(name: str, figures: dict[str, Any], floor_figures: dict[str, Any]) -> str:
        return (f"| referrals + encounters to pages + notices, {name} | {figures['referrals'] + figures['encounters']} | "
                f"{figures['seconds']:.1f} | {figures['messages_per_second']:.0f} | "
                f"{figures['messages_per_second'] / floor_figures['messages_per_second']:.3f} |")

    lines = [
        "# Benchmarks", "",
        f"Run `{report['command']}` ({'smoke counts' if report['smoke'] else 'full counts'}) on "
        f"{m['cores']} cores, Python {m['python']}, Kafka {m['kafka']}, {m['platform']}, {m['when']}.",
        "The floor is bare aiokafka moving the same Avro payload through the same two topic hops.", "",
        "## Referral to page latency (ms)", "",
        "| scenario | n | p50 | p95 | p99 | max | p99 vs floor |", "|---|---|---|---|---|---|---|",
        row("floor, steady rate", r["floor_steady"]),
        row("referral to page, steady rate", r["referral_to_page_steady"], r["floor_steady"]),
        row("referral to page, burst", r["referral_to_page_burst"], r["floor_steady"]), "",
        "## Throughput", "",
        "| scenario | messages | seconds | per second | vs floor |", "|---|---|---|---|---|",
        f"| floor | {r['floor_throughput']['n']} | | {r['floor_throughput']['messages_per_second']:.0f} | 1.0 |",
        throughput_row("one worker per service", r["throughput"], r["floor_throughput"]),
        *([throughput_row("two workers per service", r["throughput_two_workers"], r["floor_throughput"])]
          if "throughput_two_workers" in r else []), "",
        "## Handle With Care overnight backlog", "",
        f"{r['hwc_backlog']['encounters']:,} encounters written while the worker was stopped: all notices at the "
        f"receivers {r['hwc_backlog']['seconds']:.1f} s after it started; peak memory "
        f"{r['hwc_backlog']['peak_rss_mib']:.0f} MiB.", "",
        "## Cold start (process start to ready, s)", "",
        "| " + " | ".join(r["cold_start_seconds"]) + " |", "|" + "---|" * len(r["cold_start_seconds"]),
        "| " + " | ".join(f"{s:.1f}" for s in r["cold_start_seconds"].values()) + " |", "",
        "## Against the targets", "", "| target | this run | met |", "|---|---|---|",
    ]
    for name, verdict in v.items():
        value = verdict["value"]
        shown = "–" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
        lines.append(f"| {name.replace('_', ' ')} {verdict['target']} | {shown} | {'yes' if verdict['met'] else 'no'} |")
    if BASELINE.exists() and not report["smoke"]:
        lines += ["", *before_and_after(json.loads(BASELINE.read_text()), report)]
    if FINDINGS.exists() and not report["smoke"]:
        lines += ["", FINDINGS.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def before_and_after(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The headline figures of ``before`` (the baseline run) next to this run's."""
    b, a = before["results"], after["results"]

    def backlog_rate(r: dict[str, Any]) -> float:
        return r["hwc_backlog"]["encounters"] / r["hwc_backlog"]["seconds"]

    rows = [
        ("referral to page, steady p50 (ms)", b["referral_to_page_steady"]["p50_ms"], a["referral_to_page_steady"]["p50_ms"]),
        ("referral to page, steady p99 (ms)", b["referral_to_page_steady"]["p99_ms"], a["referral_to_page_steady"]["p99_ms"]),
        ("referral to page, burst p99 (ms)", b["referral_to_page_burst"]["p99_ms"], a["referral_to_page_burst"]["p99_ms"]),
        ("throughput, one worker per service (messages/s)", b["throughput"]["messages_per_second"],
         a["throughput"]["messages_per_second"]),
        ("HWC backlog drain rate (encounters/s)", backlog_rate(b), backlog_rate(a)),
        ("HWC backlog peak memory (MiB)", b["hwc_backlog"]["peak_rss_mib"], a["hwc_backlog"]["peak_rss_mib"]),
        ("slowest cold start (s)", max(b["cold_start_seconds"].values()), max(a["cold_start_seconds"].values())),
    ]
    return [
        "## Before and after the profile-driven fixes", "",
        (f"Before: `bench/results/{BASELINE.name}` ({before['machine']['when']}, backlog of "
         f"{b['hwc_backlog']['encounters']:,}); after: this run (backlog of {a['hwc_backlog']['encounters']:,})."), "",
        "| figure | before | after |", "|---|---|---|",
        *(f"| {name} | {was:,.1f} | {now:,.1f} |" for name, was, now in rows),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Handoff benchmarks against the raw Kafka floor")
    parser.add_argument("--smoke", action="store_true", help="tiny counts (the test suite's run)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    parser.add_argument("--report", type=Path, default=None, help="Markdown report (default docs/benchmarks.md)")
    parser.add_argument("--backlog", type=int, default=None, help="encounters in the HWC backlog scenario")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated scenarios of {','.join(SCENARIOS)}: prints their figures as JSON "
                             "and writes no report")
    parser.add_argument("--keep-work", action="store_true", help="keep the work folder (service logs) afterwards")
    parser.add_argument("--render", type=Path, default=None, metavar="RESULTS_JSON",
                        help="measure nothing: write the Markdown report again from a results file")
    args = parser.parse_args(argv)
    if args.render:
        report_path = args.report or REPORT
        report_path.write_text(markdown(json.loads(args.render.read_text())))
        print(f"wrote {report_path}")
        return 0
    only = tuple(args.only.split(",")) if args.only else SCENARIOS
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    counts = Counts.smoke() if args.smoke else Counts()
    if args.backlog is not None:
        counts.backlog = args.backlog
    work = Path(tempfile.mkdtemp(prefix="handoff-bench-"))
    print(f"work folder: {work}", file=sys.stderr)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        report = measure(counts, work, args.smoke, only)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    if args.only:  # while working on a scenario: its figures, no report
        print(json.dumps(report["results"], indent=2))
        return 0
    out_dir = args.out or RESULTS
    report_path = args.report or REPORT
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out_dir / f"{stamp}{'-smoke' if args.smoke else ''}.json").write_text(json.dumps(report, indent=2))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(markdown(report))
    print(markdown(report))
    return 0


def measure(counts: Counts, work: Path, smoke: bool, only: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        registry_url = os.environ.get("SCHEMA_REGISTRY_URL")
        if not bootstrap:
            bootstrap = stack.enter_context(LocalKafka(work_dir=work / "kafka")).bootstrap_servers
        if not registry_url:
            registry_url = stack.enter_context(LocalRegistry(work_dir=work / "registry")).url
        settings = Settings(kafka_bootstrap_servers=bootstrap, schema_registry_url=registry_url,
                            topic_prefix=f"b{uuid.uuid4().hex[:8]}.", topic_partitions=4)
        results = asyncio.run(run_all(settings, counts, work, only))
    if only != SCENARIOS:
        return {"results": results}
    report = {"command": "python -m bench.run" + (" --smoke" if smoke else ""), "smoke": smoke,
              "machine": machine(), "counts": dict(counts.__dict__), "results": results}
    report["verdicts"] = verdicts(results)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
