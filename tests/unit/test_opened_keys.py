"""Opened data keys held in memory (``SubjectKeys``): each a short while, at most ``OPENED_HELD`` of them, and what
a backlog opens beyond that costs each open the same, not as much as every key held."""

from __future__ import annotations

from datetime import UTC, datetime

from services.messaging import subject_keys
from services.messaging.events import SubjectKeyIssued
from services.messaging.subject_keys import LiveKey, SubjectKeys
from services.platform.crypto import key_provider, new_data_key
from services.platform.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def keys_with(tmp_path, n: int, clock: Clock) -> SubjectKeys:
    provider = key_provider(Settings(data_dir=tmp_path))
    keys = SubjectKeys(Settings(schema_registry_url="memory://", data_dir=tmp_path), provider, cache_seconds=300.0,
                       monotonic=clock)
    for i in range(n):
        wrapped = provider.wrap(new_data_key(), f"k{i}")
        keys._apply(SubjectKeyIssued(subject_id=f"S{i}", key_id=f"k{i}", covers="hwc_notice", kek_id=wrapped.kek_id,
                                     wrapped_key=wrapped.wrapped, issued_at=datetime.now(UTC)))
    return keys


def test_past_the_limit_the_oldest_opened_keys_go_and_the_newest_stay(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(subject_keys, "OPENED_HELD", 5)
    clock = Clock()
    keys = keys_with(tmp_path, 8, clock)
    for i in range(8):
        clock.now += 1
        keys.open(f"S{i}", f"k{i}")
    assert list(keys._opened) == ["k3", "k4", "k5", "k6", "k7"]
    clock.now += 1
    keys.open("S3", "k3")  # held still: nothing changes
    assert list(keys._opened) == ["k3", "k4", "k5", "k6", "k7"]


def test_an_open_looks_at_the_expired_keys_only(tmp_path, monkeypatch) -> None:
    """A backlog opens more keys within the cache's time than it may hold: each open then dropped nothing after
    looking at every key held. It now looks at the front of the queue only."""
    monkeypatch.setattr(subject_keys, "OPENED_HELD", 100)
    clock = Clock()
    keys = keys_with(tmp_path, 400, clock)
    looked = [0]

    class Counting(dict):
        def items(self):  # every held entry looked at, counted
            for item in dict.items(self):
                looked[0] += 1
                yield item

    keys._opened = Counting()
    for i in range(400):
        keys.open(f"S{i}", f"k{i}")
    assert len(keys._opened) == 100
    assert looked[0] <= 400  # one glance at the front per open past the limit (it was every key held: 30,000)


def test_keys_held_longer_than_the_cache_allows_are_forgotten_oldest_first(tmp_path) -> None:
    clock = Clock()
    keys = keys_with(tmp_path, 3, clock)
    keys.open("S0", "k0")
    clock.now = 200
    keys.open("S1", "k1")
    clock.now = 320
    keys.open("S2", "k2")
    keys.forget_expired()
    assert list(keys._opened) == ["k1", "k2"]
    clock.now = 700
    keys.forget_expired()
    assert list(keys._opened) == []


def test_a_live_key_is_held_compactly_and_read_back_as_the_record_it_came_in(tmp_path) -> None:
    """Every process holds every subject's key while it lives: as a slotted ``LiveKey``, about 0.6 KB with its ids
    (the pydantic record it came in took 1.6 KB)."""
    clock = Clock()
    keys = keys_with(tmp_path, 0, clock)
    provider = keys.provider
    wrapped = provider.wrap(new_data_key(), "k1")
    record = SubjectKeyIssued(subject_id="NOTICE-1", key_id="k1", covers="hwc_notice", kek_id=wrapped.kek_id,
                              wrapped_key=wrapped.wrapped, issued_at=datetime.now(UTC), part_of="CAD-1")
    keys._apply(record)
    assert type(keys._records["NOTICE-1"]["k1"]) is LiveKey
    assert keys.keys_of("NOTICE-1") == [record]
    assert keys.linked("NOTICE-1") == ["NOTICE-1", "CAD-1"]  # made while its encounter was handled
    assert len(keys.open("NOTICE-1", "k1")) == 32
