"""Quick Response Teams in the web console: the team's list, phone-first.

Each open follow-up of the viewer's sites, the one due first on top: who and where (with where the
address came from: EMS addresses are often stale), when the window closes, what was tried; and one
tap per attempt. The list names people, so each showing is audited, as in the API.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.kernel.events import (
    DisclosureChannel,
)
from services.quick_response.domain.figures import FollowUpView, week_of
from services.quick_response.entrypoints.http_api import QrtModel
from services.quick_response.events import AttemptOutcome, FollowUpKind
from services.quick_response.service import audit_list_read, log_attempt
from services.quick_response.topics import QRT_FOLLOW_UPS
from services.web.console import ConsoleSessions, local_time, page
from services.web.deps import AppClock, CaughtUp, Events, Reference
from services.web.web import ApiError

TEMPLATES = "services.quick_response.entrypoints"  # its templates/ folder
TEAM_ROLES = ("outreach", "case_manager", "program_manager")
LABELS = {AttemptOutcome.visited: "Visited", AttemptOutcome.not_home: "Not home",
          AttemptOutcome.wrong_address: "Wrong address", AttemptOutcome.refused: "Refused",
          AttemptOutcome.engaged: "Engaged", AttemptOutcome.referred_to_treatment: "Referred to treatment"}
# After a death the team supports the family: no treatment step, and the words say what the visit is for.
FAMILY_LABELS = {AttemptOutcome.visited: "Visited the family", AttemptOutcome.not_home: "Not home",
                 AttemptOutcome.wrong_address: "Wrong address", AttemptOutcome.refused: "Support declined",
                 AttemptOutcome.engaged: "Family supported, resources given"}


def labels_for(kind: FollowUpKind) -> dict[AttemptOutcome, str]:
    return FAMILY_LABELS if kind is FollowUpKind.family_support else LABELS


router = APIRouter(include_in_schema=False)


def card(v: FollowUpView, zone: ZoneInfo, now: datetime, staff: dict | None = None) -> dict:
    """A follow-up as the team's list shows it; each attempt with when and by whom (``staff``: id -> person)."""
    o, p = v.opened, v.opened.person
    labels = labels_for(o.kind)
    staff = staff or {}

    def attempt(a) -> str:
        by = staff[a.recorded_by].display_name if a.recorded_by in staff else a.recorded_by
        return f"{labels.get(a.outcome, a.outcome.value)}, {local_time(a.attempted_at, zone)} by {by}"

    return {"task_id": o.task_id, "kind": o.kind.value, "name": (p.display_name if p else None) or "name not known",
            "family": o.kind is FollowUpKind.family_support, "buttons": list(labels.items()),
            "address": (p.contact_address if p else None) or "no address", "phone": p.phone if p else None,
            "source": p.address_source.value if p else "unknown", "location": o.location_description,
            "due": local_time(o.due_at, zone), "overdue": o.due_at <= now,
            "attempts": [attempt(a) for a in sorted(v.attempts.values(), key=lambda a: a.attempted_at)],
            "warned": v.warned}


@router.get("/console/qrt", response_class=HTMLResponse)
async def follow_ups(request: Request, clock: AppClock, model: QrtModel, publisher: Events, reference: Reference,
                     sessions: ConsoleSessions, done: str = "") -> HTMLResponse:
    viewer = sessions.require(request, *TEAM_ROLES)
    sites = [s for s in reference.sites.values() if s.quick_response and s.site_id in viewer.staff.sites]
    now = clock.now()
    lists = []
    for site in sites:
        await audit_list_read(site.site_id, viewer.staff, DisclosureChannel.console, publisher, clock)
        lists.append({"site": site.name, "cards": [card(v, site.zone, now, reference.case_managers)
                                                      for v in model.open_list(site.site_id)],
                      "funnel": model.funnel(site.site_id, week_of(now)).__dict__})
    recorded = next((label for outcome, label in LABELS.items() if outcome.value == done), "")
    return page("qrt/follow_ups.html", "Overdose follow-ups", viewer, package=TEMPLATES, lists=lists,
                done=recorded)


@router.post("/console/qrt/{task_id}/attempts")
async def attempt(request: Request, task_id: str, clock: AppClock, model: QrtModel, publisher: Events,
                  sessions: ConsoleSessions, shown: CaughtUp, outcome: str = Form(""), tap: str = Form(""),
                  csrf_token: str = Form("")) -> Response:
    viewer = sessions.require(request, *TEAM_ROLES)
    sessions.check_csrf(viewer, csrf_token)
    view = model.follow_ups.get(task_id)
    if view is None:
        raise ApiError(404, "task_id", "no such follow-up")
    if view.opened.site_id not in viewer.staff.sites:
        raise ApiError(403, "task_id", "not a follow-up of your sites")
    try:
        chosen = AttemptOutcome(outcome)
    except ValueError:
        raise ApiError(422, "outcome", "not an attempt outcome") from None
    if chosen not in labels_for(view.opened.kind):
        raise ApiError(422, "outcome", "a family-support follow-up has no treatment step")
    # ``tap`` is the page's own nonce: a double tap or a resubmitted form is one attempt.
    await log_attempt(task_id, view.opened.site_id, chosen, viewer.id, clock.now(), tap[:64] or None, publisher)
    await shown(QRT_FOLLOW_UPS)  # the list it leads to has the attempt in the card's history
    return RedirectResponse(f"/console/qrt?done={chosen.value}", status_code=303)
