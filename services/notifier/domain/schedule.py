"""On-call schedules, as PagerDuty models them: a rotation of members with fixed-length shifts
that hand off at a site-local time of day, and overrides that replace the rotation for a while.

Shifts that are whole days hand off at the same wall-clock time across DST changes (a 24-hour
shift around a spring-forward is 23 real hours); other shift lengths count real hours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.kernel.reference import OnCallRotation


def on_call_at(rotation: OnCallRotation, zone: ZoneInfo, at: datetime) -> str:
    """The case manager on call at instant ``at`` (aware)."""
    local = at.astimezone(zone)
    for override in rotation.overrides:
        start = override.start.replace(tzinfo=zone) if override.start.tzinfo is None else override.start
        end = override.end.replace(tzinfo=zone) if override.end.tzinfo is None else override.end
        if start <= at < end:
            return override.case_manager_id
    return rotation.members[shift_index(rotation, zone, local) % len(rotation.members)]


def shift_index(rotation: OnCallRotation, zone: ZoneInfo, local: datetime) -> int:
    """How many shifts have started since the rotation began (negative before it began)."""
    start = rotation.starts_on.replace(tzinfo=zone) if rotation.starts_on.tzinfo is None else rotation.starts_on.astimezone(zone)
    if rotation.shift_hours % 24 == 0:
        shift_days = rotation.shift_hours // 24
        days = (local.date() - start.date()).days
        if local.timetz().replace(tzinfo=None) < start.time():
            days -= 1  # before today's handoff: still yesterday's shift
        return days // shift_days
    elapsed = local - start
    return int(elapsed // timedelta(hours=rotation.shift_hours))


def on_call_with_capacity(rotation: OnCallRotation, zone: ZoneInfo, at: datetime,
                          has_capacity: Callable[[str], bool]) -> str:
    """Who to page: the person on call, unless at their caseload limit, then the next member of the
    rotation who has room. If nobody has room, still the person on call: a full case manager is
    better than nobody."""
    scheduled = on_call_at(rotation, zone, at)
    if has_capacity(scheduled):
        return scheduled
    members = list(rotation.members)
    start = members.index(scheduled) if scheduled in members else -1
    for offset in range(1, len(members) + 1):
        candidate = members[(start + offset) % len(members)]
        if candidate != scheduled and has_capacity(candidate):
            return candidate
    return scheduled


@dataclass(frozen=True)
class Shift:
    start: datetime
    end: datetime
    case_manager_id: str


def shift_start(rotation: OnCallRotation, zone: ZoneInfo, index: int) -> datetime:
    """When shift ``index`` (0: the rotation's first) starts."""
    base = rotation.starts_on.replace(tzinfo=zone) if rotation.starts_on.tzinfo is None \
        else rotation.starts_on.astimezone(zone)
    if rotation.shift_hours % 24 == 0:  # whole days: the same wall-clock handoff across DST
        day = base.date() + timedelta(days=index * (rotation.shift_hours // 24))
        return datetime.combine(day, base.timetz().replace(tzinfo=None), zone)
    return (base.astimezone(UTC) + index * timedelta(hours=rotation.shift_hours)).astimezone(zone)


def shifts_between(rotation: OnCallRotation, zone: ZoneInfo, start: datetime, end: datetime) -> list[Shift]:
    """Who is on call from ``start`` to ``end``, as consecutive shifts: the rotation's handoffs and the
    overrides' edges cut it, ``on_call_at`` decides each piece (one rule for paging and for calendars),
    and neighbouring pieces of the same person are one shift."""
    cuts = {start, end}
    index = shift_index(rotation, zone, start.astimezone(zone))
    while (handoff := shift_start(rotation, zone, index)) < end:
        if handoff > start:
            cuts.add(handoff)
        index += 1
    for override in rotation.overrides:
        for edge in (override.start, override.end):
            edge = edge.replace(tzinfo=zone) if edge.tzinfo is None else edge
            if start < edge < end:
                cuts.add(edge)
    ordered = sorted(cuts)
    shifts: list[Shift] = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        who = on_call_at(rotation, zone, a)
        if shifts and shifts[-1].case_manager_id == who and shifts[-1].end == a:
            shifts[-1] = Shift(shifts[-1].start, b, who)
        else:
            shifts.append(Shift(a, b, who))
    return shifts
