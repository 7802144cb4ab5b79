"""Avro on the wire in the Confluent format, with a Confluent-API schema registry.

Wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body. Schemas are registered
under their record's full name (the registry's RecordNameStrategy), because one topic carries
several event types of one subject in order (a page's requested/sent/acknowledged events).

Registries: ``HttpSchemaRegistry`` speaks the Confluent REST API (Confluent Schema Registry, or
Apicurio Registry under ``/apis/ccompat/v7``); ``InMemorySchemaRegistry`` serves unit tests and
``memory://`` configurations.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Awaitable
from typing import Any, Protocol

import fastavro
import httpx
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from services.kernel.errors import InvalidRecord, describe_validation_error
from services.kernel.events import ERASED_CONTEXT, all_events
from services.messaging.contract import avro_schema_of, parsed_schema
from services.messaging.sealing import sealed_key_ids, without_personal_values
from services.platform.crypto import SealBroken

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
MAX_RECORD_BYTES = 1_000_000  # the broker's default max.message.bytes; settings.max_record_bytes is usually lower


class SchemaRegistry(Protocol):
    async def register(self, subject: str, schema: str) -> int: ...

    async def schema_by_id(self, schema_id: int) -> str: ...

    async def close(self) -> None: ...


class SchemaNotFound(LookupError):
    pass


class InMemorySchemaRegistry:
    """A registry in process memory: ids are assigned per distinct schema text."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, str] = {}
        self._subjects: dict[str, list[int]] = {}

    async def register(self, subject: str, schema: str) -> int:
        canonical = json.dumps(json.loads(schema), sort_keys=True)
        schema_id = self._ids.setdefault(canonical, len(self._ids) + 1)
        self._schemas[schema_id] = schema
        versions = self._subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id

    async def schema_by_id(self, schema_id: int) -> str:
        try:
            return self._schemas[schema_id]
        except KeyError:
            raise SchemaNotFound(schema_id) from None

    async def close(self) -> None:
        return None


class HttpSchemaRegistry:
    """Client of the Confluent Schema Registry REST API (also served by Apicurio's ccompat API)."""

    CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

    def __init__(self, base_url: str, timeout: float = 10.0, auth: tuple[str, str] | None = None) -> None:
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, auth=auth,
                                         headers={"Content-Type": self.CONTENT_TYPE, "Accept": self.CONTENT_TYPE})

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        # The registry may still be starting, or restarting: retry connection-level failures briefly.
        async for attempt in AsyncRetrying(retry=retry_if_exception_type(httpx.TransportError),
                                           wait=wait_exponential(multiplier=0.2, max=3), stop=stop_after_attempt(6),
                                           reraise=True):
            with attempt:
                return await self._client.request(method, url, **kwargs)
        raise AssertionError("unreachable")

    async def register(self, subject: str, schema: str) -> int:
        resp = await self._request("POST", f"/subjects/{subject}/versions", json={"schema": schema, "schemaType": "AVRO"})
        resp.raise_for_status()
        return int(resp.json()["id"])

    async def schema_by_id(self, schema_id: int) -> str:
        resp = await self._request("GET", f"/schemas/ids/{schema_id}")
        if resp.status_code == 404:
            raise SchemaNotFound(schema_id)
        resp.raise_for_status()
        return resp.json()["schema"]

    async def set_compatibility(self, level: str = "BACKWARD") -> None:
        resp = await self._request("PUT", "/config", json={"compatibility": level})
        resp.raise_for_status()

    async def close(self) -> None:
        await self._client.aclose()


def registry_from_url(url: str) -> SchemaRegistry:
    if url.startswith("memory://"):
        return InMemorySchemaRegistry()
    return HttpSchemaRegistry(url)


def to_avro_datum(event: Any) -> dict[str, Any]:
    """pydantic event -> the dict fastavro writes (enums as their symbols)."""
    return event.model_dump(mode="python")


def _holds_bytes(datum: dict[str, Any], cls: type) -> bool:
    try:
        return bool(sealed_key_ids(datum, cls))
    except SealBroken:  # bytes where a personal value is, but not even a sealed one
        return True


class DatumSealer(Protocol):
    async def seal(self, model: type, datum: dict[str, Any], topic: str, subject: str) -> None: ...

    async def open(self, model: type, datum: dict[str, Any], topic: str, subject: str, erased_ok: bool) -> bool: ...

    def landing(self, subject: str) -> Awaitable[Any] | None: ...


class AvroCodec:
    """Encodes events to Confluent-framed Avro and decodes them back, caching schema ids."""

    def __init__(self, registry: SchemaRegistry, events: tuple[type, ...] | None = None,
                 max_record_bytes: int = MAX_RECORD_BYTES, sealer: DatumSealer | None = None) -> None:
        self.registry = registry
        # Seals personal values on the way out and opens them on the way in (``sealing.Sealer``). Without one, a
        # codec writes plain text (as a CAD system does) and refuses sealed values.
        self.sealer = sealer
        self.max_record_bytes = max_record_bytes
        self._given = events
        self._events = self._known()
        self._ids: dict[type, int] = {}
        self._writers: dict[int, tuple[str, dict[str, Any]]] = {}

    def _known(self) -> dict[str, type]:
        return {cls.avro_name(): cls for cls in (self._given or all_events())}

    async def register_all(self) -> dict[str, int]:
        """Register every known event schema (at start-up, so the first message pays nothing)."""
        return {cls.avro_name(): await self.schema_id(cls) for cls in self._events.values()}

    async def schema_id(self, cls: type) -> int:
        schema_id = self._ids.get(cls)
        if schema_id is None:
            schema_id = await self.registry.register(cls.avro_name(), json.dumps(avro_schema_of(cls)))
            self._ids[cls] = schema_id
        return schema_id

    async def encode(self, event: Any, topic: str | None = None, subject: str | None = None) -> bytes:
        """The record's value. Given the topic it goes to and its key (its subject), its personal values are
        sealed (when the codec has a sealer)."""
        schema_id = await self.schema_id(type(event))
        datum = to_avro_datum(event)
        if self.sealer is not None and topic is not None and subject is not None:
            await self.sealer.seal(type(event), datum, topic, subject)
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC_BYTE, schema_id))
        fastavro.schemaless_writer(buf, parsed_schema(type(event)), datum)
        return buf.getvalue()

    def landing(self, subject: str) -> Awaitable[Any] | None:
        """What a record about ``subject`` must be sent after: the write of the key it was sealed under, while that is
        still under way (``SubjectKeys.landing``)."""
        return self.sealer.landing(subject) if self.sealer is not None else None

    async def _writer_schema(self, schema_id: int) -> tuple[str, dict[str, Any]]:
        cached = self._writers.get(schema_id)
        if cached is None:
            try:
                raw = json.loads(await self.registry.schema_by_id(schema_id))
            except SchemaNotFound:
                raise InvalidRecord("decode", f"schema id {schema_id} is not in the registry") from None
            name = f"{raw['namespace']}.{raw['name']}" if "namespace" in raw else raw["name"]
            cached = (name, fastavro.parse_schema(raw))
            self._writers[schema_id] = cached
        return cached

    async def decode(self, data: bytes | None, expected: tuple[type, ...] | None = None, topic: str | None = None,
                     subject: str | None = None, erased_ok: bool = False, personal: bool | frozenset[str] = True) -> Any:
        """Bytes -> event. Raises ``InvalidRecord`` with a reason when the bytes are not a valid event. Given the
        topic the record was on and its key, sealed values are opened; with ``erased_ok`` (a reader that shows
        what it has, not a worker that acts on it) those of an erased subject read as ``None``. With ``personal``
        False (a reader that needs none: a caseload, a feed's last event) no personal value is opened or kept:
        each reads as ``None``, as an erased one does. Given the dotted paths of some personal leaves (a read model
        that needs a person's name and date of birth, not the rest of the record), only those are opened."""
        if not data:
            raise InvalidRecord("decode", "empty record value")
        if len(data) > self.max_record_bytes:
            raise InvalidRecord("decode", f"record of {len(data)} bytes exceeds the limit of {self.max_record_bytes}")
        if len(data) < _HEADER.size or data[0] != MAGIC_BYTE:
            raise InvalidRecord("decode", "not Confluent-framed Avro (magic byte 0 and a 4-byte schema id expected)")
        _, schema_id = _HEADER.unpack_from(data)
        writer_name, writer = await self._writer_schema(schema_id)
        cls = self._events.get(writer_name)
        if cls is None and self._given is None:  # a service's event registered since: look again
            self._events = self._known()
            cls = self._events.get(writer_name)
        if cls is None or (expected and cls not in expected):
            raise InvalidRecord("decode", f"event type {writer_name} is not expected on this topic")
        try:
            datum = fastavro.schemaless_reader(io.BytesIO(data[_HEADER.size:]), writer, parsed_schema(cls))
        except Exception as exc:  # fastavro raises many types for truncated or corrupt bodies
            raise InvalidRecord("decode", f"Avro body does not match schema id {schema_id}: {type(exc).__name__}") from None
        erased = personal is not True
        if erased:  # a leaf this reader does not open reads as an erased one
            without_personal_values(datum, cls, keep=personal or frozenset())
        if self.sealer is not None and topic is not None:
            erased = await self.sealer.open(cls, datum, topic, subject or "", erased_ok) or erased
        elif _holds_bytes(datum, cls):  # never let a sealed value pass as text (pydantic would read bytes as str)
            raise InvalidRecord("sealing", "personal values sealed, and this reader holds no keys")
        try:
            return cls.model_validate(datum, context=ERASED_CONTEXT if erased else None)
        except ValidationError as exc:
            raise InvalidRecord("validation", describe_validation_error(exc)) from None
