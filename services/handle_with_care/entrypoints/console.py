"""Handle With Care in the web console.

- School contacts: their school's notices and each notice with an Acknowledge button. A notice
  says who the child is and nothing else: there is nothing about the incident anywhere to show.
  Another school's notice is refused (403), whoever asks.
- District coordinators: the triage queue of encounters with no known school, each resolved by
  choosing a school of the district, and the district's notice figures.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from services.handle_with_care.domain.figures import HwcReadModel
from services.handle_with_care.entrypoints.http_api import HwcModel
from services.handle_with_care.entrypoints.pages import TEMPLATES, notice_html
from services.handle_with_care.events import HwcNoticeRequested
from services.handle_with_care.service import acknowledge_notice
from services.handle_with_care.topics import HWC_NOTICES, HWC_TRIAGE
from services.handle_with_care.triage import resolve_triage_item
from services.kernel.clock import Clock
from services.kernel.errors import CommandRefused
from services.kernel.events import (
    AcknowledgedVia,
)
from services.kernel.reference import ReferenceData
from services.web.console import ConsoleSessions, Viewer, bar_chart, local_time, page
from services.web.deps import AppClock, CaughtUp, Events, Reference
from services.web.render import percent
from services.web.web import ApiError

router = APIRouter(include_in_schema=False)


def own_notice(model: HwcReadModel, viewer: Viewer, notice_id: str) -> HwcNoticeRequested:
    request = model.requests.get(notice_id)
    if request is None:
        raise ApiError(404, "notice_id", "no such notice")
    if request.school_id != viewer.school.school_id:
        raise ApiError(403, "notice_id", "this notice is for another school")
    return request


@router.get("/console/notices", response_class=HTMLResponse)
async def notices(request: Request, model: HwcModel, reference: Reference, sessions: ConsoleSessions) -> HTMLResponse:
    viewer = sessions.require(request, "school_contact")
    mine = sorted((r for r in model.requests.values() if r.school_id == viewer.school.school_id),
                  key=lambda r: r.due_at, reverse=True)
    zone = reference.schools[viewer.school.school_id].timezone
    listed = [{"notice_id": r.notice_id, "child": f"{r.child.first_name} {r.child.last_name}",
               "due": _local(r.due_at, zone), "acknowledged": model.notices[r.notice_id].acknowledged_at is not None}
              for r in mine]
    return page("hwc/notices.html", f"Handle With Care notices: {viewer.school.name}", viewer, package=TEMPLATES,
                notices=listed)


@router.get("/console/notices/{notice_id}", response_class=HTMLResponse)
async def notice(request: Request, notice_id: str, model: HwcModel, sessions: ConsoleSessions, done: str = "") -> HTMLResponse:
    viewer = sessions.require(request, "school_contact")
    notice_request = own_notice(model, viewer, notice_id)
    view = model.notices[notice_id]
    acked = view.acknowledged_at is not None or done == "acknowledged"
    return page("hwc/notice.html", "Handle With Care notice", viewer, package=TEMPLATES, notice_id=notice_id,
                details=notice_html(notice_request, viewer.school), acknowledged=acked)


@router.post("/console/notices/{notice_id}/acknowledge")
async def acknowledge(request: Request, notice_id: str, clock: AppClock, model: HwcModel, publisher: Events,
                      sessions: ConsoleSessions, shown: CaughtUp, csrf_token: str = Form("")) -> Response:
    viewer = sessions.require(request, "school_contact")
    sessions.check_csrf(viewer, csrf_token)
    own_notice(model, viewer, notice_id)
    await acknowledge_notice(notice_id, viewer.id, publisher, clock, AcknowledgedVia.link)
    await shown(HWC_NOTICES)
    return RedirectResponse(f"/console/notices/{notice_id}?done=acknowledged", status_code=303)


@router.get("/console/triage", response_class=HTMLResponse)
async def triage(request: Request, clock: AppClock, model: HwcModel, reference: Reference,
                 sessions: ConsoleSessions, done: str = "") -> HTMLResponse:
    viewer = sessions.require(request, "coordinator")
    return triage_page(viewer, clock, model, reference, placed=bool(done))


def triage_page(viewer: Viewer, clock: Clock, model: HwcReadModel, reference: ReferenceData, *, placed: bool = False,
                refused: dict[str, str] | None = None, said: str = "", status: int = 200) -> HTMLResponse:
    """The district's triage queue. After a refused placement, again with the reason beside that child's school
    list (``refused``: by CAD event id); ``said``: a refusal about the queue itself."""
    district = viewer.district
    schools = [s for s in reference.schools.values() if s.district_id == district.district_id]
    zone = schools[0].timezone if schools else "UTC"
    items = [{"cad_event_id": opened.cad_event_id, "child": opened.child,
              "school_given": _school_given(opened, reference.schools), "reason": opened.reason,
              "reopened": opened.reopened,
              "encountered": _local(opened.encountered_at, zone),
              "due": _local(opened.due_at, zone) if opened.due_at else None,
              "refused": (refused or {}).get(opened.cad_event_id)}
             for opened in model.open_triage(district.district_id)]
    figures = model.figures(clock.now(), district.district_id)
    notices = sum(r.notices for r in figures)
    chart = bar_chart("Notices this term", [
        ("on time", sum(r.on_time for r in figures), f"{sum(r.on_time for r in figures)} of {notices}"),
        ("acknowledged", sum(r.acknowledged for r in figures), f"{sum(r.acknowledged for r in figures)} of {notices}"),
        ("escalated", sum(r.escalated for r in figures), str(sum(r.escalated for r in figures))),
    ], maximum=max(notices, 1))
    return page("hwc/triage.html", f"Triage queue: {district.name}", viewer, package=TEMPLATES, placed=placed,
                items=items, schools=schools, chart=chart, said=said, status=status)


# What a coordinator reads when a placement is refused: beside the child's school list, or above the queue.
SCHOOL_REFUSED = "Choose a school of your district for this child ({reason})."
QUEUE_REFUSED = {"not_found": "That child is no longer in the queue: nothing was sent.",
                 "conflict": "That child was already placed: nothing was sent twice. The queue below is as it stands."}


@router.post("/console/triage/{cad_event_id}/resolve")
async def resolve(request: Request, cad_event_id: str, clock: AppClock, model: HwcModel, publisher: Events,
                  reference: Reference, sessions: ConsoleSessions, shown: CaughtUp, school_id: str = Form(""),
                  csrf_token: str = Form("")) -> Response:
    viewer = sessions.require(request, "coordinator")
    sessions.check_csrf(viewer, csrf_token)
    try:
        if not school_id:
            raise CommandRefused("invalid", "school_id", "none was chosen")
        await resolve_triage_item(cad_event_id, school_id, viewer.district, model, reference, publisher, clock)
    except CommandRefused as exc:
        if exc.kind == "forbidden":
            raise
        beside = exc.field == "school_id"
        sentence = SCHOOL_REFUSED.format(reason=exc.reason) if beside else QUEUE_REFUSED.get(exc.kind, exc.reason)
        return triage_page(viewer, clock, model, reference, status=exc.status,
                           refused={cad_event_id: sentence} if beside else None, said="" if beside else sentence)
    await shown(HWC_TRIAGE)  # the queue it leads to no longer lists the child it placed
    return RedirectResponse("/console/triage?done=1", status_code=303)


def hwc_rates_chart(model: HwcReadModel, district_ids: set[str], now) -> Markup:
    """On-time and acknowledgement rates of the notices of ``district_ids`` (for program managers)."""
    rows = [r for d in district_ids for r in model.figures(now, d)]
    notices = sum(r.notices for r in rows)
    on_time = sum(r.on_time for r in rows) / notices if notices else None
    acked = sum(r.acknowledged for r in rows) / notices if notices else None
    return bar_chart(f"Handle With Care notices ({notices})", [
        ("on time", (on_time or 0) * 100, percent(on_time)), ("acknowledged", (acked or 0) * 100, percent(acked))],
        maximum=100)


def _school_given(opened, schools: dict | None = None) -> str:
    """What the officer gave (an id the directory does not know, a name, both, or nothing), and where the
    district's roster has the child when it disagrees."""
    known = (schools or {}).get(opened.school_id_given) if opened.school_id_given else None
    given = [(f'"{known.name}"' if known else f'id "{opened.school_id_given}" (not in the directory)')
             if opened.school_id_given else "",
             f'"{opened.school_name_hint}"' if opened.school_name_hint else ""]
    said = ", ".join(g for g in given if g) or "none"
    roster = (schools or {}).get(opened.roster_school_id) if opened.roster_school_id else None
    if opened.roster_school_id:
        said += f'; the district roster says "{roster.name if roster else opened.roster_school_id}"'
    return said


def _local(at, zone: str) -> str:
    return local_time(at, zone)
