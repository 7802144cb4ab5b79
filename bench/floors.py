"""The floors Handoff's figures are measured against, each doing the same work without Handoff.

- ``fair_floor``: one process with bare aiokafka doing per item what Handoff does per item: the same
  Avro decodes and encodes, the same number of Kafka writes (awaited per batch), the same deliveries through the
  project's channel classes to the same receivers with the same concurrency limit, and the consumer's
  offsets committed after the writes. What a design without Faust, tables or an outbox could reach.
- ``receivers_ceiling``: the channel classes alone against the receivers, no Kafka: no design that
  delivers every page and notice can beat it on this machine.
- ``bare_floor``: two bare topic hops moving the same Avro payload a referral becomes a page with,
  opaque: what Kafka alone costs.
- ``http_latency_floor``: HTTP in, two bare topic hops, HTTP out (an SMS request at the receiver):
  the same legs as a referral's way to its page, with nothing of Handoff's in between.

The fair floor and the receivers' ceiling run in a process of their own (``python -m bench.floors
fair|ceiling CONFIG_JSON``), as each Handoff service does, so that they do not share the benchmark
process's interpreter with the receivers (the dev inbox runs in it).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.delivery.channels import Outgoing, build_channels, delivery_http_client
from services.kernel.cad import CadChildEncountered, CadReferralMade
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import client_options
from services.platform.settings import Settings

# What one item costs Handoff, counted on the real processes (every AvroCodec.decode and .encode of a
# `--only throughput` run of 5,000 referrals and 1,250 encounters, counted per event type in each process; the
# method and the counts are in bench/findings.md, "#29: what an item costs").
WRITES_PER_REFERRAL = 16      # referral, lifecycle, page, its state, pending and settled per channel, audits, ...
# CAD record 1; ReferralCreated 5 (the intake's agent and read model, the notifier's agent and caseloads, the API);
# PageRequested 3 (notifier, intake, API); PageSent 6 (two per page, in the same three); its data key 4 (each
# process reads the key topic).
DECODES_PER_REFERRAL = 19
ENCODES_PER_REFERRAL = 7      # ReferralCreated, its data key, PageRequested, PageSent x2, DisclosureAudited x2
WRITES_PER_ENCOUNTER = 10
# CAD record 1; HwcNoticeRequested 2 (HWC, API); HwcNoticeDelivered 4 (two per notice, HWC and API); its key 4.
DECODES_PER_ENCOUNTER = 11
ENCODES_PER_ENCOUNTER = 6     # HwcNoticeRequested, its data key, HwcNoticeDelivered x2, DisclosureAudited x2
BATCH = 500
# What the fair floor still does not do that Handoff does (the report lists it under the floor's figures).
FAIR_FLOOR_LEAVES_OUT = (
    "one process and no hops: events are not read back from the broker by the next service",
    "nothing sealed or opened (AES-GCM) and no data key looked up",
    "no tables: no JSON state values, no changelog reads at recovery",
    f"up to {BATCH} records a poll, and one commit a batch",
    "the CAD event stands in for every event it encodes",
)


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"n": len(ordered), "p50_ms": at(0.50) * 1e3, "p95_ms": at(0.95) * 1e3, "p99_ms": at(0.99) * 1e3,
            "max_ms": ordered[-1] * 1e3, "mean_ms": statistics.fmean(ordered) * 1e3}


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def create_topics(settings: Settings, *names: str) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, settings.topic_partitions, 1) for t in names])
        while True:  # a consumer assigned a partition with no leader yet can miss it for minutes
            described = await admin.describe_topics(list(names))
            if all(p["leader"] >= 0 for t in described for p in t["partitions"]):
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    await asyncio.sleep(1.0)


async def fair_floor(config: dict[str, Any]) -> dict[str, Any]:
    """Handle every CAD record already on the two input topics as Handoff would, minus Handoff."""
    settings = Settings(**config["settings"])
    codec = AvroCodec(registry_from_url(settings.schema_registry_url))
    out = f"{settings.topic_prefix}fair-floor-{uuid.uuid4().hex[:6]}.out"
    await create_topics(settings, out)
    inputs = config["inputs"]  # its own copies of the CAD topics: Handoff's workers must not see these items
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=f"fair-floor-{out}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    http = delivery_http_client(settings)
    channels = build_channels(settings, http)
    slots = asyncio.Semaphore(settings.delivery_concurrency)
    await consumer.start()
    await producer.start()
    consumer.assign([TopicPartition(t, p) for t in inputs for p in range(settings.topic_partitions)])
    expected, done, started = config["items"], 0, None

    async def deliver(channel: str, attempt_id: str, address: str) -> None:
        async with slots:
            await channels[channel].send(Outgoing(attempt_id, address, "Handoff", "Page: bus shelter, call back",
                                                  "Page: bus shelter, call back", {"type": "bench"}))

    async def handle(record: Any) -> list[Awaitable[Any]]:
        event = await codec.decode(record.value)
        is_referral = isinstance(event, CadReferralMade)
        for _ in range((DECODES_PER_REFERRAL if is_referral else DECODES_PER_ENCOUNTER) - 1):
            await codec.decode(record.value)
        # The CAD event stands in for each event Handoff writes (of a like size): encoded as often, then written.
        encoded = [await codec.encode(event) for _ in range(ENCODES_PER_REFERRAL if is_referral else ENCODES_PER_ENCOUNTER)]
        writes = [await producer.send(out, encoded[i % len(encoded)], key=record.key)
                  for i in range(WRITES_PER_REFERRAL if is_referral else WRITES_PER_ENCOUNTER)]
        key = record.key.decode()
        if is_referral:
            sends = [deliver("sms", f"ff-{key}/sms", config["phone"]), deliver("email", f"ff-{key}/email", config["email"])]
        else:
            assert isinstance(event, CadChildEncountered)
            sends = [deliver("webhook", f"ff-{key}/webhook", config["webhook_url"])]
        return [*writes, *sends]

    own = {"fair floor": os.getpid()}
    before: Cost | None = None
    try:
        while done < expected:
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            records = [r for batch in batches.values() for r in batch]
            if not records:
                continue
            if started is None:
                started, before = time.monotonic(), Cost.now(own)
            work = [w for r in records for w in await handle(r)]
            await asyncio.gather(*work)  # every write and delivery of the batch, then its offsets
            await consumer.commit()
            done += len(records)
        elapsed = time.monotonic() - (started or time.monotonic())
        spent = Cost.now(own).per_item(before, done) if before is not None else None
    finally:
        await consumer.stop()
        await producer.stop()
        await http.aclose()
        for channel in channels.values():
            if hasattr(channel, "close"):
                await channel.close()
    # Machine CPU per item as the pipeline's is taken: the broker and the receivers included.
    return {"items": done, "seconds": elapsed, "items_per_second": done / elapsed if elapsed else None,
            **({"machine_cpu_ms_per_item": spent["machine_cpu_ms_per_item"],
                "own_cpu_ms_per_item": spent["cpu_ms_per_item_by_process"]["fair floor"]} if spent else {})}


class TwoHops:
    """Two fresh topics with a bare aiokafka relay between them: a referral's two hops without Handoff.
    Write to ``hop1`` with ``producer``; read what arrives on ``hop2`` from ``sink``."""

    def __init__(self, settings: Settings, name: str, relay_waits: bool) -> None:
        run = uuid.uuid4().hex[:8]
        self.settings, self.relay_waits = settings, relay_waits
        self.hop1, self.hop2 = f"{settings.topic_prefix}{name}-{run}.hop1", f"{settings.topic_prefix}{name}-{run}.hop2"
        servers = client_options(settings)  # the broker, and how to sign in to it
        self.producer = AIOKafkaProducer(**servers, acks="all", linger_ms=0)
        self.relay_out = AIOKafkaProducer(**servers, acks="all", linger_ms=0)
        # Assigned partitions rather than groups: no join, no metadata wait; a floor is a lower bound.
        self.relay_in = AIOKafkaConsumer(**servers, auto_offset_reset="earliest", enable_auto_commit=False)
        self.sink = AIOKafkaConsumer(**servers, auto_offset_reset="earliest", enable_auto_commit=False)
        self._relay: asyncio.Task | None = None

    @property
    def clients(self) -> tuple[Any, ...]:
        return self.producer, self.relay_out, self.relay_in, self.sink

    async def __aenter__(self) -> TwoHops:
        await create_topics(self.settings, self.hop1, self.hop2)
        for client in self.clients:
            await client.start()
        partitions = range(self.settings.topic_partitions)
        self.relay_in.assign([TopicPartition(self.hop1, p) for p in partitions])
        self.sink.assign([TopicPartition(self.hop2, p) for p in partitions])
        self._relay = asyncio.create_task(self._run_relay())
        return self

    async def _run_relay(self) -> None:
        async for record in self.relay_in:
            sent = await self.relay_out.send(self.hop2, record.value, key=record.key, headers=list(record.headers))
            if self.relay_waits:
                await sent

    async def __aexit__(self, *_exc: Any) -> None:
        if self._relay is not None:
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
        for client in self.clients:
            await client.stop()


async def bare_floor(settings: Settings, payload: bytes, n: int, rate: float | None) -> dict[str, Any]:
    """``n`` copies of ``payload`` through two hops, at ``rate`` per second or all at once; latency and throughput."""
    latencies: list[float] = []
    done = asyncio.Event()
    last_at = [0.0]
    async with TwoHops(settings, "floor", relay_waits=False) as hops:
        async def drain() -> None:
            async for record in hops.sink:
                now = time.monotonic()
                latencies.append(now - float(dict(record.headers)["t0"].decode()))
                last_at[0] = now
                if len(latencies) >= n:
                    done.set()
                    return

        draining = asyncio.create_task(drain())
        try:
            first = time.monotonic()
            for i in range(n):
                key, headers = f"floor-{i}".encode(), [("t0", str(time.monotonic()).encode())]
                if rate:
                    await hops.producer.send_and_wait(hops.hop1, payload, key=key, headers=headers)
                    await asyncio.sleep(max(0.0, first + (i + 1) / rate - time.monotonic()))
                else:
                    await hops.producer.send(hops.hop1, payload, key=key, headers=headers)
            await hops.producer.flush()
            await asyncio.wait_for(done.wait(), timeout=120 + n / 50)
            elapsed = last_at[0] - first
        finally:
            draining.cancel()
            await asyncio.gather(draining, return_exceptions=True)
    return {**percentiles(latencies), "messages_per_second": n / elapsed if elapsed > 0 else None}


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat): every process, the broker
    included, which is what an item costs."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal; guest time is inside user
    return busy / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user and system) process ``pid`` has used so far (/proc), or None once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@dataclass(frozen=True)
class Cost:
    """Where the machine's CPU stood at one moment: the whole machine's busy seconds and some processes'."""

    machine_busy_seconds: float
    process_seconds: dict[str, float]

    @classmethod
    def now(cls, pids: dict[str, int]) -> Cost:
        return cls(machine_busy_seconds(), {name: used for name, pid in pids.items()
                                            if (used := process_cpu_seconds(pid)) is not None})

    def per_item(self, before: Cost, items: int) -> dict[str, Any]:
        """What each of ``items`` cost since ``before``: the whole machine's busy CPU (it holds still on a noisy
        machine when rates do not), and each process's."""
        return {"machine_cpu_ms_per_item": 1000 * (self.machine_busy_seconds - before.machine_busy_seconds) / items,
                "cpu_ms_per_item_by_process": {
                    name: 1000 * (used - before.process_seconds[name]) / items
                    for name, used in self.process_seconds.items() if name in before.process_seconds}}


async def receivers_ceiling(settings: Settings, n: int, phone: str, email: str, webhook_url: str) -> dict[str, Any]:
    """``n`` sends per channel through the channel classes, ``delivery_concurrency`` at a time, each channel alone;
    then ``n`` pages, each an SMS and an email sent together under the same limit, as the outbox sends them (a
    page's two sends overlap: adding their times as if one followed the other halved the ceiling)."""
    http = delivery_http_client(settings)
    channels = build_channels(settings, http)
    slots = asyncio.Semaphore(settings.delivery_concurrency)
    run = uuid.uuid4().hex[:6]
    rates: dict[str, float] = {}

    async def send(name: str, address: str, key: str) -> None:
        async with slots:
            await channels[name].send(Outgoing(f"ceil-{run}-{key}", address, "Handoff", "ceiling", "ceiling",
                                               {"type": "bench"}))

    try:
        for name, address in (("sms", phone), ("email", email), ("webhook", webhook_url)):
            started = time.monotonic()
            await asyncio.gather(*(send(name, address, f"{name}-{i}") for i in range(n)))
            rates[name] = n / (time.monotonic() - started)
        started = time.monotonic()
        await asyncio.gather(*(send(name, address, f"page-{i}-{name}") for i in range(n)
                               for name, address in (("sms", phone), ("email", email))))
        pages = n / (time.monotonic() - started)
    finally:
        await http.aclose()
        for channel in channels.values():
            if hasattr(channel, "close"):
                await channel.close()
    return {"sends_per_channel": n, "per_second": rates, "pages_per_second": pages,
            "notices_per_second": rates["webhook"]}


async def http_latency_floor(settings: Settings, n: int, rate: float, phone: str,
                             arrivals: Callable[[], dict[str, float]]) -> dict[str, Any]:
    """HTTP in, two bare hops, HTTP out: ``n`` requests at ``rate`` per second, each timed from its
    POST to its SMS at the receiver (``arrivals()``: attempt id -> arrival time)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from deploy.local_stack import free_port

    http = delivery_http_client(settings)
    sms = build_channels(settings, http)["sms"]
    hops = TwoHops(settings, "hfloor", relay_waits=True)

    async def intake(request: Request) -> JSONResponse:
        await hops.producer.send_and_wait(hops.hop1, await request.body(), key=request.headers["x-id"].encode())
        return JSONResponse({"accepted": True}, status_code=202)

    async def page() -> None:
        async for record in hops.sink:
            await sms.send(Outgoing(f"hfloor-{record.key.decode()}", phone, "", "page", "page", {}))

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/in", intake, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_level="warning", access_log=False))
    sent: dict[str, float] = {}
    run = uuid.uuid4().hex[:6]
    async with hops:
        tasks = [asyncio.create_task(server.serve()), asyncio.create_task(page())]
        try:
            await wait_for(lambda: server.started, 30, "the HTTP floor's server to start")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                begin = time.monotonic()
                for i in range(n):
                    key = f"{run}-{i}"
                    sent[f"hfloor-{key}"] = time.monotonic()
                    (await client.post("/in", content=b"{}", headers={"x-id": key})).raise_for_status()
                    await asyncio.sleep(max(0.0, begin + (i + 1) / rate - time.monotonic()))
            await wait_for(lambda: sent.keys() <= arrivals().keys(), 60 + n, "the HTTP latency floor's pages")
        finally:
            server.should_exit = True
            tasks[1].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await http.aclose()
    at = arrivals()
    return percentiles([at[key] - started for key, started in sent.items()])


async def receivers_ceiling_of(config: dict[str, Any]) -> dict[str, Any]:
    return await receivers_ceiling(Settings(**config["settings"]), config["sends"], config["phone"], config["email"],
                                   config["webhook_url"])


def main(argv: list[str]) -> int:
    """``python -m bench.floors fair|ceiling CONFIG_JSON``: that floor's figures as JSON on stdout."""
    kinds = {"fair": fair_floor, "ceiling": receivers_ceiling_of}
    if len(argv) != 2 or argv[0] not in kinds:
        print(main.__doc__, file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(kinds[argv[0]](json.loads(argv[1])))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
