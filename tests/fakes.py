"""Test doubles for the outside world: channels that record instead of sending, a producer that acknowledges on cue."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

from services.delivery.channels import DeliveryFailed, Outgoing
from services.messaging.avro import AvroCodec, InMemorySchemaRegistry
from services.messaging.streams import FaustPublisher


class RecordingChannel:
    """Records every message; fails the first ``fail_times`` sends (or always, with ``fail_times=-1``)."""

    def __init__(self, name: str, fail_times: int = 0, permanent: bool = False) -> None:
        self.name = name
        self.fail_times = fail_times
        self.permanent = permanent
        self.sent: list[Outgoing] = []
        self.tries = 0

    async def send(self, message: Outgoing) -> None:
        self.tries += 1
        if self.fail_times == -1 or self.tries <= self.fail_times:
            raise DeliveryFailed(f"{self.name} down", permanent=self.permanent)
        self.sent.append(message)


def recording_channels(**failures: int) -> dict[str, RecordingChannel]:
    return {name: RecordingChannel(name, failures.get(name, 0)) for name in ("sms", "email", "webhook", "push", "voice")}


class SettledCalls:
    """Wraps a service so that each awaited call returns once the deliveries it asked for have run
    and their final attempt events have been handed back to ``handle``, as the worker's stream would
    hand them back. Attribute reads and writes go to the service."""

    def __init__(self, service, delivery, publisher, attempt_event: type, handle) -> None:
        object.__setattr__(self, "_service", service)
        object.__setattr__(self, "_delivery", delivery)
        object.__setattr__(self, "_publisher", publisher)
        object.__setattr__(self, "_attempt_event", attempt_event)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_fed", set())

    def __getattr__(self, name: str):
        attr = getattr(self._service, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def settled(*args, **kwargs):
            result = await attr(*args, **kwargs)
            await self.settle()
            return result

        return settled

    def __setattr__(self, name: str, value) -> None:
        setattr(self._service, name, value)

    async def settle(self) -> None:
        while True:
            await self._delivery.drain()
            unfed = [r for r in self._publisher.records
                     if isinstance(r.event, self._attempt_event) and r.event.final and id(r) not in self._fed]
            if not unfed and not self._delivery.in_flight:
                return
            for record in unfed:
                self._fed.add(id(record))
                await self._handle(record.event)


class HeldProducer:
    """A producer whose sends complete only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.futures: list = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((topic, key))
        future = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


def faust_publisher(producer: HeldProducer):
    return FaustPublisher(SimpleNamespace(producer=producer), AvroCodec(InMemorySchemaRegistry()))
