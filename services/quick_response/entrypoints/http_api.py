"""Quick Response Teams over HTTP: the overdose intake for CAD and EMS systems, and the team's API.

- ``POST /v1/overdoses`` (agency token): an overdose response, validated like every intake (400,
  413, 415, 422 naming the field, 403 for another agency's site, 503 with Retry-After while Kafka
  is away). Idempotent by ``overdose_event_id``: a retry opens nothing twice.
- ``GET /v1/qrt/follow-ups?site_id=`` (staff of the site): the team's list, the one due first on
  top, as JSON or CSV (``Accept: text/csv``); it names people and places, so every read is audited.
  ``?last_hours=24`` gives "overdoses in the last 24 hours" instead of what is still open.
- ``POST /v1/qrt/follow-ups/{task_id}/attempts``: one attempt, in one tap (``Idempotency-Key``
  makes a retried tap the same attempt).
- ``GET /v1/qrt/funnel?site_id=&week=``: overdose calls -> follow-ups -> contacted -> engaged ->
  referred to treatment, for one site and ISO week.
- ``GET /v1/qrt/state-report?site_id=&last_hours=24``: the state's 24-hour overdose report fields,
  where the site enables them (JSON or CSV; no one named; each read audited).
- ``GET /v1/public/overdoses``: the de-identified feed for public-health maps (no name, date of
  birth, address or free text; the hour; about a kilometre).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from services.kernel.cad import CadOverdoseResponded
from services.kernel.errors import Rejected
from services.kernel.events import (
    DisclosureChannel,
)
from services.kernel.reference import Agency, CaseManager
from services.kernel.topics import CAD_OVERDOSES
from services.messaging.events import DisclosedRecord
from services.messaging.outbox import audit_shown
from services.platform.logs import correlation_scope, get_logger
from services.quick_response.domain.figures import FollowUpView, QrtReadModel, week_of
from services.quick_response.domain.follow_up import check_overdose, plan, task_id_for
from services.quick_response.domain.state_report import COLUMNS as STATE_COLUMNS
from services.quick_response.domain.state_report import StateReportRow
from services.quick_response.events import AttemptOutcome, OverdoseReported
from services.quick_response.service import audit_list_read, log_attempt
from services.web.deps import AppClock, Events, Limits, Reference, app_state
from services.web.web import (
    ApiError,
    bearer_principal,
    correlation_id_for,
    csv_download,
    intake_refused,
    own_agency,
    published_or_503,
    time_given,
)

log = get_logger(__name__)
CSV_COLUMNS = ("task_id", "kind", "due_at", "occurred_at", "name", "contact_address", "address_source", "phone",
               "location", "attempts", "warned")


class OverdoseAccepted(BaseModel):
    status: str = "accepted"
    correlation_id: str
    overdose_event_id: str
    task_id: str | None  # None: no follow-up (fatal without family support, or no team at the site)


class AttemptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: AttemptOutcome
    attempted_at: datetime | None = None


class FollowUpOut(BaseModel):
    task_id: str
    site_id: str
    kind: str
    occurred_at: datetime
    due_at: datetime
    name: str | None
    contact_address: str | None
    address_source: str
    phone: str | None
    location: str | None
    attempts: list[str]
    warned: bool

    @classmethod
    def of(cls, v: FollowUpView) -> FollowUpOut:
        o, p = v.opened, v.opened.person
        return cls(task_id=o.task_id, site_id=o.site_id, kind=o.kind.value, occurred_at=o.occurred_at, due_at=o.due_at,
                   name=p.display_name if p else None, contact_address=p.contact_address if p else None,
                   address_source=p.address_source.value if p else "unknown", phone=p.phone if p else None,
                   location=o.location_description, attempts=[a.value for a in v.outcomes], warned=v.warned)


router = APIRouter(tags=["Quick Response Teams"])
agency_principal = bearer_principal(lambda reference: reference.agencies.values(), "an agency")
staff = bearer_principal(lambda reference: reference.case_managers.values(), "a staff member")
QrtModel = Annotated[QrtReadModel, Depends(app_state("qrt_model"))]


def site_of(person: CaseManager, site_id: str) -> None:
    if site_id not in person.sites:
        raise ApiError(403, "site_id", "not one of your sites")


@router.post("/v1/overdoses", status_code=202, response_model=OverdoseAccepted,
             responses={400: {}, 401: {}, 403: {}, 413: {}, 415: {}, 422: {}, 503: {}},
             summary="Report an overdose response (naloxone plus: opens the team's follow-up)")
async def submit_overdose(overdose: CadOverdoseResponded, request: Request, clock: AppClock, publisher: Events,
                          reference: Reference, limits: Limits, agency: Agency = Depends(agency_principal)) -> OverdoseAccepted:
    own_agency(agency.agency_id, overdose.agency_id)
    try:
        site = check_overdose(overdose, reference.site(overdose.site_id), agency, clock.now(), limits.window)
    except Rejected as exc:
        raise intake_refused(exc, ("site_id",)) from None
    with correlation_scope(correlation_id_for(request, overdose)) as cid:
        await published_or_503(publisher.publish(CAD_OVERDOSES, overdose.overdose_event_id, overdose),
                               limits.publish_timeout_seconds, "qrt")
    kind = plan(overdose, site.quick_response)[0] if site.quick_response else None
    log.info("overdose_accepted", agency_id=agency.agency_id, site_id=site.site_id)
    return OverdoseAccepted(correlation_id=cid, overdose_event_id=overdose.overdose_event_id,
                            task_id=task_id_for(overdose.overdose_event_id) if kind else None)


@router.get("/v1/qrt/follow-ups", response_model=list[FollowUpOut],
            summary="The team's list: open follow-ups (or the last hours' overdoses), due first on top")
async def follow_ups(site_id: str, clock: AppClock, model: QrtModel, publisher: Events, limits: Limits,
                     last_hours: int | None = Query(None, ge=1, le=24 * 14), accept: str | None = Header(None),
                     person: CaseManager = Depends(staff)) -> Response | list:
    site_of(person, site_id)
    now = clock.now()
    views = model.recent(site_id, now, hours=last_hours) if last_hours else model.open_list(site_id)
    rows = [FollowUpOut.of(v) for v in views]
    await published_or_503(audit_list_read(site_id, person, DisclosureChannel.api, publisher, clock),
                           limits.publish_timeout_seconds, "qrt")
    if accept and "text/csv" in accept:
        return csv_download(CSV_COLUMNS, ((r.task_id, r.kind, r.due_at, r.occurred_at, r.name, r.contact_address,
                                           r.address_source, r.phone, r.location, " ".join(r.attempts), r.warned)
                                          for r in rows), f"qrt-{site_id}.csv")
    return rows


@router.post("/v1/qrt/follow-ups/{task_id}/attempts", status_code=202, summary="Log one follow-up attempt")
async def record_attempt(task_id: str, body: AttemptIn, clock: AppClock, model: QrtModel, publisher: Events,
                         limits: Limits, person: CaseManager = Depends(staff),
                         idempotency_key: str | None = Header(None, max_length=128)) -> dict:
    view = model.follow_ups.get(task_id)
    if view is None:
        raise ApiError(404, "task_id", "no such follow-up")
    site_of(person, view.opened.site_id)
    attempted_at = time_given("attempted_at", body.attempted_at, clock.now(), limits.window)
    attempt_id = await published_or_503(log_attempt(task_id, view.opened.site_id, body.outcome,
                                                    person.case_manager_id, attempted_at, idempotency_key,
                                                    publisher), limits.publish_timeout_seconds, "qrt")
    return {"status": "accepted", "attempt_id": attempt_id}


@router.get("/v1/qrt/funnel", summary="Overdose calls -> follow-ups -> contacted -> engaged -> referred, one week")
async def funnel(site_id: str, clock: AppClock, model: QrtModel, week: date | None = None,
                 person: CaseManager = Depends(staff)) -> dict:
    site_of(person, site_id)
    monday = week_of(datetime.combine(week, datetime.min.time())) if week else week_of(clock.now())
    return {"site_id": site_id, "week": monday.isoformat(), **model.funnel(site_id, monday).__dict__}


@router.get("/v1/qrt/state-report", response_model=list[StateReportRow], summary="The state's 24-hour overdose report fields (where the site enables it)")
async def state_report(site_id: str, clock: AppClock, model: QrtModel, publisher: Events, reference: Reference,
                       limits: Limits, last_hours: int = Query(24, ge=1, le=24 * 7),
                       accept: str | None = Header(None), person: CaseManager = Depends(staff)) -> Response | list:
    site_of(person, site_id)
    site = reference.site(site_id)
    if site is None or site.quick_response is None or not site.quick_response.state_report:
        raise ApiError(404, "site_id", "the site does not report overdoses to the state through Handoff")
    agencies = frozenset(a.agency_id for a in reference.agencies.values() if site_id in a.sites)
    rows = model.state_report(site_id, clock.now() - timedelta(hours=last_hours), agencies)
    # No one is named, but time, place, age and sex together can point at someone: reads are audited.
    await published_or_503(audit_shown(publisher, clock, DisclosedRecord.qrt_state_report, site_id,
                                       person.case_manager_id, person.role, DisclosureChannel.api),
                           limits.publish_timeout_seconds, "qrt")
    if accept and "text/csv" in accept:
        return csv_download(STATE_COLUMNS, (r.as_dict().values() for r in rows), f"state-report-{site_id}.csv")
    return rows


@router.get("/v1/public/overdoses", response_model=list[OverdoseReported],
            summary="De-identified overdose responses for public-health maps")
async def public_feed(model: QrtModel, site_id: str | None = None, since: datetime | None = None,
                      person: CaseManager = Depends(staff)) -> list[OverdoseReported]:
    if site_id is not None:
        site_of(person, site_id)
    return [r for r in model.feed(site_id, since) if r.site_id in person.sites]

