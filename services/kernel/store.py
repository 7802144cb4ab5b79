"""Key-value state behind the service layer: a Faust table in workers, a dict in unit tests.

Faust tables are dict-like and backed by a changelog topic, so the service code is the same
either way. Services keep typed records (``TypedRecords``, ``Owned``); the table holds each as its
JSON form, so that the changelog is readable and a record written by older code still reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

KeyValueStore = MutableMapping[str, Any]
T = TypeVar("T")


class JsonForm(Generic[T]):
    """A dataclass as the JSON-able dict a table stores, and back. pydantic does both directions, so
    there is no hand-kept pair of functions to drift apart; unknown keys in stored data are ignored,
    and fields added later take their defaults."""

    def __init__(self, cls: type[T]) -> None:
        self._adapter = TypeAdapter(cls)

    def dump(self, value: T) -> dict[str, Any]:
        return self._adapter.dump_python(value, mode="json")

    def load(self, data: dict[str, Any]) -> T:
        return self._adapter.validate_python(data)


@dataclass(frozen=True)
class Owned(Generic[T]):
    """A record a process owns: its typed state, and the correlation id of the event that first wrote it,
    so that the events its timer makes later carry that id too. Stored as ``{"state": ..., "correlation_id": ...}``."""

    state: T
    correlation_id: str | None = None


class EncodedValues(MutableMapping[str, Any]):
    """A view of a table whose values it encodes on the way in and decodes on the way out; anything else asked
    of it (``on_recover``, ``written``, ``name``) is the underlying table's."""

    def __init__(self, raw: MutableMapping[str, Any]) -> None:
        self.raw = raw

    def encode(self, value: Any) -> Any:
        raise NotImplementedError

    def decode(self, stored: Any) -> Any:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.decode(self.raw[key])

    def get(self, key: str, default: Any = None) -> Any:
        stored = self.raw.get(key)
        return default if stored is None else self.decode(stored)

    def __setitem__(self, key: str, value: Any) -> None:
        self.raw[key] = self.encode(value)

    def __delitem__(self, key: str) -> None:
        del self.raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["raw"], name)


class TypedRecords(EncodedValues):
    """A table of typed records (a dataclass or a pydantic model each), kept as their JSON form
    (``JsonForm``) so the changelog stays readable: services read and write records, never dicts."""

    def __init__(self, table: KeyValueStore, record_type: Any) -> None:
        super().__init__(table)
        self.form: JsonForm[Any] = JsonForm(record_type)

    def encode(self, value: Any) -> Any:
        return self.form.dump(value)

    def decode(self, stored: Any) -> Any:
        return self.form.load(stored)


class CompactValues(EncodedValues):
    """A table whose values are held as compact JSON bytes, decoded when read.

    A worker keeps every notice, page and delivery record of its partitions in memory. As a dict of
    dicts a notice took about 1.5 KB; as the bytes of its JSON a third of that, and the changelog
    carries the same bytes, so its records read exactly as before (``raw`` must write values as
    they are). Reads decode (a few microseconds a record): the services read a record a handful of
    times in its life."""

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def decode(self, stored: Any) -> Any:
        return json.loads(stored)
