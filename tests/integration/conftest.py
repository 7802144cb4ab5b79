"""A running Handoff on the real broker: HTTP app, workers on a fake clock, and a dev inbox with
a real SMTP server, Twilio-shaped SMS API and webhook receiver on free ports."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import pytest
from pydantic import SecretStr

from deploy.dev_inbox import DevInbox
from deploy.local_stack import free_port
from deploy.local_system import LOCAL_INBOX
from services import runtime
from services.kernel.clock import FakeClock
from services.kernel.reference import (
    ReferenceData,
)
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher, client_options, ensure_topics, topic_partition_counts
from services.messaging.sealing import Sealer
from services.messaging.streams import prepare_and_start
from services.messaging.subject_keys import SubjectKeys
from services.platform.crypto import key_provider
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT, Settings
from services.runtime import TOPICS
from tests.conftest import Broker

WEBHOOK_SECRET = "integration-webhook-secret"


async def raw_values(settings: Settings, spec) -> list[bytes | None]:
    """Every value on ``spec``'s partitions as the broker holds it (what its disks and backups hold), undecoded."""
    return [record.value for record in await raw_records(settings, spec.qualified(settings.topic_prefix))]


async def raw_records(settings: Settings, name: str) -> list:
    """Every record of the topic ``name`` (partition, offset, key, value, ...), undecoded, partition by partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    partitions = [TopicPartition(name, p) for p in range((await topic_partition_counts(settings, [name]))[name])]
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list = []
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                records += (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
        return records
    finally:
        await consumer.stop()


def reference_for(inbox_url: str) -> ReferenceData:
    """The sample reference data, with its receiver URLs pointed at this test's inbox."""
    data = load_reference_data(REPO_ROOT / "config" / "local")

    def moved(model):
        return model.model_copy(update={"webhook_url": model.webhook_url.replace(LOCAL_INBOX, inbox_url)}) \
            if getattr(model, "webhook_url", None) else model

    schools = {k: s.model_copy(update={"primary_contact": moved(s.primary_contact),
                                       "backup_contact": moved(s.backup_contact) if s.backup_contact else None})
               for k, s in data.schools.items()}
    organizations = {k: o.model_copy(update={"subscription_url": o.subscription_url.replace(LOCAL_INBOX, inbox_url)})
                     if o.subscription_url else o for k, o in data.organizations.items()}
    return data.model_copy(update={"case_managers": {k: moved(v) for k, v in data.case_managers.items()},
                                   "schools": schools, "organizations": organizations})


@dataclass
class RunningSystem:
    settings: Settings
    reference: ReferenceData
    clock: FakeClock
    inbox: DevInbox
    http: httpx.AsyncClient
    apps: dict = field(default_factory=dict)
    app: object = None  # the HTTP app, for tests that serve it on a real port (the browser tests)
    expect_dead_letters: bool = False  # a test that feeds bad records on purpose sets this
    started: list = field(default_factory=list)  # what the fixture stops after the test
    broker: Broker = None  # how each process signs in (``settings`` are the administrator's)

    def settings_of(self, name: str) -> Settings:
        """The settings a service (or the API) runs with: its own principal on a broker with sign-in."""
        return self.broker.as_principal(self.settings, name)

    def messages(self, kind: str):
        return self.inbox.inbox.of(kind)

    async def restart(self, name: str):
        """Stop a worker and start a new one in its place: its tables recover from their changelogs,
        as after a deploy or a crash (the state on disk is the broker's, not the process's)."""
        await self.apps[name].stop()
        settings = self.settings_of(name)
        worker = runtime.build_worker(name, settings, self.reference, self.clock)
        await prepare_and_start(worker, settings, TOPICS)
        self.started.append(worker.stop)
        self.apps[name] = worker
        return worker


@pytest.fixture
async def system_factory(kafka_settings, broker_access) -> AsyncIterator:
    """``await start(*workers, now=...)`` -> a RunningSystem; everything it started is stopped after the test."""
    started: list = []
    built: list[RunningSystem] = []

    async def start(*workers: str, now: datetime, reference_changes=None, **overrides) -> RunningSystem:
        inbox = DevInbox(free_port(), free_port(), WEBHOOK_SECRET).start()
        started.append(inbox.stop)
        settings = kafka_settings.model_copy(update={
            "sms_api_base_url": inbox.base_url, "smtp_port": inbox.smtp_port, "link_signing_key": SecretStr("integration-key"),
            "webhook_signing_secret": SecretStr(WEBHOOK_SECRET), "public_base_url": "http://handoff.test",
            "escalation_tick_seconds": 0.1, "delivery_backoff_seconds": 0.05, **overrides})
        reference = reference_for(inbox.base_url)  # changed by a dict of fields, or a function of it
        reference = reference_changes(reference) if callable(reference_changes) else \
            reference.model_copy(update=reference_changes or {})
        clock = FakeClock(now)
        await ensure_topics(settings, TOPICS)  # as the administrator, who then grants each service its topics
        await broker_access.grant(settings)
        api = broker_access.as_principal(settings, runtime.API)
        keys = SubjectKeys(api, key_provider(api))  # the intakes seal what they write, as in production
        await keys.start()
        started.append(keys.stop)
        publisher = KafkaPublisher(api, AvroCodec(registry_from_url(api.schema_registry_url),
                                                  sealer=Sealer(keys, api.topic_prefix)))
        await publisher.start()
        started.append(publisher.stop)
        app = runtime.build_http_app(api, reference, publisher=publisher, clock=clock)
        following = [app.state.keys, *app.state.followers]  # ASGITransport runs no lifespan: start them here
        await app.state.keys.start()
        await asyncio.gather(*(follower.start() for follower in app.state.followers))  # as the lifespan does
        started.extend(follower.stop for follower in following)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://handoff.test")
        started.append(http.aclose)
        system = RunningSystem(settings, reference, clock, inbox, http, app=app, started=started, broker=broker_access)

        async def start_worker(name: str, worker) -> None:
            await prepare_and_start(worker, system.settings_of(name), TOPICS)
            started.append(worker.stop)

        for name in workers:
            system.apps[name] = runtime.build_worker(name, system.settings_of(name), reference, clock)
        # At once, as a deployment's processes start (and ``handoff run all``'s workers): mostly round trips.
        for failed in await asyncio.gather(*(start_worker(name, worker) for name, worker in system.apps.items()),
                                           return_exceptions=True):
            if isinstance(failed, BaseException):
                raise failed
        built.append(system)
        return system

    yield start
    systems_dead_letters = {name: app.processor.dead_letters.count for system in built if not system.expect_dead_letters
                            for name, app in system.apps.items()}
    # Everything asynchronous at once: closing a TLS connection waits for the broker's reply to a fetch in flight
    # (up to Faust's 1.5 s), and one after another that adds up to seconds a test. Then the rest (the inbox).
    await asyncio.gather(*(stop() for stop in reversed(started) if inspect.iscoroutinefunction(stop)))
    for stop in reversed(started):
        if not inspect.iscoroutinefunction(stop):
            stop()
    # A flow test feeds only good records: anything dead-lettered is a bug the test would otherwise hide.
    assert not any(systems_dead_letters.values()), f"records were dead-lettered: {systems_dead_letters}"
