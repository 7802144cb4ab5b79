"""School days and the Handle With Care deadline, as pure functions of a school's calendar.

The deadline is the start of the first school day strictly after the encounter, in the school's
own time zone: weekends (or a day care's own opening days), holidays, breaks, teacher-only days
and run-time closures (snow days) are skipped. Local wall-clock start times are resolved per date,
so the deadline stays at 07:45 local across DST changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_SEARCH_DAYS = 400  # a closed calendar year is a configuration error, not a wait


class NoSchoolDayFound(ValueError):
    pass


@dataclass(frozen=True)
class ClosedDay:
    day: date
    reason: str  # e.g. "Thanksgiving break", "closure: snow day"


@dataclass(frozen=True)
class SchoolCalendar:
    zone: ZoneInfo
    day_starts_at: time
    open_weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    closures: dict[date, str] = field(default_factory=dict)
    closed_in_range: Callable[[date, date], Iterable[ClosedDay]] | None = None  # e.g. an .ics, queried lazily

    def closed_reason(self, day: date) -> str | None:
        if day.weekday() not in self.open_weekdays:
            return day.strftime("%A")
        if day in self.closures:
            return self.closures[day]
        if self.closed_in_range is not None:
            for closed in self.closed_in_range(day, day):
                if closed.day == day:
                    return closed.reason
        return None

    def with_closures(self, closures: dict[date, str]) -> SchoolCalendar:
        return SchoolCalendar(self.zone, self.day_starts_at, self.open_weekdays, {**self.closures, **closures},
                              self.closed_in_range)


@dataclass(frozen=True)
class Deadline:
    due_at: datetime                      # aware, in the school's zone
    skipped: tuple[tuple[date, str], ...]  # days passed over, with why

    def explain(self) -> str:
        lines = [f"deadline {self.due_at.isoformat()}"]
        lines += [f"  skipped {d.isoformat()}: {why}" for d, why in self.skipped]
        return "\n".join(lines)


def next_school_day_start(calendar: SchoolCalendar, after: datetime) -> Deadline:
    """The start of the first school day strictly after ``after`` (aware), with the days skipped."""
    if after.tzinfo is None:
        raise ValueError("the encounter time must carry its offset or zone")
    local = after.astimezone(calendar.zone)
    skipped: list[tuple[date, str]] = []
    day = local.date()
    for _ in range(MAX_SEARCH_DAYS):
        start = datetime.combine(day, calendar.day_starts_at, tzinfo=calendar.zone)
        if start > after:
            reason = calendar.closed_reason(day)
            if reason is None:
                return Deadline(start, tuple(skipped))
            skipped.append((day, reason))
        day += timedelta(days=1)
    raise NoSchoolDayFound(f"no school day within {MAX_SEARCH_DAYS} days after {local.date()}")
