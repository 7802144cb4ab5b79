"""Key-value state behind the service layer: a Faust table in workers, a dict in unit tests.

Faust tables are dict-like and backed by a changelog topic, so the service code is the same
either way; values are JSON-able dicts so that the changelog is readable.
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


class TypedRecords(MutableMapping[str, T]):
    """A table of typed records (a dataclass or a pydantic model each), kept as their JSON form
    (``JsonForm``) so the changelog stays readable: services read and write records, never dicts."""

    def __init__(self, table: KeyValueStore, record_type: Any) -> None:
        self.table = table
        self.form: JsonForm[T] = JsonForm(record_type)

    def __getitem__(self, key: str) -> T:
        return self.form.load(self.table[key])

    def get(self, key: str, default: Any = None) -> Any:
        data = self.table.get(key)
        return default if data is None else self.form.load(data)

    def __setitem__(self, key: str, value: T) -> None:
        self.table[key] = self.form.dump(value)

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __contains__(self, key: object) -> bool:
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def __getattr__(self, name: str) -> Any:  # on_recover, written, name: the underlying table's
        return getattr(self.__dict__["table"], name)


class CompactValues(MutableMapping[str, Any]):
    """A table whose values are held as compact JSON bytes, decoded when read.

    A worker keeps every notice, page and delivery record of its partitions in memory. As a dict of
    dicts a notice took about 1.5 KB; as the bytes of its JSON a third of that, and the changelog
    carries the same bytes, so its records read exactly as before (``raw`` must write values as
    they are). Reads decode (a few microseconds a record): the services read a record a handful of
    times in its life. Anything else asked of it (``on_recover``, ``written``, ``name``) is the
    underlying table's."""

    def __init__(self, raw: MutableMapping[str, Any]) -> None:
        self.raw = raw

    def __getitem__(self, key: str) -> Any:
        return json.loads(self.raw[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.raw[key] = json.dumps(value, separators=(",", ":")).encode()

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
