"""Self-referral over HTTP: the walk-in intake for CAD and station systems, and the coordinators' API.

- ``POST /v1/walk-ins`` (agency token): someone asked for help, validated like every intake (400,
  413, 415, 422 naming the field, 403 for another agency's site, 503 with Retry-After while Kafka
  is away). Idempotent by ``walk_in_event_id``: a retry pages nobody twice.
- ``GET /v1/walk-ins?site_id=`` (staff of the site): open walk-ins, those nobody took first; ids,
  station, times and milestones (the person's first name is for the volunteer who took it only).
- ``POST /v1/walk-ins/{case_id}/milestones``: a milestone, as a coordinator records it
  (``Idempotency-Key`` makes a retried submission the same record).
- ``GET /v1/walk-ins/figures?site_id=&month=``: walk-ins -> accepted -> on scene -> placed, with the
  median times to a volunteer on scene and to placement.
- ``GET /v1/walk-ins/expenses?site_id=&month=``: the month's volunteer expenses as CSV, for reimbursement.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from services.kernel.cad import CadWalkInReported
from services.kernel.clock import Clock
from services.kernel.errors import Rejected
from services.kernel.reference import Agency, CaseManager, ReferenceData, Site
from services.kernel.topics import CAD_WALK_INS
from services.platform.logs import correlation_scope, get_logger
from services.self_referral.domain.figures import WalkInReadModel, WalkInView, month_of
from services.self_referral.domain.walk_in import case_id_for, check_walk_in
from services.self_referral.events import VolunteerExpenseClaimed, WalkInMilestone
from services.self_referral.service import log_milestone
from services.web.deps import AppClock, Events, Limits, Reference, app_state
from services.web.web import (
    ApiError,
    bearer_principal,
    correlation_id_for,
    csv_cell,
    intake_refused,
    own_agency,
    published_or_503,
    time_given,
)

log = get_logger(__name__)
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
EXPENSE_COLUMNS = ("volunteer_id", "volunteer", "case_id", "incurred_on", "kind", "miles", "amount")


class WalkInAcceptedReply(BaseModel):
    status: str = "accepted"
    correlation_id: str
    walk_in_event_id: str
    case_id: str


class MilestoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    milestone: WalkInMilestone
    at: datetime | None = None


class WalkInOut(BaseModel):
    case_id: str
    site_id: str
    station: str
    occurred_at: datetime
    paged: int
    accepted_by: str | None
    accepted_at: datetime | None
    milestones: dict[str, datetime]
    escalated: list[str]


def walk_in_out(v: WalkInView, reference: ReferenceData) -> WalkInOut:
    site = reference.site(v.opened.site_id)
    station = site.self_referral.stations.get(v.opened.station_id) if site and site.self_referral else None
    volunteer = reference.volunteers.get(v.accepted.volunteer_id) if v.accepted else None
    return WalkInOut(case_id=v.opened.case_id, site_id=v.opened.site_id,
                     station=station.name if station else v.opened.station_id, occurred_at=v.opened.occurred_at,
                     paged=len(v.opened.paged),
                     accepted_by=(volunteer.display_name if volunteer else v.accepted.volunteer_id) if v.accepted
                     else None, accepted_at=v.accepted.accepted_at if v.accepted else None,
                     milestones={m.value: at for m, at in v.reached.items()}, escalated=list(v.escalated))


def expenses_csv(claims: list[VolunteerExpenseClaimed], reference: ReferenceData) -> str:
    """One row per claim, then one total per volunteer: what the program reimburses."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPENSE_COLUMNS)
    totals: dict[str, int] = {}
    for c in claims:
        name = getattr(reference.volunteers.get(c.volunteer_id), "display_name", "")
        writer.writerow([csv_cell(v) for v in (c.volunteer_id, name, c.case_id, c.incurred_on.isoformat(), c.kind.value,
                                            "" if c.miles is None else f"{c.miles:g}", f"{c.amount_cents / 100:.2f}")])
        totals[c.volunteer_id] = totals.get(c.volunteer_id, 0) + c.amount_cents
    for volunteer_id, cents in totals.items():
        name = getattr(reference.volunteers.get(volunteer_id), "display_name", "")
        writer.writerow([csv_cell(volunteer_id), csv_cell(name), "total", "", "", "", f"{cents / 100:.2f}"])
    return out.getvalue()


router = APIRouter(tags=["Self-referral"])
agency_principal = bearer_principal(lambda reference: reference.agencies.values(), "an agency")
staff = bearer_principal(lambda reference: reference.case_managers.values(), "a staff member")
WalkInModel = Annotated[WalkInReadModel, Depends(app_state("walk_in_model"))]


def site_of(reference: ReferenceData, person: CaseManager, site_id: str) -> Site:
    if site_id not in person.sites:
        raise ApiError(403, "site_id", "not one of your sites")
    site = reference.site(site_id)
    if site is None or site.self_referral is None:
        raise ApiError(404, "site_id", "the site runs no self-referral pathway")
    return site


def month_or_now(clock: Clock, month: str | None) -> str:
    if month is None:
        return month_of(clock.now())
    if not MONTH.match(month):
        raise ApiError(422, "month", "must be YYYY-MM")
    return month


@router.post("/v1/walk-ins", status_code=202, response_model=WalkInAcceptedReply,
             responses={400: {}, 401: {}, 403: {}, 413: {}, 415: {}, 422: {}, 503: {}},
             summary="Someone asked the police for help (self-referral: pages the volunteer pool)")
async def submit_walk_in(walk_in: CadWalkInReported, request: Request, clock: AppClock, publisher: Events,
                         reference: Reference, limits: Limits, agency: Agency = Depends(agency_principal)) -> WalkInAcceptedReply:
    own_agency(agency.agency_id, walk_in.agency_id)
    try:
        site, _ = check_walk_in(walk_in, reference.site(walk_in.site_id), agency, clock.now(), limits.window)
    except Rejected as exc:
        raise intake_refused(exc, ("site_id",)) from None
    with correlation_scope(correlation_id_for(request, walk_in)) as cid:
        await published_or_503(publisher.publish(CAD_WALK_INS, walk_in.walk_in_event_id, walk_in),
                               limits.publish_timeout_seconds, "walk_in")
    log.info("walk_in_accepted_for_paging", agency_id=agency.agency_id, site_id=site.site_id)
    return WalkInAcceptedReply(correlation_id=cid, walk_in_event_id=walk_in.walk_in_event_id,
                               case_id=case_id_for(walk_in.walk_in_event_id))


@router.get("/v1/walk-ins", response_model=list[WalkInOut], summary="Open walk-ins, those nobody took first")
async def open_walk_ins(site_id: str, model: WalkInModel, reference: Reference,
                        person: CaseManager = Depends(staff)) -> list[WalkInOut]:
    site_of(reference, person, site_id)
    return [walk_in_out(v, reference) for v in model.open_list(site_id)]


@router.post("/v1/walk-ins/{case_id}/milestones", status_code=202, summary="Record a walk-in's milestone")
async def milestone(case_id: str, body: MilestoneIn, clock: AppClock, model: WalkInModel, publisher: Events,
                    reference: Reference, limits: Limits, person: CaseManager = Depends(staff),
                    idempotency_key: str | None = Header(None, max_length=128)) -> dict:
    view = model.walk_ins.get(case_id)
    if view is None:
        raise ApiError(404, "case_id", "no such walk-in")
    site_of(reference, person, view.opened.site_id)
    at = time_given("at", body.at, clock.now(), limits.window)
    milestone_id = await published_or_503(
        log_milestone(case_id, view.opened.site_id, body.milestone, person.case_manager_id, at, idempotency_key,
                      publisher), limits.publish_timeout_seconds, "walk_in")
    return {"status": "accepted", "milestone_id": milestone_id}


@router.get("/v1/walk-ins/figures", summary="Walk-ins -> accepted -> on scene -> placed, one month")
async def figures(site_id: str, clock: AppClock, model: WalkInModel, reference: Reference,
                  month: str | None = Query(None), person: CaseManager = Depends(staff)) -> dict:
    site = site_of(reference, person, site_id)
    chosen = month_or_now(clock, month)
    return {"site_id": site_id, "month": chosen,
            "placement_target_hours": site.self_referral.placement_target_hours,
            **model.month(site_id, chosen, site.self_referral.placement_target_hours, site.zone).__dict__}


@router.get("/v1/walk-ins/expenses", response_class=Response, summary="A month's volunteer expenses (CSV)")
async def expenses(site_id: str, clock: AppClock, model: WalkInModel, reference: Reference,
                   month: str | None = Query(None), person: CaseManager = Depends(staff)) -> Response:
    site_of(reference, person, site_id)
    if person.role not in ("program_manager", "outreach"):
        raise ApiError(403, "role", "expenses are for the program's coordinators and managers")
    chosen = month_or_now(clock, month)
    return Response(expenses_csv(model.expenses_of(site_id, chosen), reference), media_type="text/csv",
                    headers={"Cache-Control": "no-store",
                             "Content-Disposition": f'attachment; filename="expenses-{site_id}-{chosen}.csv"'})

