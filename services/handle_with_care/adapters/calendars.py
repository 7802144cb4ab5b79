"""School calendars from RFC 5545 files, as districts publish them.

Every event in a closures calendar is a day without school (holiday, break, teacher-only day);
multi-day and recurring events (RRULE, RDATE, EXDATE) are expanded by recurring-ical-events.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import icalendar
import recurring_ical_events

from services.handle_with_care.domain.calendar import ClosedDay


class IcsClosures:
    """Callable (start, end) -> closed days of one RFC 5545 calendar (text or file), parsed once."""

    def __init__(self, source: Path | str) -> None:
        text = Path(source).read_text() if isinstance(source, Path) else source
        self._calendar = icalendar.Calendar.from_ical(text)
        self._by_day = lru_cache(maxsize=4096)(self._closed_on)

    def __call__(self, start: date, end: date) -> Iterator[ClosedDay]:
        day = start
        while day <= end:
            reason = self._by_day(day)
            if reason is not None:
                yield ClosedDay(day, reason)
            day += timedelta(days=1)

    def _closed_on(self, day: date) -> str | None:
        for event in recurring_ical_events.of(self._calendar).at(day):
            return str(event.get("SUMMARY", "closed"))
        return None




@lru_cache(maxsize=64)
def ics_closures(text: str) -> IcsClosures:
    """One parsed calendar per distinct text: a calendar republished with changes is parsed anew."""
    return IcsClosures(text)
