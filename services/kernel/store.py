"""Key-value state behind the service layer: a Faust table in workers, a dict in unit tests.

Faust tables are dict-like and backed by a changelog topic, so the service code is the same
either way; values are JSON-able dicts so that the changelog is readable.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

KeyValueStore = MutableMapping[str, Any]
T = TypeVar("T")


def put_if_changed(store: KeyValueStore, key: str, value: dict[str, Any]) -> bool:
    """Write ``value`` unless ``key`` already holds it: every write to a table is a changelog record,
    and most events (a second channel's delivery, an escalation) change nothing a table keeps."""
    if store.get(key) == value:
        return False
    store[key] = value
    return True


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
