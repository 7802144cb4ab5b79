"""The Handle With Care deadline: the first school-day start strictly after the encounter."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.handle_with_care.adapters.calendars import IcsClosures
from services.handle_with_care.domain.calendar import NoSchoolDayFound, SchoolCalendar, next_school_day_start
from services.platform.settings import REPO_ROOT

DENVER = ZoneInfo("America/Denver")
CALENDARS = REPO_ROOT / "config" / "local" / "calendars"
DISTRICT = IcsClosures(CALENDARS / "abq-public-schools.ics")


def school(**kw) -> SchoolCalendar:
    return SchoolCalendar(DENVER, time(7, 45), closed_in_range=DISTRICT, **kw)


def due(cal: SchoolCalendar, *when) -> datetime:
    return next_school_day_start(cal, datetime(*when, tzinfo=DENVER)).due_at


def test_friday_night_before_a_monday_holiday_is_due_tuesday_morning() -> None:
    # 2027-01-18 is MLK Day, from the yearly RRULE (third Monday of January).
    result = next_school_day_start(school(), datetime(2027, 1, 15, 22, 30, tzinfo=DENVER))
    assert result.due_at == datetime(2027, 1, 19, 7, 45, tzinfo=DENVER)
    assert [why for _, why in result.skipped] == ["Saturday", "Sunday", "Martin Luther King Jr. Day"]


def test_encounter_during_a_school_day_is_due_the_next_school_day() -> None:
    assert due(school(), 2026, 11, 17, 10, 0) == datetime(2026, 11, 18, 7, 45, tzinfo=DENVER)


def test_encounter_before_the_bell_is_due_that_same_morning() -> None:
    assert due(school(), 2026, 11, 17, 6, 0) == datetime(2026, 11, 17, 7, 45, tzinfo=DENVER)
    assert due(school(), 2026, 11, 17, 7, 45) == datetime(2026, 11, 18, 7, 45, tzinfo=DENVER)  # strictly after


def test_multi_day_break_is_skipped() -> None:
    # Thanksgiving break Wed 11-25 .. Fri 11-27 (DTEND exclusive), then the weekend.
    assert due(school(), 2026, 11, 24, 12, 0) == datetime(2026, 11, 30, 7, 45, tzinfo=DENVER)


def test_recurring_rule_with_an_exception_date() -> None:
    # Teacher days: first Mondays Mar..Jun 2026, except April 6.
    assert due(school(), 2026, 3, 1, 12, 0) == datetime(2026, 3, 3, 7, 45, tzinfo=DENVER)
    assert due(school(), 2026, 4, 5, 12, 0) == datetime(2026, 4, 6, 7, 45, tzinfo=DENVER)


def test_start_time_is_local_across_spring_forward() -> None:
    # DST begins Sun 2026-03-08 in Denver: Friday's due time is UTC-7, Monday's is UTC-6.
    result = due(school(), 2026, 3, 6, 12, 0)
    assert result == datetime(2026, 3, 9, 7, 45, tzinfo=DENVER)
    assert result.utcoffset().total_seconds() == -6 * 3600


def test_start_time_is_local_across_fall_back() -> None:
    result = due(school(), 2026, 10, 30, 12, 0)  # DST ends Sun 2026-11-01
    assert result == datetime(2026, 11, 2, 7, 45, tzinfo=DENVER)
    assert result.utcoffset().total_seconds() == -7 * 3600


def test_encounter_time_in_another_zone_is_compared_as_an_instant() -> None:
    # 2026-11-17 14:30 UTC is 07:30 in Denver: before the bell, so due that morning.
    at = datetime(2026, 11, 17, 14, 30, tzinfo=ZoneInfo("UTC"))
    assert next_school_day_start(school(), at).due_at == datetime(2026, 11, 17, 7, 45, tzinfo=DENVER)


def test_closure_added_at_run_time_moves_the_deadline() -> None:
    snowed = school().with_closures({date(2026, 11, 18): "closure: snow day"})
    result = next_school_day_start(snowed, datetime(2026, 11, 17, 10, 0, tzinfo=DENVER))
    assert result.due_at == datetime(2026, 11, 19, 7, 45, tzinfo=DENVER)
    assert result.skipped == ((date(2026, 11, 18), "closure: snow day"),)


def test_day_care_with_its_own_days_and_calendar() -> None:
    day_care = SchoolCalendar(DENVER, time(6, 30), frozenset({0, 1, 2, 3, 4, 5}),
                              closed_in_range=IcsClosures(CALENDARS / "sunrise-daycare.ics"))
    # Open Saturdays; closed only Thanksgiving Day itself (not the district's break).
    assert due(day_care, 2026, 11, 20, 18, 0) == datetime(2026, 11, 21, 6, 30, tzinfo=DENVER)
    assert due(day_care, 2026, 11, 25, 18, 0) == datetime(2026, 11, 27, 6, 30, tzinfo=DENVER)
    assert due(day_care, 2027, 12, 24, 18, 0) == datetime(2027, 12, 27, 6, 30, tzinfo=DENVER)  # yearly RRULE, then Sunday


def test_explanation_lists_skipped_days() -> None:
    text = next_school_day_start(school(), datetime(2027, 1, 15, 22, 30, tzinfo=DENVER)).explain()
    assert text.splitlines()[0] == "deadline 2027-01-19T07:45:00-07:00"
    assert "2027-01-18: Martin Luther King Jr. Day" in text


def test_naive_encounter_time_is_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        next_school_day_start(school(), datetime(2026, 11, 17, 10, 0))


def test_never_open_calendar_is_an_error_not_a_hang() -> None:
    with pytest.raises(NoSchoolDayFound):
        next_school_day_start(SchoolCalendar(DENVER, time(8), frozenset()), datetime(2026, 1, 1, tzinfo=DENVER))
