"""Handle With Care over HTTP.

- Acknowledgement of a notice by its signed link (GET shows, POST acknowledges). The page shows
  nothing about the child or the incident: this only records that the school has the notice.
- District coordinators (bearer token): the triage queue of encounters with no known school,
  resolving one (which sends the notice), and the district's figures.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict

from services.delivery.links import AckLinks
from services.handle_with_care.domain.figures import HwcReadModel
from services.handle_with_care.entrypoints.pages import notice_html
from services.handle_with_care.service import acknowledge_notice
from services.handle_with_care.triage import resolve_triage_item
from services.kernel.clock import Clock
from services.kernel.reference import Contact, District, ReferenceData
from services.messaging.kafka import Publisher
from services.platform.logs import get_logger
from services.web.console import ConsoleSessions, Viewer, local_time
from services.web.deps import AppClock, Events, Reference, app_state
from services.web.web import AckFlow, ApiError, ack_link_page, bearer_principal

log = get_logger(__name__)


router = APIRouter(tags=["Handle With Care"])
NoticeLinks = Annotated[AckLinks, Depends(app_state("ack_links"))]
HwcModel = Annotated[HwcReadModel, Depends(app_state("hwc_model"))]
coordinator_of = bearer_principal(lambda reference: [d.coordinator for d in reference.districts.values()],
                                  "a district coordinator")


def notice_flow(model: HwcReadModel, reference: ReferenceData, publisher: Publisher, clock: Clock,
                viewer: Viewer | None = None) -> AckFlow:
    """A school's contact acknowledges a notice by its signed link (``viewer``: who is signed in to the console on
    this browser, if anyone)."""

    async def acknowledge(notice_id: str, contact_id: str) -> None:
        await acknowledge_notice(notice_id, contact_id, publisher, clock)

    def notice_details(notice_id: str, _contact_id: str) -> Markup | str:
        """The notice, until the school has acknowledged it (a link forwarded after that shows no child). The child
        is named only to a contact of the school it was sent to, signed in: a link is a bearer token, and a
        forwarded one must not name the child to whoever holds it. Anyone else is offered the sign-in."""
        view = model.notices.get(notice_id)
        if view is not None and view.acknowledged_at is not None:
            return ""
        request = model.requests.get(notice_id)
        school = reference.schools.get(request.school_id) if request else None
        if request is None or school is None:
            return ""
        ours = viewer is not None and viewer.school is not None and viewer.school.school_id == school.school_id
        return notice_html(request, school, sign_in_to_see=None if ours else f"/console/notices/{notice_id}")

    def acknowledged(notice_id: str) -> str | None:
        """By which school and when: the holder of a forwarded link may be at another."""
        view = model.notices.get(notice_id)
        if view is None or view.acknowledged_at is None:
            return None
        school = reference.schools.get(view.school_id)
        return (f"by {school.name if school else 'the school'} at "
                f"{local_time(view.acknowledged_at, school.timezone if school else None)}")

    def gone(notice_id: str) -> str | None:
        """A notice whose retention ended: its figures stay, the notice (and the child's name) does not."""
        if notice_id in model.notices and notice_id not in model.requests:
            return ("This Handle With Care notice is no longer kept: its time is up, and the child's details were "
                    "deleted. There is nothing to acknowledge.")
        return None

    return AckFlow("notice", "Handle With Care", "Confirm that your school has received this notice.",
                   "Thank you. The notice is recorded as received.", acknowledge, details=notice_details,
                   acknowledged=acknowledged, gone=gone)


@router.get("/ack/notice/{token}", response_class=HTMLResponse, summary="Show the notice acknowledgement form")
async def show_notice(token: str, request: Request, links: NoticeLinks, model: HwcModel, reference: Reference,
                      publisher: Events, clock: AppClock, sessions: ConsoleSessions) -> HTMLResponse:
    viewer = sessions.viewer(request)
    return await ack_link_page(links, notice_flow(model, reference, publisher, clock, viewer), token, act=False)


@router.post("/ack/notice/{token}", response_class=HTMLResponse, summary="Acknowledge a notice")
async def acknowledge_notice_link(token: str, links: NoticeLinks, model: HwcModel, reference: Reference,
                                  publisher: Events, clock: AppClock) -> HTMLResponse:
    return await ack_link_page(links, notice_flow(model, reference, publisher, clock), token, act=True)


def coordinator(reference: Reference, contact: Contact = Depends(coordinator_of)) -> District:
    return next(d for d in reference.districts.values() if d.coordinator.contact_id == contact.contact_id)


def own(district: District, district_id: str) -> None:
    if district.district_id != district_id:
        raise ApiError(403, "district_id", "not your district")


@router.get("/v1/districts/{district_id}/triage", summary="Encounters with no known school, oldest first")
async def triage_queue(district_id: str, model: HwcModel, district: District = Depends(coordinator)) -> list[dict]:
    own(district, district_id)
    return [{"cad_event_id": o.cad_event_id, "child": o.child.model_dump(mode="json"),
             "school_name_hint": o.school_name_hint, "school_id_given": o.school_id_given,
             "roster_school_id": o.roster_school_id, "reason": o.reason, "reopened": o.reopened,
             "encountered_at": o.encountered_at.isoformat(), "due_at": o.due_at.isoformat() if o.due_at else None,
             "agency_id": o.agency_id} for o in model.open_triage(district_id)]


@router.post("/v1/triage/{cad_event_id}/resolve", status_code=202, summary="Place a triaged child at a school")
async def resolve_triage(cad_event_id: str, body: TriageResolution, model: HwcModel, reference: Reference,
                         publisher: Events, clock: AppClock, district: District = Depends(coordinator)) -> dict:
    await resolve_triage_item(cad_event_id, body.school_id, district, model, reference, publisher, clock)
    return {"status": "accepted"}


@router.get("/v1/districts/{district_id}/hwc-figures", summary="Notices sent, on time, acknowledged, escalated, unresolved")
async def hwc_figures(district_id: str, model: HwcModel, clock: AppClock,
                      district: District = Depends(coordinator)) -> dict:
    own(district, district_id)
    return {"district_id": district_id, "rows": [r.__dict__ for r in model.figures(clock.now(), district_id)]}


class TriageResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    school_id: str
