from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from services.kernel.reference import OnCallRotation, Override
from services.notifier.domain.schedule import on_call_at

DENVER = ZoneInfo("America/Denver")


def rotation(**kw) -> OnCallRotation:
    return OnCallRotation(members=("ana", "ben", "cruz"), starts_on=datetime(2026, 3, 2, 8, 0), **kw)


def at(*args) -> datetime:
    return datetime(*args, tzinfo=DENVER)


def test_daily_rotation_hands_off_at_local_handoff_time() -> None:
    r = rotation()
    assert on_call_at(r, DENVER, at(2026, 3, 2, 8, 0)) == "ana"
    assert on_call_at(r, DENVER, at(2026, 3, 3, 7, 59)) == "ana"
    assert on_call_at(r, DENVER, at(2026, 3, 3, 8, 0)) == "ben"
    assert on_call_at(r, DENVER, at(2026, 3, 5, 9, 0)) == "ana"  # wrapped


def test_handoff_stays_at_8am_local_across_spring_forward() -> None:
    r = rotation()
    # DST starts 2026-03-08 02:00 in Denver; the 7th->8th shift is 23 real hours.
    assert on_call_at(r, DENVER, at(2026, 3, 8, 7, 59)) == "cruz"   # shift that began 03-07 08:00 (index 5)
    assert on_call_at(r, DENVER, at(2026, 3, 8, 8, 0)) == "ana"     # index 6


def test_handoff_stays_at_8am_local_across_fall_back() -> None:
    r = rotation()
    # DST ends 2026-11-01 02:00; index 244 starts 2026-11-01 08:00 local.
    assert on_call_at(r, DENVER, at(2026, 11, 1, 7, 59)) == on_call_at(r, DENVER, at(2026, 10, 31, 8, 0))
    assert on_call_at(r, DENVER, at(2026, 11, 1, 8, 0)) != on_call_at(r, DENVER, at(2026, 11, 1, 7, 59))


def test_weekly_and_hourly_shifts() -> None:
    weekly = rotation(shift_hours=168)
    assert on_call_at(weekly, DENVER, at(2026, 3, 8, 9, 0)) == "ana"
    assert on_call_at(weekly, DENVER, at(2026, 3, 9, 8, 0)) == "ben"
    twelve = rotation(shift_hours=12)
    assert on_call_at(twelve, DENVER, at(2026, 3, 2, 19, 59)) == "ana"
    assert on_call_at(twelve, DENVER, at(2026, 3, 2, 20, 0)) == "ben"


def test_override_wins_for_its_window_only() -> None:
    r = rotation(overrides=(Override(start=datetime(2026, 3, 2, 12, 0), end=datetime(2026, 3, 2, 14, 0),
                                     case_manager_id="dee"),))
    assert on_call_at(r, DENVER, at(2026, 3, 2, 11, 59)) == "ana"
    assert on_call_at(r, DENVER, at(2026, 3, 2, 12, 0)) == "dee"
    assert on_call_at(r, DENVER, at(2026, 3, 2, 14, 0)) == "ana"


def test_on_call_at_caseload_limit_passes_to_the_next_member_with_room() -> None:
    from services.notifier.domain.schedule import on_call_with_capacity

    r = rotation()
    at_noon = at(2026, 3, 2, 12, 0)  # ana's shift
    assert on_call_with_capacity(r, DENVER, at_noon, lambda cm: True) == "ana"
    assert on_call_with_capacity(r, DENVER, at_noon, lambda cm: cm != "ana") == "ben"
    assert on_call_with_capacity(r, DENVER, at_noon, lambda cm: cm == "cruz") == "cruz"
    assert on_call_with_capacity(r, DENVER, at_noon, lambda cm: False) == "ana"  # nobody has room: still page someone
