"""Self-referral on screen: the volunteer's link (phone-first) and the coordinators' view.

- ``/walk-in/{token}``: the signed link in a volunteer's page. GET shows where and since when, and
  one button; only POST acts (mail scanners and link previews fetch GET links). The first to accept
  takes it; the others see it is taken. The one who took it sees the person's first name (audited)
  and records milestones and expenses from the same page, in one tap each.
- ``/console/walk-ins``: the coordinators' and managers' view: open walk-ins, nobody-took-it first,
  the month's figures, and the month's expenses as CSV.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.delivery.links import AckLinks, InvalidLink
from services.kernel.clock import Clock
from services.kernel.events import (
    DisclosureChannel,
)
from services.kernel.reference import ReferenceData, Volunteer
from services.messaging.events import DisclosedRecord
from services.messaging.kafka import Publisher
from services.messaging.outbox import audit_shown
from services.self_referral.domain.figures import WalkInReadModel, WalkInView, month_of
from services.self_referral.entrypoints.http_api import MONTH, WalkInModel, expenses_csv
from services.self_referral.events import ExpenseKind, WalkInMilestone
from services.self_referral.service import claim_expense, log_milestone, volunteer_accepts
from services.web.console import ConsoleSessions, local_time, page
from services.web.deps import AppClock, Events, Reference, app_state
from services.web.render import render_page
from services.web.web import ApiError, sentence

TEMPLATES = "services.self_referral.entrypoints"  # its templates/ folder
PURPOSE = "walk-in"
STAFF_ROLES = ("program_manager", "outreach", "case_manager")
MILESTONES = {WalkInMilestone.volunteer_arrived: "I'm here", WalkInMilestone.assessed: "Assessed",
              WalkInMilestone.placement_found: "Placement found", WalkInMilestone.transported: "Transported",
              WalkInMilestone.placed: "Placed in treatment", WalkInMilestone.declined: "Declined"}


def link_for(links: AckLinks, case_id: str, volunteer_id: str) -> str:
    """The volunteer's own link to a walk-in: accept, then milestones and expenses."""
    return f"{links.base_url}/walk-in/{links.token(PURPOSE, case_id, volunteer_id)}"


router = APIRouter(include_in_schema=False)
VolunteerLinks = Annotated[AckLinks, Depends(app_state("walk_in_links"))]  # signed, one per volunteer paged


def holder(links: AckLinks, reference: ReferenceData, model: WalkInReadModel,
           token: str) -> tuple[WalkInView, Volunteer] | HTMLResponse:
    try:
        case_id, volunteer_id = links.verify(PURPOSE, token)
    except InvalidLink as exc:
        return _said("Link not valid", str(exc).replace("acknowledgement link", "link"), 410)
    view = model.walk_ins.get(case_id)
    volunteer = reference.volunteers.get(volunteer_id)
    if view is None or volunteer is None:
        return _said("Walk-in not found", "This walk-in is not open any more, or not yet recorded: try again "
                     "in a moment.", 404)
    if volunteer_id not in view.opened.paged and (view.accepted is None
                                                  or view.accepted.volunteer_id != volunteer_id):
        return _said("Not yours", "This link is not for this walk-in.", 403)
    return view, volunteer


async def show(links: AckLinks, reference: ReferenceData, model: WalkInReadModel, publisher: Publisher, clock: Clock,
               token: str, done: str = "", refused: dict[str, str] | None = None,
               typed: dict[str, str] | None = None) -> HTMLResponse:
    """The volunteer's page; after a refused form, again with the reason beside its field (``refused``: field ->
    sentence) and what was typed kept (``typed``), never the API's JSON."""
    found = holder(links, reference, model, token)
    if isinstance(found, HTMLResponse):
        return found
    view, volunteer = found
    site = reference.site(view.opened.site_id)
    pathway = site.self_referral if site else None
    station = pathway.stations.get(view.opened.station_id) if pathway else None
    mine = view.accepted is not None and view.accepted.volunteer_id == volunteer.volunteer_id
    if mine:  # the first name: for the volunteer who took it, audited
        await audit_shown(publisher, clock, DisclosedRecord.walk_in_details, view.opened.case_id,
                          volunteer.volunteer_id, volunteer.role, DisclosureChannel.console)
    taken = view.accepted is not None and not mine
    said = {"accept": "Thank you: you are recorded as on your way.", "milestone": "Recorded.",
            "expense": "Expense recorded."}.get(done, "")
    return render_page(
        "walk_ins/volunteer.html", title="Walk-in", package=TEMPLATES, narrow=True, said=said,
        status=422 if refused else 200, refused=refused or {}, typed=typed or {},
        claimed=claimed_by(model, view.opened.case_id, volunteer.volunteer_id) if mine else [],
        recording=done == "accept" and view.accepted is None,  # the read model has not caught up yet
        station=station, since=local_time(view.opened.occurred_at, site.zone if site else None),
        taken=taken, mine=mine, closed=view.closed_by is not None,
        first_name=view.opened.first_name if mine else None,
        reached=[(MILESTONES[m], local_time(at, site.zone if site else None)) for m, at in view.reached.items()],
        milestones=[(m.value, label) for m, label in MILESTONES.items() if m not in view.reached],
        expense_kinds=[k.value for k in ExpenseKind], today=clock.now().astimezone(
            site.zone if site else None).date().isoformat(),
        nonce=uuid.uuid4().hex[:16])  # one per showing: a double tap or a resubmitted form is one record


@router.get("/walk-in/{token}", response_class=HTMLResponse)
async def volunteer_page(token: str, clock: AppClock, links: VolunteerLinks, model: WalkInModel, publisher: Events,
                         reference: Reference, done: str = "") -> HTMLResponse:
    return await show(links, reference, model, publisher, clock, token, done)


@router.post("/walk-in/{token}")
async def volunteer_acts(token: str, clock: AppClock, links: VolunteerLinks, model: WalkInModel, publisher: Events,
                         reference: Reference, action: str = Form(""), milestone: str = Form(""),
                         kind: str = Form(""), miles: str = Form(""), amount: str = Form(""),
                         incurred_on: str = Form(""), tap: str = Form("")) -> Response:
    found = holder(links, reference, model, token)
    if isinstance(found, HTMLResponse):
        return found
    view, volunteer = found
    now, case_id, site_id = clock.now(), view.opened.case_id, view.opened.site_id
    if action == "accept":
        if view.accepted is not None and view.accepted.volunteer_id != volunteer.volunteer_id:
            return _said("Already taken", "Another volunteer took this walk-in. Thank you.", 409)
        await volunteer_accepts(case_id, volunteer.volunteer_id, now, publisher)
    else:
        if view.accepted is None or view.accepted.volunteer_id != volunteer.volunteer_id:
            return _said("Not yet yours", "Accept the walk-in first (or it was taken by another volunteer).", 409)
        if action == "milestone":
            try:
                chosen = WalkInMilestone(milestone)
            except ValueError:
                raise ApiError(422, "milestone", "not a walk-in milestone") from None
            await log_milestone(case_id, site_id, chosen, volunteer.volunteer_id, now, tap[:64] or None, publisher)
        elif action == "expense":
            site = reference.site(site_id)
            try:
                day = _day(incurred_on, view.opened.occurred_at.astimezone(site.zone).date(),
                           now.astimezone(site.zone).date())
                await claim_expense(case_id, site_id, volunteer.volunteer_id, ExpenseKind(kind),
                                    _number("miles", miles), _cents(amount), day, site.self_referral, now,
                                    tap[:64] or None, publisher)
            except ValueError as exc:  # the page again, the reason beside the field and what was typed kept
                field, _, reason = str(exc).partition(": ")
                field, reason = (FORM_FIELD.get(field, field), reason) if reason else (
                    "kind", "choose what the expense was for")
                return await show(links, reference, model, publisher, clock, token, refused={field: sentence(reason)},
                                  typed={"kind": kind, "miles": miles, "amount": amount, "incurred_on": incurred_on})
        else:
            raise ApiError(422, "action", "one of accept, milestone, expense")
    return RedirectResponse(f"/walk-in/{token}?done={action}", status_code=303)


@router.get("/console/walk-ins", response_class=HTMLResponse)
async def walk_ins(request: Request, clock: AppClock, model: WalkInModel, reference: Reference,
                   sessions: ConsoleSessions) -> HTMLResponse:
    viewer = sessions.require(request, *STAFF_ROLES)
    now = clock.now()
    sites = [s for s in reference.sites.values() if s.self_referral and s.site_id in viewer.staff.sites]
    boards = []
    for site in sites:
        pathway, month = site.self_referral, month_of(now.astimezone(site.zone))
        cards = []
        for v in model.open_list(site.site_id):
            volunteer = reference.volunteers.get(v.accepted.volunteer_id) if v.accepted else None
            station = pathway.stations.get(v.opened.station_id)
            cards.append({"case_id": v.opened.case_id, "station": station.name if station else v.opened.station_id,
                          "since": local_time(v.opened.occurred_at, site.zone), "paged": len(v.opened.paged),
                          "volunteer": volunteer.display_name if volunteer else None,
                          "reached": [MILESTONES[m] for m in v.reached], "escalated": v.escalated,
                          "overdue": v.opened.placement_due_at <= now})
        boards.append({"site": site, "cards": cards, "month": month,
                       "figures": model.month(site.site_id, month, pathway.placement_target_hours, site.zone).__dict__,
                       "target": pathway.placement_target_hours})
    return page("walk_ins/open.html", "Walk-ins", viewer, package=TEMPLATES, boards=boards,
                managers=viewer.role in ("program_manager", "outreach"))


@router.get("/console/walk-ins/expenses.csv")
async def expenses(request: Request, clock: AppClock, model: WalkInModel, reference: Reference,
                   sessions: ConsoleSessions, site_id: str = "", month: str = "") -> Response:
    viewer = sessions.require(request, "program_manager", "outreach")
    site = reference.site(site_id)
    if site is None or site.self_referral is None or site_id not in viewer.staff.sites:
        raise ApiError(403, "site_id", "not one of your self-referral sites")
    chosen = month or month_of(clock.now())
    if not MONTH.match(chosen):
        raise ApiError(422, "month", "must be YYYY-MM")
    return Response(expenses_csv(model.expenses_of(site_id, chosen), reference), media_type="text/csv",
                    headers={"Cache-Control": "no-store",
                             "Content-Disposition": f'attachment; filename="expenses-{site_id}-{chosen}.csv"'})


def claimed_by(model: WalkInReadModel, case_id: str, volunteer_id: str) -> list[dict]:
    """What the volunteer has claimed for this walk-in, in the order claimed."""
    mine = sorted((e for e in model.expenses.values() if e.case_id == case_id and e.volunteer_id == volunteer_id),
                  key=lambda e: e.claimed_at)
    return [{"kind": e.kind.value, "miles": e.miles, "amount": f"{e.amount_cents / 100:.2f}",
             "day": e.incurred_on.isoformat()} for e in mine]


FORM_FIELD = {"amount_cents": "amount"}  # the claim's field -> the form's, where they differ


def _said(title: str, text: str, status: int) -> HTMLResponse:
    return render_page("message.html", title=title, narrow=True, status=status, paragraphs=[text], alert=status >= 400,
                       back=None)


def _number(field: str, text: str) -> float | None:
    """A number as people type it: '24.5', '24,5' (a decimal comma), '$12', ' 7 '."""
    cleaned = text.strip().removeprefix("$").strip()
    if not cleaned:
        return None
    if "," in cleaned and "." not in cleaned and cleaned.count(",") == 1:
        cleaned = cleaned.replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(f"{field}: write a number, for example 12.5") from None
    if not 0 < value <= 1000:
        raise ValueError(f"{field}: must be above 0 and at most 1000")
    return value


def _cents(text: str) -> int | None:
    value = _number("amount", text)
    return None if value is None else round(value * 100)


def _day(text: str, walk_in_day: date, today: date) -> date:
    """The day an expense was paid: from the day before the walk-in (fuel on the way) to today."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError("incurred_on: not a date (YYYY-MM-DD)") from None
    if not walk_in_day - timedelta(days=1) <= day <= today:
        raise ValueError("incurred_on: must be between the walk-in and today")
    return day
