"""The Handle With Care notice: who it is about, where it goes, and the little each channel may say.

Minimal by construction: the renderers below take only an ``HwcNoticeRequested`` (which has no
incident, address, narrative, other people or officer field) and the school's directory entry.
Even the sending agency is left out unless the program opts in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from services.handle_with_care.events import HwcNoticeRequested, RecipientRole
from services.kernel.events import (
    Child,
)
from services.kernel.identity import normalize_name
from services.kernel.reference import School

WORDS = "Handle With Care"
NOTICE_NAMESPACE = uuid.UUID("0a6f5a0e-3a4b-4f7e-9a4c-6b2d7c8e9f10")
CONFIDENTIALITY = ("Confidential: share only with staff who need to know, as your Handle With Care "
                   "protocol describes. No other information is available or needed.")


def merge_key(child: Child, school_id: str) -> str:
    return f"{normalize_name(child.first_name)}|{normalize_name(child.last_name)}|{child.date_of_birth}|{school_id}"


def notice_id_for(child: Child, school_id: str, due_at: datetime) -> str:
    """The same child at the same school before the same deadline is one notice, from any incident or agency."""
    return str(uuid.uuid5(NOTICE_NAMESPACE, f"{merge_key(child, school_id)}|{due_at.isoformat()}"))


def request_notice(child: Child, agency_id: str, school_id: str, due_at: datetime, now: datetime,
                   disclose_agency: bool = False, incident_id: str | None = None) -> HwcNoticeRequested:
    """The notice for a child encountered: the child and the school, nothing of the incident (its id stays
    inside Handoff, for the program's view of the incident, and is never rendered)."""
    return HwcNoticeRequested(notice_id=notice_id_for(child, school_id, due_at), child=child,
                              school_id=school_id, due_at=due_at, requested_at=now,
                              sending_agency=agency_id if disclose_agency else None, agency_id=agency_id,
                              incident_id=incident_id)


@dataclass(frozen=True)
class RenderedNotice:
    subject: str
    body: str
    payload: dict


# Why an escalated notice reaches this recipient: roles only, never who or what happened.
WHY = {RecipientRole.backup: "You receive this notice because the school's primary contact has not acknowledged it.",
       RecipientRole.coordinator: "You receive this notice as the district's coordinator because nobody at the "
                                  "school has acknowledged it."}


def is_late(notice: HwcNoticeRequested) -> bool:
    """Opened when the school day it was for had already started (a late report, a slow CAD feed)."""
    return notice.requested_at >= notice.due_at


def render_notice(notice: HwcNoticeRequested, school: School, ack_url: str,
                  role: RecipientRole = RecipientRole.primary) -> RenderedNotice:
    child = notice.child
    grade = child.grade or "not known"
    late = is_late(notice)
    lines = [f"{WORDS} (LATE)" if late else WORDS, ""]
    if late:
        when = notice.due_at.astimezone(ZoneInfo(school.timezone)).strftime("%A %d %B at %H:%M %Z")
        lines += [f"This notice is late: it was for the school day that began {when}. Please act on it today.", ""]
    if role in WHY:
        lines += [WHY[role], ""]
    lines += [f"Student: {child.first_name} {child.last_name}", f"Date of birth: {child.date_of_birth.isoformat()}",
              f"Grade: {grade}", f"School: {school.name}"]
    if notice.sending_agency:
        lines.append(f"Sent by: {notice.sending_agency}")
    lines += ["", f"Please acknowledge: {ack_url}", f"Notice {notice.notice_id}", "", CONFIDENTIALITY]
    payload = {"type": "hwc.notice", "words": WORDS, "notice_id": notice.notice_id, "late": late,
               "recipient_role": role.value, **({"why": WHY[role]} if role in WHY else {}),
               "student": {"first_name": child.first_name, "last_name": child.last_name,
                           "date_of_birth": child.date_of_birth.isoformat(), "grade": child.grade},
               "school_id": school.school_id, "school_name": school.name, "acknowledge_url": ack_url}
    if notice.sending_agency:
        payload["sending_agency"] = notice.sending_agency
    # The subject shows in lock screens and mail previews: no name in it.
    prefix = "LATE " if late else ""
    return RenderedNotice(subject=f"{prefix}{WORDS} notice for {school.name}", body="\n".join(lines), payload=payload)
