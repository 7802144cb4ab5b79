"""HTTP intake for CAD systems that can only POST JSON (most of them, per the domain brief).

Validated by the same pydantic models as the Kafka intake, then published to the same CAD topics,
so one worker path handles both. Each agency authenticates with its own bearer token and may
only submit for its own sites. Answers:

- 202 with the referral id (deterministic: a retried POST gets the same id, and no second page) and the
  correlation id: the caller's ``X-Correlation-ID`` or ``traceparent`` when well formed, else the CAD
  incident's (``incident_id``: a referral and a child met at one call share it), else a new one;
- 400 for a body that is not JSON (naming where it breaks), 413 for a body over the size limit,
  415 for another content type (``services.web.web.RequestLimits``);
- 401 without a valid token, 403 for another agency's data or a site the agency does not serve;
- 409 for a ``cad_event_id`` already used with a different body (a changed referral needs a new id);
- 422 naming each bad field and the reason, never echoing the submitted values;
- 503 with Retry-After while Kafka is unreachable, so the CAD system retries instead of losing it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from services.kernel.cad import CadChildEncountered, CadReferralMade, unknown_fields
from services.kernel.errors import Rejected
from services.kernel.events import Event
from services.kernel.reference import Agency
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_REFERRALS, TopicSpec
from services.messaging.kafka import Publisher
from services.platform.logs import correlation_scope, get_logger
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.model import cad_fingerprint, check_referral, referral_id_for
from services.web.deps import AppClock, Events, IntakeLimits, Limits, Reference, app_state
from services.web.web import (
    ApiError,
    bearer_principal,
    correlation_id_for,
    intake_refused,
    own_agency,
    published_or_503,
)

log = get_logger(__name__)


class Accepted(BaseModel):
    status: str = "accepted"
    correlation_id: str


class ReferralAccepted(Accepted):
    referral_id: str
    duplicate: bool = False  # this CAD event was already received, with the same body: nothing new happens


class EncounterAccepted(Accepted):
    cad_event_id: str
    ignored_fields: list[str] = []  # fields Handle With Care does not know: dropped, never stored


router = APIRouter(tags=["CAD intake"])
authenticated_agency = bearer_principal(lambda reference: reference.agencies.values(), "an agency")
ReadModel = Annotated[LeadReadModel, Depends(app_state("read_model"))]


async def publish(publisher: Publisher, limits: IntakeLimits, topic: TopicSpec, key: str, event: Event) -> None:
    await published_or_503(publisher.publish(topic, key, event), limits.publish_timeout_seconds, "intake",
                           topic=topic.name)


@router.post("/v1/referrals", status_code=202, response_model=ReferralAccepted,
             responses={400: {}, 401: {}, 403: {}, 409: {}, 413: {}, 415: {}, 422: {}, 503: {}},
             summary="Submit a LEAD diversion referral")
async def submit_referral(referral: CadReferralMade, request: Request, reference: Reference, clock: AppClock,
                          publisher: Events, limits: Limits, model: ReadModel,
                          agency: Agency = Depends(authenticated_agency)) -> ReferralAccepted:
    own_agency(agency.agency_id, referral.agency_id)
    try:
        check_referral(referral, reference.site(referral.site_id), agency, clock.now(), limits.window)
    except Rejected as exc:
        raise intake_refused(exc, ("agency_id", "site_id")) from None
    referral_id = referral_id_for(referral.site_id, referral.agency_id, referral.cad_event_id)
    # The CAD body fingerprint of a referral already opened, if any: the same id with another body is refused.
    known = getattr(model.views.get(referral_id), "cad_fingerprint", None)
    if known is not None and known != cad_fingerprint(referral):
        log.warning("cad_event_id_reused_with_other_body", referral_id=referral_id, agency_id=agency.agency_id)
        raise ApiError(409, "cad_event_id", "already received with a different body; a changed or new referral "
                                            "needs a new cad_event_id")
    with correlation_scope(correlation_id_for(request, referral)) as cid:
        await publish(publisher, limits, CAD_REFERRALS, referral.cad_event_id, referral)
        log.info("referral_received", referral_id=referral_id, agency_id=agency.agency_id, duplicate=known is not None)
    return ReferralAccepted(referral_id=referral_id, correlation_id=cid, duplicate=known is not None)


@router.post("/v1/child-encounters", status_code=202, response_model=EncounterAccepted,
             responses={400: {}, 401: {}, 403: {}, 413: {}, 415: {}, 422: {}, 503: {}},
             summary="Report a child encountered at a call (Handle With Care)")
async def submit_child_encounter(encounter: CadChildEncountered, request: Request, clock: AppClock,
                                 publisher: Events, limits: Limits,
                                 agency: Agency = Depends(authenticated_agency)) -> EncounterAccepted:
    own_agency(agency.agency_id, encounter.agency_id)
    try:
        limits.window.check("encountered_at", encounter.encountered_at, clock.now())
    except Rejected as exc:
        raise intake_refused(exc) from None
    ignored = unknown_fields(CadChildEncountered, await request.json())
    with correlation_scope(correlation_id_for(request, encounter)) as cid:
        await publish(publisher, limits, CAD_CHILD_ENCOUNTERS, encounter.cad_event_id, encounter)
        log.info("child_encounter_received", cad_event_id=encounter.cad_event_id, agency_id=agency.agency_id,
                 ignored_fields=len(ignored))
    return EncounterAccepted(cad_event_id=encounter.cad_event_id, correlation_id=cid, ignored_fields=ignored)
