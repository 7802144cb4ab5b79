"""The tables' values: typed records, compact in memory, the same JSON on the changelog, written only on change."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from services.kernel.store import CompactValues, Owned, TypedRecords
from services.messaging.due import DueTable

NOTICE = {"state": {"notice_id": "hwc-1", "stages_done": [], "acknowledged_at": None, "merged_encounters": 1},
          "request": {"child": {"first_name": "Ana", "last_name": "Ruiz", "date_of_birth": "2016-09-02"}},
          "correlation_id": "c-1"}


def deep_size(value) -> int:
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(deep_size(k) + deep_size(v) for k, v in value.items())
    if isinstance(value, list):
        return sys.getsizeof(value) + sum(deep_size(v) for v in value)
    return sys.getsizeof(value)


class Table(dict):
    """Stands in for a Faust table: what is not the mapping is the table's own."""

    name = "notices"

    def on_recover(self, callback):
        return callback


def test_a_value_reads_back_as_written_and_is_held_as_its_json_bytes() -> None:
    raw = Table()
    values = CompactValues(raw)
    values["hwc-1"] = NOTICE
    assert values["hwc-1"] == NOTICE and values.get("missing") is None
    assert isinstance(raw["hwc-1"], bytes) and json.loads(raw["hwc-1"]) == NOTICE
    assert sys.getsizeof(raw["hwc-1"]) * 2 < deep_size(NOTICE)  # the point of it
    assert list(values) == ["hwc-1"] and len(values) == 1 and "hwc-1" in values
    del values["hwc-1"]
    assert "hwc-1" not in values and not raw


def test_values_written_by_faust_s_json_serializer_before_still_read() -> None:
    values = CompactValues(Table({"hwc-1": json.dumps(NOTICE).encode()}))  # spaces after separators
    assert values["hwc-1"] == NOTICE


def test_the_rest_is_the_underlying_table_s() -> None:
    values = CompactValues(Table())
    assert values.name == "notices" and values.on_recover(len) is len


@dataclass(frozen=True)
class Stage:
    notice_id: str
    due_at: datetime
    stages_done: tuple[str, ...] = ()


DUE = datetime(2026, 12, 7, 8, tzinfo=UTC)


def test_an_unchanged_record_is_not_written_again() -> None:
    writes = []

    class Counting(Table):
        def __setitem__(self, key, value):
            writes.append(key)
            super().__setitem__(key, value)

    records = DueTable(TypedRecords(CompactValues(Counting()), Owned[Stage]), lambda r: r.state.due_at)
    assert records.put("hwc-1", Owned(Stage("hwc-1", DUE), "c-1")) is True
    assert records.put("hwc-1", Owned(Stage("hwc-1", DUE), "c-1")) is False
    assert records.put("hwc-1", Owned(Stage("hwc-1", DUE, ("backup",)), "c-1")) is True
    assert writes == ["hwc-1", "hwc-1"]
    assert records.due(DUE) == [("hwc-1", Owned(Stage("hwc-1", DUE, ("backup",)), "c-1"))]


def test_a_record_reads_back_typed_and_is_stored_as_the_json_the_dict_form_had() -> None:
    raw = Table()
    records = TypedRecords(CompactValues(raw), Owned[Stage])
    records["hwc-1"] = Owned(Stage("hwc-1", DUE, ("backup",)), "c-1")
    assert json.loads(raw["hwc-1"]) == {"state": {"notice_id": "hwc-1", "due_at": "2026-12-07T08:00:00Z",
                                                  "stages_done": ["backup"]}, "correlation_id": "c-1"}
    # What the dict-keeping code wrote (an offset, a missing field, a key since dropped) reads as the record.
    raw["hwc-2"] = json.dumps({"state": {"notice_id": "hwc-2", "due_at": "2026-12-07T08:00:00+00:00",
                                         "dropped": 1}, "correlation_id": None}).encode()
    assert records["hwc-2"] == Owned(Stage("hwc-2", DUE))
    assert records.name == "notices" and records.get("missing") is None and set(records) == {"hwc-1", "hwc-2"}
