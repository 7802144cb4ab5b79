"""Every time a message says names its zone, and its year when that is not this year's."""

from __future__ import annotations

from datetime import UTC, datetime

from services.kernel.clock import spoken_time

AT = datetime(2026, 12, 3, 9, 12, tzinfo=UTC)  # 02:12 in Albuquerque


def test_a_time_names_its_zone_and_the_year_only_when_it_is_not_this_year() -> None:
    assert spoken_time(AT, "America/Denver", AT) == "Thu 03 Dec 02:12 MST"
    assert spoken_time(datetime(2027, 1, 3, 6, 59, tzinfo=UTC), "America/Denver", AT) == "Sat 02 Jan 2027 23:59 MST"
    assert spoken_time(datetime(2026, 7, 1, 15, 0, tzinfo=UTC), "America/Denver", AT) == "Wed 01 Jul 09:00 MDT"
    assert spoken_time(AT, "America/Denver") == "Thu 03 Dec 2026 02:12 MST"  # no "now": the year, to be sure
    # The year is the reader's zone's: 05:00 UTC on 1 January is still New Year's Eve in Denver.
    assert spoken_time(datetime(2027, 1, 1, 5, 0, tzinfo=UTC), "America/Denver", AT) == "Thu 31 Dec 22:00 MST"
