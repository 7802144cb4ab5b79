"""Time as a dependency: services ask a ``Clock``; tests move a ``FakeClock`` instead of sleeping."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

from services.kernel.errors import Rejected


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at


@dataclass(frozen=True)
class EventTimeWindow:
    """How far from now a CAD event's time may be: an encounter in 1900 or a referral in 2099 is a
    broken CAD clock or a typing error, and acting on it would page late, skew every figure (a
    funnel week of 2099 "meets" its targets) and send notices to no real school day."""

    back: timedelta = timedelta(days=30)
    ahead: timedelta = timedelta(minutes=10)

    def check(self, field: str, at: datetime, now: datetime) -> None:
        if at < now - self.back:
            raise Rejected(field, f"more than {_span(self.back)} before now")
        if at > now + self.ahead:
            raise Rejected(field, f"more than {_span(self.ahead)} after now")


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 1440} days" if minutes % 1440 == 0 else f"{minutes} minutes"


def iso_week(at: datetime) -> str:
    """The ISO week of ``at``, e.g. 2026-W47: the period every weekly figure is grouped by."""
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


def spoken_time(at: datetime, zone: tzinfo | str, now: datetime | None = None) -> str:
    """A time as a message says it to a person: 'Tue 19 Jan 07:45 MST' in ``zone``, whose abbreviation
    it names (the reader may be elsewhere), and with the year when that is not ``now``'s year there
    ('Sat 02 Jan 2027 23:59 MST'); always with the year when ``now`` is not known."""
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    local = at.astimezone(zone)
    same_year = now is not None and now.astimezone(zone).year == local.year
    return f"{local:%a %d %b}{'' if same_year else f' {local.year}'} {local:%H:%M %Z}"
