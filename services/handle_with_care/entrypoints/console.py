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

from services.handle_with_care.domain.figures import HwcReadModel
from services.handle_with_care.entrypoints.pages import notice_html
from services.handle_with_care.service import acknowledge_notice
from services.handle_with_care.triage import resolve_triage_item
from services.kernel.clock import Clock
from services.kernel.events import AcknowledgedVia, HwcNoticeRequested
from services.kernel.reference import ReferenceData
from services.messaging.kafka import Publisher
from services.web.console import (
    Sessions,
    Viewer,
    bar_chart,
    csrf_field,
    esc,
    local_time,
    page,
    percent,
    post_button,
)
from services.web.web import ApiError


def create_router(sessions: Sessions, reference: ReferenceData, model: HwcReadModel, publisher: Publisher,
                  clock: Clock) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    def own_notice(viewer: Viewer, notice_id: str) -> HwcNoticeRequested:
        request = model.requests.get(notice_id)
        if request is None:
            raise ApiError(404, "notice_id", "no such notice")
        if request.school_id != viewer.school.school_id:
            raise ApiError(403, "notice_id", "this notice is for another school")
        return request

    @api.get("/console/notices", response_class=HTMLResponse)
    async def notices(request: Request) -> HTMLResponse:
        viewer = sessions.require(request, "school_contact")
        mine = sorted((r for r in model.requests.values() if r.school_id == viewer.school.school_id),
                      key=lambda r: r.due_at, reverse=True)
        zone = reference.schools[viewer.school.school_id].timezone
        items = "".join(
            f'<li class=card><h2><a href="/console/notices/{esc(r.notice_id)}">Notice for '
            f'{esc(r.child.first_name)} {esc(r.child.last_name)}</a></h2>'
            f'<p>Before {esc(_local(r.due_at, zone))} · '
            f'{"acknowledged" if model.notices[r.notice_id].acknowledged_at else "<strong>not yet acknowledged</strong>"}'
            "</p></li>" for r in mine)
        body = f"<ul class=cards>{items}</ul>" if items else "<p>No notices for your school.</p>"
        return page(f"Handle With Care notices: {viewer.school.name}", body, viewer)

    @api.get("/console/notices/{notice_id}", response_class=HTMLResponse)
    async def notice(request: Request, notice_id: str, done: str = "") -> HTMLResponse:
        viewer = sessions.require(request, "school_contact")
        notice_request = own_notice(viewer, notice_id)
        view = model.notices[notice_id]
        acked = view.acknowledged_at is not None or done == "acknowledged"
        action = ('<p class=ok role=status>Acknowledged. Thank you.</p>' if acked else
                  post_button(f"/console/notices/{notice_id}/acknowledge", "Acknowledge", viewer))
        return page("Handle With Care notice", notice_html(notice_request, viewer.school) + action, viewer)

    @api.post("/console/notices/{notice_id}/acknowledge")
    async def acknowledge(request: Request, notice_id: str, csrf_token: str = Form("")) -> Response:
        viewer = sessions.require(request, "school_contact")
        sessions.check_csrf(viewer, csrf_token)
        own_notice(viewer, notice_id)
        await acknowledge_notice(notice_id, viewer.id, publisher, clock, AcknowledgedVia.link)
        return RedirectResponse(f"/console/notices/{notice_id}?done=acknowledged", status_code=303)

    @api.get("/console/triage", response_class=HTMLResponse)
    async def triage(request: Request, done: str = "") -> HTMLResponse:
        viewer = sessions.require(request, "coordinator")
        district = viewer.district
        schools = [s for s in reference.schools.values() if s.district_id == district.district_id]
        zone = schools[0].timezone if schools else "UTC"
        # Nothing preselected: a notice to the wrong school is the worst outcome, so the choice is made on purpose.
        options = '<option value="" selected disabled>Choose a school</option>' + "".join(
            f'<option value="{esc(s.school_id)}">{esc(s.name)}</option>' for s in schools)
        items = []
        for opened in model.open_triage(district.district_id):
            child = opened.child
            field = f"school-{esc(opened.cad_event_id)}"
            items.append(
                f'<li class=card><h2>{esc(child.first_name)} {esc(child.last_name)}</h2>'
                f"<p>Born {esc(child.date_of_birth.isoformat())} · school given: {esc(_school_given(opened))}"
                f" · encountered {esc(_local(opened.encountered_at, zone))}"
                + (f" · <strong>place before {esc(_local(opened.due_at, zone))}</strong>" if opened.due_at else "")
                + "</p>"
                f'<form method=post action="/console/triage/{esc(opened.cad_event_id)}/resolve" class=stack>'
                f"{csrf_field(viewer)}<label for={field}>Place at</label>"
                f"<select id={field} name=school_id required>{options}</select>"
                "<button type=submit>Send the notice to this school</button></form></li>")
        flash = '<p class=ok role=status>Placed: the notice is on its way.</p>' if done else ""
        queue = f"<ul class=cards>{''.join(items)}</ul>" if items else "<p>Nothing to triage.</p>"
        figures = model.figures(clock.now(), district.district_id)
        notices = sum(r.notices for r in figures)
        chart = bar_chart("Notices this term", [
            ("on time", sum(r.on_time for r in figures), f"{sum(r.on_time for r in figures)} of {notices}"),
            ("acknowledged", sum(r.acknowledged for r in figures), f"{sum(r.acknowledged for r in figures)} of {notices}"),
            ("escalated", sum(r.escalated for r in figures), str(sum(r.escalated for r in figures))),
        ], maximum=max(notices, 1))
        return page(f"Triage queue: {district.name}", flash + queue + f"<h2>Figures</h2>{chart}", viewer)

    @api.post("/console/triage/{cad_event_id}/resolve")
    async def resolve(request: Request, cad_event_id: str, school_id: str = Form(""),
                      csrf_token: str = Form("")) -> Response:
        viewer = sessions.require(request, "coordinator")
        sessions.check_csrf(viewer, csrf_token)
        await resolve_triage_item(cad_event_id, school_id, viewer.district, model, reference, publisher, clock)
        return RedirectResponse("/console/triage?done=1", status_code=303)

    return api


def hwc_rates_chart(model: HwcReadModel, district_ids: set[str], now) -> str:
    """On-time and acknowledgement rates of the notices of ``district_ids`` (for program managers)."""
    rows = [r for d in district_ids for r in model.figures(now, d)]
    notices = sum(r.notices for r in rows)
    on_time = sum(r.on_time for r in rows) / notices if notices else None
    acked = sum(r.acknowledged for r in rows) / notices if notices else None
    return bar_chart(f"Handle With Care notices ({notices})", [
        ("on time", (on_time or 0) * 100, percent(on_time)), ("acknowledged", (acked or 0) * 100, percent(acked))],
        maximum=100)


def _school_given(opened) -> str:
    """What the officer gave: an id the directory does not know, a name, both, or nothing."""
    given = [f'id "{opened.school_id_given}" (not in the directory)' if opened.school_id_given else "",
             f'"{opened.school_name_hint}"' if opened.school_name_hint else ""]
    return ", ".join(g for g in given if g) or "none"


def _local(at, zone: str) -> str:
    return local_time(at, zone)
