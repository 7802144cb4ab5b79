"""A district's OneRoster CSV bulk files (1.1 or 1.2: ``orgs.csv``, ``users.csv``, ``enrollments.csv``,
``demographics.csv`` for dates of birth, ``roles.csv`` in 1.2) read into what Handle With Care needs to
know which school a child attends: a keyed hash of the student's name and date of birth, and the school.
Nothing else is kept: no names, no dates, no classes. Pure: the files' text in, the roster out.

A student counts when their user, enrollment and school are active and the enrollment covers today;
with several schools, the primary enrollment's; with several and none primary, none (a guess would
send a notice to the wrong school: triage decides instead).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

from services.kernel.errors import Rejected
from services.kernel.reference import School

REQUIRED = ("orgs.csv", "users.csv", "enrollments.csv", "demographics.csv")
MAX_ROWS = 2_000_000


@dataclass
class RosterImport:
    entries: dict[str, str] = field(default_factory=dict)  # roster key -> Handoff school id
    students: int = 0
    without_birth_date: int = 0
    at_unknown_schools: int = 0
    ambiguous: int = 0


def read_roster(files: Mapping[str, str], schools: list[School], today: date,
                key_of: Callable[[str, str, date], str]) -> RosterImport:
    """``files``: file name -> text; ``schools``: the district's schools in the directory; ``key_of``: the
    keyed hash of (given name, family name, date of birth)."""
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise Rejected("roster", f"missing {', '.join(missing)} (OneRoster CSV bulk files)")
    orgs = {r["sourcedId"]: r for r in _rows(files, "orgs.csv") if _active(r)}
    school_of_org = _schools_of_orgs(orgs, schools)
    students = _students(files)
    births = {r["sourcedId"]: r.get("birthDate", "") for r in _rows(files, "demographics.csv") if _active(r)}
    enrolled = _enrollments(files, students, orgs, today)
    result = RosterImport()
    for user_id, (given, family) in students.items():
        if user_id not in enrolled:
            continue
        result.students += 1
        attends = _attends(enrolled[user_id])
        born = _date(births.get(user_id, ""))
        school_id = school_of_org.get(attends) if attends is not None else None
        if attends is None:
            result.ambiguous += 1
        elif born is None or not given or not family:
            result.without_birth_date += 1
        elif school_id is None:
            result.at_unknown_schools += 1
        else:
            result.entries[key_of(given, family, born)] = school_id
    return result


def _schools_of_orgs(orgs: dict[str, dict], schools: list[School]) -> dict[str, str | None]:
    """OneRoster school org -> the directory's school (by its id, a roster id, or the org's identifier)."""
    by_roster_id = {rid: s.school_id for s in schools for rid in (s.school_id, *s.roster_ids)}
    return {sourced_id: by_roster_id.get(sourced_id) or by_roster_id.get(org.get("identifier") or "")
            for sourced_id, org in orgs.items() if org.get("type", "school") in ("school", "")}


def _enrollments(files: Mapping[str, str], students: dict, orgs: dict, today: date) -> dict[str, list[tuple[str, bool]]]:
    """Student -> (school org, is it their primary) of each active student enrollment covering ``today``."""
    enrolled: dict[str, list[tuple[str, bool]]] = {}
    for r in _rows(files, "enrollments.csv"):
        if not _active(r) or r.get("role", "student") != "student" or r.get("userSourcedId") not in students:
            continue
        if not _covers(r.get("beginDate"), r.get("endDate"), today) or r.get("schoolSourcedId") not in orgs:
            continue
        enrolled.setdefault(r["userSourcedId"], []).append((r["schoolSourcedId"], r.get("primary") == "true"))
    return enrolled


def _attends(enrollments: list[tuple[str, bool]]) -> str | None:
    """The one school a student attends: the only one, or the one primary; None when that is not clear."""
    orgs_of = list(dict.fromkeys(o for o, _ in enrollments))
    primary = [o for o, is_primary in enrollments if is_primary]
    return orgs_of[0] if len(orgs_of) == 1 else (primary[0] if len(set(primary)) == 1 else None)


def _students(files: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """user sourcedId -> (given name, family name) of active students (1.1: users.csv role; 1.2: roles.csv)."""
    users = {r["sourcedId"]: r for r in _rows(files, "users.csv") if _active(r)
             and r.get("enabledUser", "true") != "false"}
    if "roles.csv" in files:
        student_ids = {r["userSourcedId"] for r in _rows(files, "roles.csv") if _active(r) and r.get("role") == "student"}
    else:
        student_ids = {uid for uid, r in users.items() if r.get("role") == "student"}
    return {uid: (r.get("preferredGivenName") or r.get("givenName", ""), r.get("familyName", ""))
            for uid, r in users.items() if uid in student_ids}


def _rows(files: Mapping[str, str], name: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(files[name].lstrip("\ufeff")))
    if reader.fieldnames is None or "sourcedId" not in reader.fieldnames:
        raise Rejected(name, "no sourcedId column (not a OneRoster CSV file)")
    rows = []
    for i, row in enumerate(reader):
        if i >= MAX_ROWS:
            raise Rejected(name, f"more than {MAX_ROWS} rows")
        rows.append({k: (v or "").strip() for k, v in row.items() if k is not None})
    return rows


def _active(row: dict[str, str]) -> bool:
    # Bulk files may leave status empty (active); tobedeleted rows are gone.
    return row.get("status", "") in ("", "active")


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


def _covers(begin: str | None, end: str | None, today: date) -> bool:
    start, stop = _date(begin or ""), _date(end or "")
    return (start is None or start <= today) and (stop is None or today <= stop)
