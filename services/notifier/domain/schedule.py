"""On-call schedules, as PagerDuty models them: a rotation of members with fixed-length shifts
that hand off at a site-local time of day, and overrides that replace the rotation for a while.

Shifts that are whole days hand off at the same wall-clock time across DST changes (a 24-hour
shift around a spring-forward is 23 real hours); other shift lengths count real hours.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
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
