"""Handle With Care over HTTP.

- Acknowledgement of a notice by its signed link (GET shows, POST acknowledges). The page shows
  nothing about the child or the incident: this only records that the school has the notice.
- District coordinators (bearer token): the triage queue of encounters with no known school,
  resolving one (which sends the notice), and the district's figures.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from services.core.clock import Clock, SystemClock
from services.core.console import local_time
from services.core.events import AcknowledgedVia, CadChildEncountered, HwcNoticeAcknowledged, HwcTriageResolved
from services.core.kafka import Publisher
from services.core.links import AckLinks
from services.core.logs import correlation_scope, get_logger
from services.core.reference import District, ReferenceData
from services.core.topics import CAD_CHILD_ENCOUNTERS, HWC_NOTICES, HWC_TRIAGE
from services.core.web import ApiError, add_ack_link_routes, bearer_principal
from services.handle_with_care.domain.figures import HwcReadModel
from services.handle_with_care.entrypoints.pages import notice_html

log = get_logger(__name__)


async def acknowledge_notice(notice_id: str, contact_id: str, publisher: Publisher, clock: Clock,
                             via: AcknowledgedVia = AcknowledgedVia.link) -> None:
    with correlation_scope():
        await publisher.publish(HWC_NOTICES, notice_id, HwcNoticeAcknowledged(
            notice_id=notice_id, contact_id=contact_id, via=via, acknowledged_at=clock.now()))
        log.info("hwc_ack_received", notice_id=notice_id, by=contact_id)


async def resolve_triage_item(cad_event_id: str, school_id: str, district: District, model: HwcReadModel,
                              reference: ReferenceData, publisher: Publisher, clock: Clock) -> None:
    """Place a triaged child at a school of the coordinator's district: the notice then goes out as usual."""
    item = model.triage.get(cad_event_id)
    if item is None:
        raise ApiError(404, "cad_event_id", "no such triage item")
    if item.opened.district_id != district.district_id:
        raise ApiError(403, "district_id", "not your district")
    if item.resolved is not None:
        raise ApiError(409, "cad_event_id", "already resolved")
    if school_id not in reference.schools:
        raise ApiError(422, "school_id", "unknown school")
    opened = item.opened
    with correlation_scope():
        await publisher.publish(HWC_TRIAGE, cad_event_id, HwcTriageResolved(
            cad_event_id=cad_event_id, school_id=school_id, resolved_by=district.coordinator.contact_id,
            resolved_at=clock.now()))
        # The encounter again, now placed: the usual path computes the deadline from the encounter time.
        await publisher.publish(CAD_CHILD_ENCOUNTERS, cad_event_id, CadChildEncountered(
            cad_event_id=cad_event_id, agency_id=opened.agency_id, incident_id=f"triage:{cad_event_id}",
            encountered_at=opened.encountered_at, child=opened.child, school_id=school_id))


def create_router(links: AckLinks, publisher: Publisher, clock: Clock | None = None, *,
                  reference: ReferenceData | None = None, model: HwcReadModel | None = None) -> APIRouter:
    clock = clock or SystemClock()
    api = APIRouter(tags=["Handle With Care"])

    async def acknowledge(notice_id: str, contact_id: str) -> None:
        await acknowledge_notice(notice_id, contact_id, publisher, clock)

    def notice_details(notice_id: str, _contact_id: str) -> str:
        """The notice itself, for the holder of its signed link (the school's contact)."""
        request = model.requests.get(notice_id) if model is not None else None
        school = reference.schools.get(request.school_id) if request and reference else None
        return notice_html(request, school) if school else ""

    def acknowledged(notice_id: str) -> str | None:
        view = model.notices.get(notice_id) if model is not None else None
        if view is None or view.acknowledged_at is None:
            return None
        school = reference.schools.get(view.school_id) if reference else None
        return f"by your school at {local_time(view.acknowledged_at, school.timezone if school else None)}"

    add_ack_link_routes(api, links, "notice", "Handle With Care", "Confirm that your school has received this notice.",
                        "Thank you. The notice is recorded as received.", acknowledge, details=notice_details,
                        acknowledged=acknowledged)

    coordinator_of = bearer_principal(lambda: [d.coordinator for d in (reference.districts.values() if reference else ())],
                                      "a district coordinator")

    def coordinator(contact=Depends(coordinator_of)) -> District:
        return next(d for d in reference.districts.values() if d.coordinator.contact_id == contact.contact_id)

    def own(district: District, district_id: str) -> None:
        if district.district_id != district_id:
            raise ApiError(403, "district_id", "not your district")

    @api.get("/v1/districts/{district_id}/triage", summary="Encounters with no known school, oldest first")
    async def triage_queue(district_id: str, district: District = Depends(coordinator)) -> list[dict]:
        own(district, district_id)
        return [{"cad_event_id": o.cad_event_id, "child": o.child.model_dump(mode="json"),
                 "school_name_hint": o.school_name_hint, "school_id_given": o.school_id_given,
                 "encountered_at": o.encountered_at.isoformat(), "due_at": o.due_at.isoformat() if o.due_at else None,
                 "agency_id": o.agency_id} for o in model.open_triage(district_id)]

    @api.post("/v1/triage/{cad_event_id}/resolve", status_code=202, summary="Place a triaged child at a school")
    async def resolve_triage(cad_event_id: str, body: TriageResolution,
                             district: District = Depends(coordinator)) -> dict:
        await resolve_triage_item(cad_event_id, body.school_id, district, model, reference, publisher, clock)
        return {"status": "accepted"}

    @api.get("/v1/districts/{district_id}/hwc-figures", summary="Notices sent, on time, acknowledged, escalated, unresolved")
    async def hwc_figures(district_id: str, district: District = Depends(coordinator)) -> dict:
        own(district, district_id)
        return {"district_id": district_id, "rows": [r.__dict__ for r in model.figures(clock.now(), district_id)]}

    return api


class TriageResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    school_id: str
