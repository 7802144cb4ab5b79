"""The tables' values: compact in memory, the same JSON on the changelog, written only on change."""

from __future__ import annotations

import json
import sys

from services.kernel.store import CompactValues, put_if_changed

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


def test_an_unchanged_value_is_not_written_again() -> None:
    writes = []

    class Counting(Table):
        def __setitem__(self, key, value):
            writes.append(key)
            super().__setitem__(key, value)

    values = CompactValues(Counting())
    assert put_if_changed(values, "hwc-1", NOTICE) is True
    assert put_if_changed(values, "hwc-1", json.loads(json.dumps(NOTICE))) is False
    assert writes == ["hwc-1"]
