"""Benchmarks: Handoff against the raw Kafka floor, in one run, on one broker.

    python -m bench.run            # full counts (minutes)
    python -m bench.run --smoke    # tiny counts: the suite runs this so the benchmark cannot rot

Starts the local broker and registry (or uses KAFKA_BOOTSTRAP_SERVERS / SCHEMA_REGISTRY_URL),
runs the services as processes (``handoff run ...``) against a dev inbox in this process, and
writes the figures as Markdown to docs/benchmarks.md and as JSON to bench/results/.

- floor: a bare aiokafka producer, relay and consumer moving the same Avro payload through the
  same two topic hops a referral takes to become a page (CAD topic -> referral topic): the bare floor.
- http_floor: the same two hops with the same HTTP legs (HTTP in, an SMS request out): the latency
  floor a referral's way to its page is held against (bench/floors.py).
- fair_floor: the same work per item as Handoff's workers (decodes, writes awaited per batch,
  deliveries through the channel classes, commits after the writes), without Faust, tables or an
  outbox: the throughput floor (bench/floors.py).
- receivers: the channel classes alone against the receivers: what no design can exceed here.
- referral_to_page: HTTP intake -> intake worker -> notifier -> SMS request at the receiver;
  latency at a steady rate and in a burst (every shift change at once).
- throughput: CAD referrals and child encounters written to Kafka as fast as it takes them; how
  many per second come out as pages and notices, with one worker per service and with two.
- hwc_backlog: child encounters written while the HWC worker is stopped, then the worker started:
  time until every notice reached the receivers, and the worker's peak memory.
- cold_start: process start to ready, per service.
Every figure of a report is measured in the same run, against the floor measured beside it.
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
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench.floors import (
    FAIR_FLOOR_LEAVES_OUT,
    Cost,
    bare_floor,
    http_latency_floor,
    percentiles,
    wait_for,
)
from deploy.dev_inbox import DevInbox
from deploy.local_stack import (
    LocalKafka,
    LocalRegistry,
    _die_with_parent,
    _stop_process,
    free_port,
    pinned_versions,
)
from services.kernel.cad import CadChildEncountered, CadReferralMade
from services.kernel.events import (
    Child,
)
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_REFERRALS
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import client_options, ensure_topics
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT, Settings
from services.runtime import TOPICS

RESULTS = REPO_ROOT / "bench" / "results"
REPORT = REPO_ROOT / "docs" / "benchmarks.md"
# The run before any profile-driven fix; every report compares itself with it.
BASELINE = RESULTS / "20261123T112913Z.json"
# What the profiles showed and what was done about it: written by hand, appended to every report.
FINDINGS = REPO_ROOT / "bench" / "findings.md"
LOCAL_INBOX = "http://127.0.0.1:8025"
WEBHOOK_SECRET = "bench-webhook-secret"  # the dev inbox checks the services' (and the floors') signatures with it
AGENCY = {"Authorization": "Bearer local-dev-token-apd"}
DEMO = json.loads((REPO_ROOT / "config" / "local" / "demo" / "referral.json").read_text())
# The goals of issue #15, each a ratio to the floor measured in the same run (or a bound).
TARGETS = {"p99_vs_http_floor": 2.0, "p99_vs_bare_floor": 3.0, "throughput_vs_fair_floor": 0.8,
           "cpu_per_item_vs_fair_floor": 2.0,
           "backlog_vs_fair_floor": 0.8, "backlog_mib": 512.0, "burst_p99_ms": 1500.0,
           "throughput_sealed_vs_plain": 0.9}
PERCENT_TARGETS = {"throughput_vs_fair_floor", "backlog_vs_fair_floor", "throughput_sealed_vs_plain"}


@dataclass
class Counts:
    floor: int = 2000
    steady: int = 300
    steady_rate: float = 20.0   # referrals per second
    burst: int = 200
    throughput: int = 5000
    backlog: int = 100_000
    receivers: int = 2000       # sends per channel for the receivers' ceiling
    backlog_floor: int = 10_000  # encounters for the fair floor's backlog rate (a rate: no need for all)
    idle_seconds: float = 10.0  # how long the idle system's cost is measured

    @classmethod
    def smoke(cls) -> Counts:
        return cls(floor=30, steady=5, steady_rate=10.0, burst=5, throughput=30, backlog=20, receivers=10,
                   backlog_floor=20, idle_seconds=1.0)


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
        if name in ("api", "all"):  # the API answers once everything in its process has started
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

    def cost(self) -> Cost:
        """Where the machine's CPU stands now: ``Cost.per_item`` of two of these is what the items between cost."""
        return Cost.now({name: proc.pid for name, proc in self.procs.items()} | WATCHED)

    def stop(self, service: str) -> None:
        proc = self.procs.pop(service, None)
        if proc is not None:
            _stop_process(proc, timeout=30)

    def stop_all(self) -> None:
        for service in list(self.procs):
            self.stop(service)


# Processes every system's CPU figures include beside its own: the broker, and this process (the receivers, and the
# clients that feed the system). Set by ``measure`` when it starts them.
WATCHED: dict[str, int] = {}


def make_system(settings: Settings, work: Path, stack: ExitStack, env_changes: dict[str, str] | None = None) -> System:
    inbox = DevInbox(free_port(), free_port(), WEBHOOK_SECRET).start()
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
           "HANDOFF_KEK_DIRECTORY": str(work / "keys"),  # one key-encryption key for every worker, as in a deployment
           "HANDOFF_REFERENCE_DIR": str(reference), "HANDOFF_SMS_API_BASE_URL": inbox.base_url,
           "HANDOFF_SMTP_PORT": str(inbox.smtp_port), "HANDOFF_LINK_SIGNING_KEY": "bench-key",
           "HANDOFF_WEBHOOK_SIGNING_SECRET": WEBHOOK_SECRET, "HANDOFF_HTTP_PORT": str(http_port),
           "HANDOFF_PUBLIC_BASE_URL": f"http://127.0.0.1:{http_port}", "HANDOFF_LOG_LEVEL": os.environ.get("BENCH_SERVICE_LOG_LEVEL", "WARNING")}
    system = System(settings, {**env, **(env_changes or {})}, inbox, work, http_port)
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


async def referral_to_page(system: System, n: int, rate: float | None, tag: str) -> dict[str, Any]:
    """POST ``n`` referrals (at ``rate`` per second, or all at once) and time each to its SMS page."""
    sent: dict[str, float] = {}
    before = system.cost()
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
    # The CPU of the referrals' whole way (their page events and audits read back may still be under way: a
    # little of it falls outside).
    return {**percentiles([arrived[rid] - at for rid, at in sent.items()]), **system.cost().per_item(before, n)}


async def idle(system: System, seconds: float) -> dict[str, Any]:
    """What the system costs doing nothing (every process started, settled, nothing written): CPU milliseconds a
    second, the machine's and each process's. A small site's system is idle most of the day."""
    await settled(system)
    before = system.cost()
    await asyncio.sleep(seconds)
    spent = system.cost().per_item(before, 1)
    return {"seconds": seconds, "machine_cpu_ms_per_second": spent["machine_cpu_ms_per_item"] / seconds,
            "cpu_ms_per_second_by_process": {name: ms / seconds
                                             for name, ms in spent["cpu_ms_per_item_by_process"].items()}}


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
    producer = AIOKafkaProducer(**client_options(system.settings), acks="all")
    await producer.start()
    before = system.cost()
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
    return {"referrals": n, "encounters": n // 4, "seconds": elapsed, "messages_per_second": total / elapsed,
            **system.cost().per_item(before, total)}


WORKERS = ("referral-intake", "notifier", "handle-with-care")


async def wait_groups_settled(settings: Settings, members: int, timeout: float = 120) -> None:
    """Until every worker's consumer group is Stable with ``members`` members: the rebalance that a
    joining worker causes is over."""
    ids = [f"{settings.topic_prefix}handoff-{service}" for service in WORKERS]
    admin = AIOKafkaAdminClient(**client_options(settings))
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


SECOND_WORKERS_READY_SECONDS = 300.0


async def with_second_workers(system: System, codec: AvroCodec, n: int) -> dict[str, Any]:
    """The throughput scenario with two workers per service (same consumer groups), then back to one."""
    for service in WORKERS:
        system.start(service, instance=2)
    try:
        # A second worker recovers its tables, which the rounds before it grew (tens of thousands of pages and
        # deliveries by now), on a machine whose two cores the first workers and the broker already use.
        ready = await system.wait_ready(*(f"{service}#2" for service in WORKERS), timeout=SECOND_WORKERS_READY_SECONDS)
        await wait_groups_settled(system.settings, 2)
        await referral_to_page(system, 5, None, "warmup2")
        return {**await throughput(system, codec, n, children_from=2_000_000), "ready_seconds": round(ready, 1)}
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
    producer = AIOKafkaProducer(**client_options(system.settings), acks="all",
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
    started, spent_before = time.monotonic(), system.cost()
    proc = system.start("handle-with-care")
    peak = 0
    while system.inbox.inbox.count("webhook") - before < n:
        peak = max(peak, peak_rss_kib(proc.pid))
        if proc.poll() is not None:
            raise RuntimeError("handle-with-care exited during the backlog run")
        if time.monotonic() - started > 600 + n / 20:
            raise RuntimeError("backlog not drained in time")
        await asyncio.sleep(0.2)
    delivered_at = time.monotonic() - started
    # Done when the worker has processed its own events too (the deliveries' settle events, the
    # audits it reads back), not when the last webhook arrives: until then it is still working.
    async with GroupLag(system.settings, f"{system.settings.topic_prefix}handoff-handle-with-care") as lag:
        while await lag.records_behind() != 0:
            peak = max(peak, peak_rss_kib(proc.pid))
            if time.monotonic() - started > 900 + n / 20:
                raise RuntimeError("the HWC worker did not catch up with its own events")
            await asyncio.sleep(0.2)
    peak = max(peak, peak_rss_kib(proc.pid))
    return {"encounters": n, "seconds": time.monotonic() - started, "last_notice_seconds": delivered_at,
            "peak_rss_mib": peak / 1024, **system.cost().per_item(spent_before, n)}


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


# --- the floors beside the system -----------------------------------------------------------------
def receivers(system: System) -> dict[str, str]:
    """Where Handoff's own pages and notices go in this run: the on-call phone and email, a school's webhook."""
    reference = load_reference_data(system.work / "reference")
    person = next(p for p in reference.case_managers.values() if p.phone and p.email)
    school = next(s for s in reference.schools.values() if s.primary_contact and s.primary_contact.webhook_url)
    return {"phone": person.phone, "email": person.email, "webhook_url": school.primary_contact.webhook_url}


def delivery_settings(system: System) -> Settings:
    """The services' settings for this run, as their environment gives them (receivers included)."""
    return Settings(**{k.removeprefix("HANDOFF_").lower(): v for k, v in system.env.items()
                       if k.startswith("HANDOFF_") and k != "HANDOFF_LOG_LEVEL"})


async def fair_floor(system: System, codec: AvroCodec, n_referrals: int, n_encounters: int) -> dict[str, Any]:
    """The fair floor (bench/floors.py) over ``n_referrals`` referrals and ``n_encounters`` encounters,
    written to topics of its own first, then handled by a process of its own."""
    from bench.floors import create_topics

    run = uuid.uuid4().hex[:6]
    settings = delivery_settings(system)
    inputs = [f"{settings.topic_prefix}fair-in-{run}.referrals", f"{settings.topic_prefix}fair-in-{run}.encounters"]
    await create_topics(settings, *inputs)
    now = datetime.now(UTC)
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for i in range(n_referrals):
            value = await codec.encode(CadReferralMade.model_validate(
                {**DEMO, "cad_event_id": f"FF-{run}-{i}", "occurred_at": now.isoformat()}))
            await producer.send(inputs[0], value, key=f"FF-{run}-{i}".encode())
        for i in range(n_encounters):
            value = await codec.encode(encounter(f"FFC-{run}-{i}", 20_000_000 + i, now))
            await producer.send(inputs[1], value, key=f"FFC-{run}-{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    figures = await floor_process("fair", system, {"inputs": inputs, "items": n_referrals + n_encounters},
                                  timeout=600 + (n_referrals + n_encounters) / 20)
    return {"referrals": n_referrals, "encounters": n_encounters, **figures}


async def floor_process(kind: str, system: System, config: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``python -m bench.floors KIND`` against this run's broker and receivers; its figures."""
    settings = delivery_settings(system)
    config = {"settings": json.loads(settings.model_dump_json(include={
                  "kafka_bootstrap_servers", "schema_registry_url", "topic_prefix", "topic_partitions",
                  "sms_api_base_url", "smtp_port", "delivery_concurrency", "smtp_connections"})
              ) | {"webhook_signing_secret": WEBHOOK_SECRET}, **receivers(system), **config}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.floors", kind, json.dumps(config),
                                                cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"bench.floors {kind} exited with {proc.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def changelog_partitions_unwritten(settings: Settings) -> list[str]:
    """The changelog partitions of this run's workers that hold no record yet."""
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics()
                  if t.startswith(f"{settings.topic_prefix}handoff-") and t.endswith("-changelog")]
        tps = [tp for t in topics for tp in (TopicPartition(t, p) for p in consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(tps) if tps else {}
        return [f"{tp.topic}/{tp.partition}" for tp, end in ends.items() if end == 0] if topics else ["(none yet)"]
    finally:
        await consumer.stop()


async def warm_up(system: System, codec: AvroCodec, rounds: int = 20) -> dict[str, Any]:
    """Referrals and encounters until every changelog partition of every worker has been written:
    Faust's first write to each (after a start or a rebalance) is slower than the rest."""
    for i in range(rounds):
        await referral_to_page(system, 2 * system.settings.topic_partitions, None, f"warmup{i}")
        await throughput(system, codec, 4 * system.settings.topic_partitions, children_from=3_000_000 + 1000 * i)
        unwritten = await changelog_partitions_unwritten(system.settings)
        if not unwritten:
            return {"rounds": i + 1}
    return {"rounds": rounds, "unwritten": unwritten}


class GroupLag:
    """How far a consumer group is from the end of the partitions it has committed on."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        self.group_id = group_id
        self.admin = AIOKafkaAdminClient(**client_options(settings))
        self.consumer = AIOKafkaConsumer(**client_options(settings))

    async def __aenter__(self) -> GroupLag:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *_exc: Any) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def records_behind(self) -> int | None:
        committed = await self.admin.list_consumer_group_offsets(self.group_id)
        if not committed:
            return None
        ends = await self.consumer.end_offsets(list(committed))
        return sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items())


# --- the run --------------------------------------------------------------------------------------
SCENARIOS = ("floor", "receivers", "http_floor", "cold_start", "idle", "steady", "burst", "throughput", "fair_floor",
             "throughput2", "backlog", "sealing_off", "one_process")


async def run_all(settings: Settings, counts: Counts, work: Path, only: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    """Every scenario (or those in ``only``, while working on one of them)."""
    await ensure_topics(settings, TOPICS)
    codec = AvroCodec(registry_from_url(settings.schema_registry_url))
    payload = await codec.encode(CadReferralMade.model_validate(
        {**DEMO, "cad_event_id": "FLOOR-1", "occurred_at": datetime.now(UTC).isoformat()}))
    results: dict[str, Any] = {}
    if "floor" in only:
        results["floor_steady"] = await bare_floor(settings, payload, counts.steady, counts.steady_rate)
        results["floor_throughput"] = await bare_floor(settings, payload, counts.floor, None)
    with ExitStack() as stack:
        system = make_system(settings, work, stack)
        if "receivers" in only:
            results["receivers_ceiling"] = await floor_process("ceiling", system, {"sends": counts.receivers},
                                                               timeout=120 + counts.receivers / 10)
        if "http_floor" in only:
            phone = receivers(system)["phone"]
            results["http_latency_floor"] = await http_latency_floor(
                delivery_settings(system), counts.steady, counts.steady_rate, phone,
                lambda: {m.idempotency_key: m.received_at for m in system.inbox.inbox.of("sms")
                         if (m.idempotency_key or "").startswith("hfloor-")})
        results["cold_start_seconds"] = await cold_start(system)
        await wait_groups_settled(system.settings, 1)
        results["warm_up"] = await warm_up(system, codec)
        if "idle" in only:
            results["idle"] = await idle(system, counts.idle_seconds)
        if "steady" in only:
            results["referral_to_page_steady"] = await referral_to_page(system, counts.steady, counts.steady_rate,
                                                                        "steady")
        if "burst" in only:
            results["referral_to_page_burst"] = await referral_to_page(system, counts.burst, None, "burst")
        if "throughput" in only:
            results["throughput"] = await throughput(system, codec, counts.throughput, children_from=1_000_000)
        if "sealing_off" in only:  # before the scenarios that add workers or leave a backlog behind
            results["sealing_off"] = await sealing_cost(settings, counts, work, stack, system, codec)
        if "one_process" in only:
            results["one_process"] = await one_process(settings, counts, work, stack, system, codec)
        for i, name in enumerate(name for name in SETTINGS_BESIDE if name in only):
            results[name] = await setting_beside(name, settings, counts, work, stack, system, codec,
                                                 children_from=9_000_000 + i * 1_000_000)
        if "fair_floor" in only:
            results["fair_floor"] = await fair_floor(system, codec, counts.throughput, counts.throughput // 4)
            results["fair_floor_encounters"] = await fair_floor(system, codec, 0, counts.backlog_floor)
        if "throughput2" in only:
            try:
                results["throughput_two_workers"] = await with_second_workers(system, codec, counts.throughput)
            except RuntimeError as exc:  # reported as not measured, with why: the scenarios after it still run
                results["throughput_two_workers"] = {"not_measured": str(exc)}
        if "backlog" in only:
            results["hwc_backlog"] = await hwc_backlog(system, codec, counts.backlog)
        system.stop_all()
    return results


async def beside(settings: Settings, work: Path, stack: ExitStack, name: str, codec: AvroCodec,
                 env_changes: dict[str, str] | None = None, one_process: bool = False) -> tuple[System, Any]:
    """A second system of the same services on topics and an inbox of its own (prefix ``name.``), started, settled
    and warmed up like the first: what a side-by-side comparison (``compared``) measures against. Returns it and
    its start-up seconds."""
    other = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}{name}."})
    await ensure_topics(other, TOPICS)
    (work / name).mkdir(parents=True, exist_ok=True)
    system = make_system(other, work / name, stack, env_changes)
    if one_process:
        system.start("all")
        started = await system.wait_ready("all", timeout=180)
    else:
        started = await cold_start(system)
    await wait_groups_settled(other, 1)
    await warm_up(system, codec)
    return system, started


async def compared(label: str, order: tuple, systems: dict[Any, tuple[System, AvroCodec]], counts: Counts,
                   children_from: int, made_beside: Any) -> dict[str, Any]:
    """Two systems side by side: the steady latency of the one ``made_beside`` the run's (whose own is in the
    results already), then throughput rounds alternating between them in ``order`` (each round kept under
    ``label``), each with machine CPU per item, and a summary of each."""
    steady = await referral_to_page(systems[made_beside][0], counts.steady, counts.steady_rate, f"steady-{label}")
    rounds = await alternating(order, label, systems, counts.throughput, children_from=children_from)
    return {"referral_to_page_steady": steady, "rounds": rounds,
            **{str(which): _rounds_summary([r for r in rounds if r[label] == which]) for which in systems}}


# Sealed and plain rounds in this order: each system runs once before and once after the other's
# rounds, so the broker warming up or its logs growing during the comparison weigh on both alike.
SEALING_ROUNDS = (False, True, True, False)


async def sealing_cost(settings: Settings, counts: Counts, work: Path, stack: ExitStack, sealed: System,
                       codec: AvroCodec) -> dict[str, Any]:
    """What sealing costs (issue #26: within 10% of throughput), measured in the same run: a second system
    that seals no personal value (``HANDOFF_SEAL_PERSONAL_VALUES=false``) runs beside the sealed one. Either
    system idles while the other is measured, so each round carries the same idle neighbour."""
    plain, _ = await beside(settings, work, stack, "off", codec, {"HANDOFF_SEAL_PERSONAL_VALUES": "false"})
    try:
        found = await compared("sealed", SEALING_ROUNDS, {True: (sealed, codec), False: (plain, codec)}, counts,
                               children_from=5_000_000, made_beside=False)
        return {**found, "sealed": found.pop("True"), "plain": found.pop("False")}
    finally:
        plain.stop_all()


# A process per service, then every service in one process, in this order (as SEALING_ROUNDS).
LAYOUT_ROUNDS = ("separate", "one", "one", "separate")


async def one_process(settings: Settings, counts: Counts, work: Path, stack: ExitStack, separate: System,
                      codec: AvroCodec) -> dict[str, Any]:
    """Every service and the API in one process (``handoff run all``, issue #29) beside a process per service."""
    together, started = await beside(settings, work, stack, "one", codec, one_process=True)
    try:
        found = await compared("layout", LAYOUT_ROUNDS, {"one": (together, codec), "separate": (separate, codec)},
                               counts, children_from=7_000_000, made_beside="one")
        return {"start_seconds": started, **found}
    finally:
        together.stop_all()


# Settings chosen by measurement (bench/findings.md says what each found): the system as configured beside one with
# the setting at another value, throughput rounds alternating. Run only when named (``ON_REQUEST``).
# name -> (the setting's environment variable, its value beside, what the run above is configured with).
SETTINGS_BESIDE = {
    # the producers' linger compared with none, which the workers had before it was a setting: what batching saves
    # the broker and the workers, and what it adds to a referral's latency
    "linger": ("HANDOFF_KAFKA_PRODUCER_LINGER_MS", "0", lambda s: s.kafka_producer_linger_ms),
    # a worker's offsets committed every 5 seconds rather than every second
    "commit_interval": ("HANDOFF_KAFKA_COMMIT_INTERVAL_SECONDS", "5", lambda s: s.kafka_commit_interval_seconds),
    # read models' fetches held for more records, compared with answered at once
    "follower_wait": ("HANDOFF_KAFKA_FOLLOWER_FETCH_WAIT_MS", "0", lambda s: s.kafka_follower_fetch_wait_ms),
}
SETTING_ROUNDS = ("setting", "beside", "beside", "setting")
# Run only when named (``--only steady,linger``): a setting's comparison, measured when the setting is chosen, not on
# every full run or in the suite's smoke run.
ON_REQUEST = tuple(SETTINGS_BESIDE)


async def setting_beside(name: str, settings: Settings, counts: Counts, work: Path, stack: ExitStack, system: System,
                         codec: AvroCodec, children_from: int) -> dict[str, Any]:
    """The system as configured beside one with setting ``name`` at its value in ``SETTINGS_BESIDE``: each one's
    idle cost, steady latency and throughput rounds, each with CPU per item."""
    variable, value, configured = SETTINGS_BESIDE[name]
    other, _ = await beside(settings, work, stack, name.replace("_", "-"), codec, {variable: value})
    try:
        idle_costs = {"setting": await idle(system, counts.idle_seconds), "beside": await idle(other, counts.idle_seconds)}
        found = await compared(name, SETTING_ROUNDS, {"setting": (system, codec), "beside": (other, codec)},
                               counts, children_from=children_from, made_beside="beside")
        return {"variable": variable, "setting": configured(settings), "beside_value": value, "idle": idle_costs,
                **found}
    finally:
        other.stop_all()


async def alternating(order: tuple, label: str, systems: dict[Any, tuple[System, AvroCodec]], n: int,
                      children_from: int) -> list[dict[str, Any]]:
    """Throughput rounds of two systems side by side, in ``order`` (each a key of ``systems``, kept in each round
    under ``label``), each with machine CPU per item, and each begun once both have read everything: no round pays
    for the tail of the one before it."""
    rounds = []
    for i, which in enumerate(order):
        system, codec = systems[which]
        await settled(*(s for s, _ in systems.values()))
        figures = await throughput(system, codec, n, children_from=children_from + i * 100_000)
        rounds.append({**figures, label: which})
    return rounds


async def settled(*systems: System, timeout: float = 120) -> None:
    """Until every worker of ``systems`` has read everything on its topics (its own events included: the PageSent
    and audit records a round leaves behind), then a second for what follows from those."""
    groups = [(s.settings, f"{s.settings.topic_prefix}handoff-{service}") for s in systems for service in WORKERS]
    deadline = time.monotonic() + timeout
    for settings, group in groups:
        async with GroupLag(settings, group) as lag:
            while (await lag.records_behind() or 0) > 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{group} did not catch up in {timeout:.0f}s")
                await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)


def _rounds_summary(rounds: list[dict[str, Any]]) -> dict[str, float]:
    items = sum(r["referrals"] + r["encounters"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    cpu_ms = sum(r["machine_cpu_ms_per_item"] * (r["referrals"] + r["encounters"]) for r in rounds)
    return {"items": items, "seconds": seconds, "messages_per_second": items / seconds,
            "machine_cpu_ms_per_item": cpu_ms / items}


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "python": platform.python_version(), "kafka": pinned_versions()["kafka.version"],
            "platform": platform.platform(), "when": datetime.now(UTC).isoformat(timespec="seconds")}


def _ratio(value: float | None, floor_value: float | None) -> float | None:
    return value / floor_value if value is not None and floor_value else None


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Each goal of issue #15 as a ratio to the floor measured in the same run (or a bound)."""
    steady, burst, backlog = results["referral_to_page_steady"], results["referral_to_page_burst"], results["hwc_backlog"]
    # The better layout: one worker per service, two, or every service in one process.
    layouts = [results["throughput"], results.get("throughput_two_workers", {}),
               results.get("one_process", {}).get("one", {})]
    best_tp = max(layout.get("messages_per_second", 0) for layout in layouts)
    cpu = [c for layout in layouts if (c := layout.get("machine_cpu_ms_per_item")) is not None]
    fair = results.get("fair_floor", {})
    figures = {
        "p99_vs_http_floor": (_ratio(steady["p99_ms"], results.get("http_latency_floor", {}).get("p99_ms")), "<=",
                              "x the latency floor with the same HTTP legs"),
        "p99_vs_bare_floor": (_ratio(steady["p99_ms"], results["floor_steady"].get("p99_ms")), "<=",
                              "x the bare two-hop floor"),
        "throughput_vs_fair_floor": (_ratio(best_tp, fair.get("items_per_second")), ">=",
                                     "of the fair floor (the better of one and two workers and one process)"),
        "cpu_per_item_vs_fair_floor": (_ratio(min(cpu, default=None), fair.get("machine_cpu_ms_per_item")), "<=",
                                       "x the fair floor's machine CPU per item (the better layout)"),
        "backlog_vs_fair_floor": (_ratio(backlog["encounters"] / backlog["seconds"],
                                         results.get("fair_floor_encounters", {}).get("items_per_second")), ">=",
                                  f"of the fair floor's rate for encounters (this run {backlog['encounters']:,})"),
        "backlog_mib": (backlog["peak_rss_mib"], "<", "MiB peak (at 100,000)"),
        "burst_p99_ms": (burst["p99_ms"], "<", "ms, 200 referrals at once"),
    }
    if "sealing_off" in results:  # the same run, one worker each, sealing on (the system above) and off
        cost = results["sealing_off"]
        figures["throughput_sealed_vs_plain"] = (
            _ratio(cost["sealed"]["messages_per_second"], cost["plain"]["messages_per_second"]), ">=",
            "of the throughput with sealing off (one worker per service, alternating rounds)")
    out = {}
    for name, (value, op, what) in figures.items():
        target = TARGETS[name]
        shown = f"{target:.0%}" if name in PERCENT_TARGETS else f"{target:g}"
        met = value is not None and (value <= target if op == "<=" else value >= target if op == ">=" else value < target)
        out[name] = {"value": value, "target": f"{op} {shown} {what}", "met": met}
    return out


def markdown(report: dict[str, Any]) -> str:
    r, m, v = report["results"], report["machine"], report["verdicts"]
    http_floor, fair = r.get("http_latency_floor"), r.get("fair_floor")

    def ratio_text(value: float | None, floor_value: float | None, digits: int = 1) -> str:
        ratio = _ratio(value, floor_value)
        return "" if ratio is None else f"{ratio:.{digits}f}x"

    def cpu_text(figures: dict[str, Any] | None) -> str:
        cpu = (figures or {}).get("machine_cpu_ms_per_item")
        return "" if cpu is None else f"{cpu:.1f}"

    def row(name: str, figures: dict[str, Any], against: bool = True) -> str:
        return (f"| {name} | {figures['n']} | {figures['p50_ms']:.1f} | {figures['p95_ms']:.1f} | "
                f"{figures['p99_ms']:.1f} | {figures['max_ms']:.1f} | "
                f"{ratio_text(figures['p99_ms'], http_floor['p99_ms']) if against and http_floor else ''} | "
                f"{ratio_text(figures['p99_ms'], r['floor_steady']['p99_ms']) if against else ''} | "
                f"{cpu_text(figures)} |")

    def throughput_row(name: str, figures: dict[str, Any]) -> str:
        if "not_measured" in figures:
            return f"| referrals + encounters to pages + notices, {name} | not measured: {figures['not_measured']} | | | | | |"
        cpu = figures.get("machine_cpu_ms_per_item")
        return (f"| referrals + encounters to pages + notices, {name} | {figures['referrals'] + figures['encounters']} | "
                f"{figures['seconds']:.1f} | {figures['messages_per_second']:.0f} | "
                f"{ratio_text(figures['messages_per_second'], fair['items_per_second'], 2) if fair else ''} | "
                f"{cpu_text(figures)} | {ratio_text(cpu, (fair or {}).get('machine_cpu_ms_per_item'), 2)} |")

    backlog = r["hwc_backlog"]
    backlog_rate = backlog["encounters"] / backlog["seconds"]
    lines = [
        "# Benchmarks", "",
        f"Run `{report['command']}` ({'smoke counts' if report['smoke'] else 'full counts'}) on "
        f"{m['cores']} cores, Python {m['python']}, Kafka {m['kafka']}, {m['platform']}, {m['when']}.",
        "Every figure below was measured in this one run, each floor beside what it is compared with "
        "(bench/run.py and bench/floors.py say what each floor does).", "",
        "## Referral to page latency (ms)", "",
        "| scenario | n | p50 | p95 | p99 | max | p99 vs HTTP floor | p99 vs bare floor | machine CPU per item (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
        row("bare floor: two hops, no HTTP", r["floor_steady"], against=False),
        *([row("latency floor: HTTP in, two hops, HTTP out", http_floor, against=False)] if http_floor else []),
        row("referral to page, steady rate", r["referral_to_page_steady"]),
        row("referral to page, burst", r["referral_to_page_burst"]), "",
        "## Throughput", "",
        "| scenario | items | seconds | per second | vs fair floor | machine CPU per item (ms) | CPU vs fair floor |",
        "|---|---|---|---|---|---|---|",
        f"| bare floor (opaque messages, two hops) | {r['floor_throughput']['n']} | | "
        f"{r['floor_throughput']['messages_per_second']:.0f} | | | |",
        *([f"| fair floor (the same work per item, no Faust) | {fair['items']} | {fair['seconds']:.1f} | "
           f"{fair['items_per_second']:.0f} | 1.00x | {cpu_text(fair)} | 1.00x |"] if fair else []),
        throughput_row("one worker per service", r["throughput"]),
        *([throughput_row("two workers per service" + (f" (the second ready in {two['ready_seconds']:.0f} s)"
                                                        if "ready_seconds" in (two := r["throughput_two_workers"]) else ""),
                          two)]
          if "throughput_two_workers" in r else []), "",
    ]
    if "idle" in r:
        lines += [f"Idle ({r['idle']['seconds']:.0f} s, everything started and nothing written): the machine busy "
                  f"{r['idle']['machine_cpu_ms_per_second']:.0f} ms a second; "
                  + ", ".join(f"{name} {ms:.0f}" for name, ms in
                              sorted(r["idle"]["cpu_ms_per_second_by_process"].items(), key=lambda x: -x[1]))
                  + ". At the steady rate every referral carries its share of that.", ""]
    if fair:
        lines += ["What the fair floor still leaves out: " + "; ".join(FAIR_FLOOR_LEAVES_OUT) + ".", ""]
    by_process = r["throughput"].get("cpu_ms_per_item_by_process")
    if by_process:
        lines += ["Where an item's CPU went in the one-worker run (ms an item, by process; the rest of the machine's is "
                  "the kernel's and other processes'): "
                  + ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(by_process.items(), key=lambda x: -x[1]))
                  + (f"; the fair floor's own process {fair['own_cpu_ms_per_item']:.2f}"
                     if fair and "own_cpu_ms_per_item" in fair else "") + ".", ""]
    if "sealing_off" in r:
        cost = r["sealing_off"]
        lines += ["## What sealing personal values costs", "",
                  "The same run, one worker per service: the system above (every personal value sealed) and one "
                  "that seals nothing (`HANDOFF_SEAL_PERSONAL_VALUES=false`, its own topics), running side by side. "
                  "Throughput rounds alternate between them (plain, sealed, sealed, plain), each with the whole "
                  "machine's CPU per item (broker included).", "",
                  "| | referral to page p99 (ms), steady | throughput (per second) | machine CPU per item (ms) |",
                  "|---|---|---|---|",
                  f"| sealed | {r['referral_to_page_steady']['p99_ms']:.1f} | "
                  f"{cost['sealed']['messages_per_second']:.0f} | {cost['sealed']['machine_cpu_ms_per_item']:.1f} |",
                  f"| not sealed | {cost['referral_to_page_steady']['p99_ms']:.1f} | "
                  f"{cost['plain']['messages_per_second']:.0f} | {cost['plain']['machine_cpu_ms_per_item']:.1f} |", "",
                  "Rounds in order: " + ", ".join(
                      f"{'sealed' if x['sealed'] else 'plain'} {x['messages_per_second']:.0f}/s "
                      f"({x['machine_cpu_ms_per_item']:.1f} ms)" for x in cost["rounds"]) + ".", ""]
    if "one_process" in r:
        layouts = r["one_process"]
        lines += ["## One process or a process per service", "",
                  "The same run: the system above (a process per service) and the same services on their own topics "
                  f"as one process (`handoff run all`, ready in {layouts['start_seconds']:.1f} s). Throughput rounds "
                  "alternate between them (separate, one, one, separate), each with the whole machine's CPU per "
                  "item.", "",
                  "| | referral to page p99 (ms), steady | throughput (per second) | machine CPU per item (ms) |",
                  "|---|---|---|---|",
                  f"| a process per service | {r['referral_to_page_steady']['p99_ms']:.1f} | "
                  f"{layouts['separate']['messages_per_second']:.0f} | "
                  f"{layouts['separate']['machine_cpu_ms_per_item']:.1f} |",
                  f"| one process | {layouts['referral_to_page_steady']['p99_ms']:.1f} | "
                  f"{layouts['one']['messages_per_second']:.0f} | {layouts['one']['machine_cpu_ms_per_item']:.1f} |",
                  ""]
    if "receivers_ceiling" in r:
        c = r["receivers_ceiling"]
        lines += [f"The receivers' own ceiling (the channel classes alone, {c['sends_per_channel']:,} sends each): "
                  + ", ".join(f"{name} {rate:.0f}/s" for name, rate in c["per_second"].items())
                  + f"; a page (its SMS and email sent together) {c['pages_per_second']:.0f}/s, a notice "
                  f"{c['notices_per_second']:.0f}/s.", ""]
    fair_enc = r.get("fair_floor_encounters")
    lines += [
        "## Handle With Care overnight backlog", "",
        f"{backlog['encounters']:,} encounters written while the worker was stopped: the worker had processed "
        f"everything, its own events included, {backlog['seconds']:.1f} s after it started "
        + (f"(the last notice reached its receiver at {backlog['last_notice_seconds']:.1f} s)"
           if "last_notice_seconds" in backlog else "")
        + f"; {backlog_rate:.0f} encounters/s"
        + (f", {ratio_text(backlog_rate, fair_enc['items_per_second'], 2)} of the fair floor's "
           f"{fair_enc['items_per_second']:.0f}/s" if fair_enc else "")
        + f"; peak memory {backlog['peak_rss_mib']:.0f} MiB"
        + (f"; machine CPU {backlog['machine_cpu_ms_per_item']:.1f} ms an encounter"
           + (f" ({ratio_text(backlog['machine_cpu_ms_per_item'], fair_enc['machine_cpu_ms_per_item'], 2)} the fair "
              f"floor's {fair_enc['machine_cpu_ms_per_item']:.1f})"
              if fair_enc and "machine_cpu_ms_per_item" in fair_enc else "")
           if "machine_cpu_ms_per_item" in backlog else "") + ".", "",
        "## Cold start (process start to ready, s)", "",
        "| " + " | ".join(r["cold_start_seconds"]) + " |", "|" + "---|" * len(r["cold_start_seconds"]),
        "| " + " | ".join(f"{s:.1f}" for s in r["cold_start_seconds"].values()) + " |", "",
        "## Against the goals", "", "| goal | this run | met |", "|---|---|---|",
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
    unknown = set(only) - set(SCENARIOS) - set(ON_REQUEST)
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
            kafka = stack.enter_context(LocalKafka(work_dir=work / "kafka"))
            bootstrap = kafka.bootstrap_servers
            WATCHED.update({f"broker {node.node_id}": node.process.pid for node in kafka.nodes if node.process})
        WATCHED["benchmark and receivers"] = os.getpid()
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
