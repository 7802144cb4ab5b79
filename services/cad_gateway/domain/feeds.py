"""Feed heartbeats: "this CAD sends at least one event every N hours between 06:00 and 22:00". Silence is
counted in the agency's active hours only, so a CAD quiet overnight is not an alarm at 06:05, and one
quiet all afternoon is. Pure: times in, answers out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.kernel.cad import CadChildEncountered, CadOverdoseResponded, CadReferralMade, CadWalkInReported
from services.kernel.reference import FeedExpectation


def event_time(event) -> tuple[str, datetime] | None:
    """(agency, when) of a CAD event, whichever intake it went to."""
    if isinstance(event, CadReferralMade | CadOverdoseResponded | CadWalkInReported):
        return event.agency_id, event.occurred_at
    if isinstance(event, CadChildEncountered):
        return event.agency_id, event.encountered_at
    return None


def active_hours_between(start: datetime, end: datetime, expectation: FeedExpectation) -> float:
    """Hours between ``start`` and ``end`` that fall in the expectation's daily window (its local time)."""
    if end <= start:
        return 0.0
    zone = ZoneInfo(expectation.timezone)
    total = timedelta()
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    while day <= last:
        opens = datetime.combine(day, time(expectation.from_hour), zone)
        closes = datetime.combine(day, time(0), zone) + timedelta(hours=expectation.until_hour)
        overlap = min(closes, end) - max(opens, start)
        if overlap > timedelta():
            total += overlap
        day += timedelta(days=1)
    return total.total_seconds() / 3600


def is_silent(silent_since: datetime, now: datetime, expectation: FeedExpectation) -> bool:
    return active_hours_between(silent_since, now, expectation) > expectation.every_hours


@dataclass(frozen=True)
class FeedSilence:
    """What the owner of an agency's feed-health partition keeps: the silence it told of, and when the
    feed came back (None: still silent)."""

    silent_since: datetime
    resumed_at: datetime | None = None
