"""Staff API: case managers record engagement; program managers read the funnel; outreach staff
get their worklist. Every route needs a staff bearer token, scoped to that person's sites.

Illegal lifecycle moves are refused here at once (409, naming both statuses) from the read model;
the worker, which owns the lifecycle, checks again when it applies the event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict

from services.kernel.clock import Clock
from services.kernel.events import (
    DisclosureChannel,
    Milestone,
    ReferralStatus,
    ReferredPerson,
    StatusReason,
)
from services.kernel.reference import CaseManager
from services.messaging.kafka import Publisher
from services.platform.logs import get_logger, incident_correlation_id
from services.referral_intake.adapters.read_model import HandoffDetails, LeadReadModel
from services.referral_intake.domain.lifecycle import (
    IllegalTransition,
)
from services.referral_intake.domain.pathways import ENGAGEMENT_TARGET, ENROLLMENT_TARGET
from services.referral_intake.domain.views import ReferralView, funnel
from services.referral_intake.entrypoints.http_api import ReadModel
from services.referral_intake.service import (
    ChangeStatus,
    RecordEngagement,
    disclose_identity,
    handle_staff_command,
    record_consent_revoked,
)
from services.web.deps import AppClock, Events, Reference, app_state
from services.web.web import ApiError, bearer_principal

log = get_logger(__name__)


def _fhir_spelling(value):
    # FHIR writes codes with hyphens (in-progress, entered-in-error); the events use underscores.
    return value.replace("-", "_") if isinstance(value, str) else value


class EngagementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    milestone: Annotated[Milestone, BeforeValidator(_fhir_spelling)]
    reason: Annotated[StatusReason, BeforeValidator(_fhir_spelling)] | None = None
    occurred_at: AwareDatetime | None = None


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Annotated[ReferralStatus, BeforeValidator(_fhir_spelling)]
    reason: Annotated[StatusReason, BeforeValidator(_fhir_spelling)] | None = None


class PersonOut(BaseModel):
    """Who the referral is about; each value null once erased (the person's data key destroyed)."""

    first_name: str | None
    last_name: str | None
    date_of_birth: date | None


class ReferralOut(BaseModel):
    referral_id: str
    site_id: str
    referral_type: str
    status: str
    referred_at: datetime
    intake_due_at: datetime
    milestones: dict[str, datetime]
    flags: list[str]
    acknowledged_by: str | None
    seconds_to_acknowledge: float | None
    seconds_to_contact: float | None
    person: PersonOut | None = None  # only for the case manager who took the referral; audited

    @classmethod
    def of(cls, v: ReferralView, person: ReferredPerson | None = None) -> ReferralOut:
        return cls(referral_id=v.referral_id, site_id=v.site_id, referral_type=v.referral_type, status=v.status,
                   referred_at=v.referred_at, intake_due_at=v.intake_due_at, milestones=v.milestones, flags=v.flags,
                   acknowledged_by=v.acknowledged_by, seconds_to_acknowledge=v.seconds_to_acknowledge(),
                   seconds_to_contact=v.seconds_to_contact(),
                   person=PersonOut(first_name=person.first_name, last_name=person.last_name,
                                    date_of_birth=person.date_of_birth) if person else None)


router = APIRouter(tags=["LEAD staff"])
staff = bearer_principal(lambda reference: reference.case_managers.values(), "a staff member")
Details = Annotated[HandoffDetails, Depends(app_state("handoff_details"))]
# What became of each child Handle With Care heard of at an incident (states and times, no names), for the
# program's view of one incident: another service's, joined by the composition root.
ChildrenAtIncident = Annotated[Callable[[str, str], list[dict]], Depends(app_state("children_at_incident"))]


def site_of(person: CaseManager, site_id: str) -> None:
    if site_id not in person.sites:
        raise ApiError(403, "site_id", "not one of your sites")


async def handle(publisher: Publisher, clock: Clock, command: RecordEngagement | ChangeStatus,
                 view: ReferralView) -> str:
    try:
        return await handle_staff_command(command, view, publisher, clock)
    except IllegalTransition as exc:
        raise ApiError(409, exc.field, exc.detail) from None


def referral(model: LeadReadModel, person: CaseManager, referral_id: str) -> ReferralView:
    view = model.views.get(referral_id)
    if view is None:
        raise ApiError(404, "referral_id", "no such referral")
    site_of(person, view.site_id)
    return view


@router.get("/v1/referrals/{referral_id}", response_model=ReferralOut, summary="A referral's lifecycle and clock")
async def get_referral(referral_id: str, clock: AppClock, details: Details, model: ReadModel, publisher: Events,
                       person: CaseManager = Depends(staff)) -> ReferralOut:
    view = referral(model, person, referral_id)
    return ReferralOut.of(view, await disclose_identity(view, person.case_manager_id, details.people, publisher, clock,
                                                        DisclosureChannel.api))


@router.post("/v1/referrals/{referral_id}/engagement", status_code=202, summary="Record a contact or milestone")
async def record_engagement_route(referral_id: str, body: EngagementIn, clock: AppClock, model: ReadModel,
                                  publisher: Events, person: CaseManager = Depends(staff),
                                  idempotency_key: str | None = Header(None)) -> dict:
    command = RecordEngagement(referral_id, body.milestone, person.case_manager_id, body.reason, body.occurred_at,
                               idempotency_key)
    return {"status": "accepted", "engagement_id": await handle(publisher, clock, command, referral(model, person, referral_id))}


@router.post("/v1/referrals/{referral_id}/status", status_code=202, summary="Change a referral's status")
async def change_status(referral_id: str, body: StatusIn, clock: AppClock, model: ReadModel, publisher: Events,
                        person: CaseManager = Depends(staff)) -> dict:
    await handle(publisher, clock, ChangeStatus(referral_id, body.status, person.case_manager_id, body.reason),
                 referral(model, person, referral_id))
    return {"status": "accepted"}


@router.post("/v1/referrals/{referral_id}/consent/revoke", status_code=202,
             summary="Record the person's revocation of their consent: what it covered is erased")
async def revoke_consent(referral_id: str, clock: AppClock, model: ReadModel, publisher: Events,
                         person: CaseManager = Depends(staff)) -> dict:
    """42 CFR Part 2: the person revoked their consent. Nothing of them is disclosed from now on, and their
    personal values are erased wherever a copy is (their data keys are destroyed, with a receipt on the audit
    topic); the referral's states and times stay in the figures."""
    await record_consent_revoked(referral(model, person, referral_id), person.case_manager_id, publisher, clock)
    return {"status": "accepted"}


@router.get("/v1/sites/{site_id}/funnel", summary="Referrals, contact, enrollment, engagement by type and week")
async def site_funnel(site_id: str, model: ReadModel, person: CaseManager = Depends(staff)) -> dict:
    site_of(person, site_id)
    return {"site_id": site_id, "enrollment_target": ENROLLMENT_TARGET, "engagement_target": ENGAGEMENT_TARGET,
            "rows": [row.__dict__ for row in funnel(model.for_site(site_id))]}


@router.get("/v1/agencies/{agency_id}/incidents/{incident_id}", summary="One CAD incident's outcomes, LEAD and "
            "Handle With Care together (program managers)")
async def incident(agency_id: str, incident_id: str, children_at_incident: ChildrenAtIncident, model: ReadModel,
                   reference: Reference, person: CaseManager = Depends(staff)) -> dict:
    agency = reference.agencies.get(agency_id)
    if person.role not in ("program_manager", "administrator"):
        raise ApiError(403, "role", "for program managers")
    if agency is None or not any(person.sees_site(site_id) for site_id in agency.sites):
        raise ApiError(403, "agency_id", "no agency of your sites")
    return {"agency_id": agency_id, "incident_id": incident_id,
            "correlation_id": incident_correlation_id(agency_id, incident_id),
            "referrals": [ReferralOut.of(v).model_dump(mode="json") for v in model.for_incident(agency_id, incident_id)
                          if person.sees_site(v.site_id)],
            "handle_with_care": children_at_incident(agency_id, incident_id)}


@router.get("/v1/sites/{site_id}/outreach-worklist", response_model=list[ReferralOut],
            summary="Open referrals with no recent contact or an intake deadline at risk")
async def outreach_worklist(site_id: str, model: ReadModel, person: CaseManager = Depends(staff)) -> list[ReferralOut]:
    site_of(person, site_id)
    return [ReferralOut.of(v) for v in model.outreach_worklist(site_id)]
