"""``POST /v1/eido``: a NENA EIDO from an agency's CAD or EIDO server (agency token).

Answers 202 with what the call became (each event's kind and id: referral, overdose, child
encountered) and what was left out and why; 200 ``nothing_to_map`` for a document with nothing to
act on (a call transfer, an incident type the agency's table ignores); 422 naming the field for an
EIDO that cannot be right; 503 with Retry-After while Kafka is away. The same document sent again
(or an update of it) maps to the same ids, which the intakes drop or apply as updates.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from services.cad_gateway.domain.calls import map_calls
from services.cad_gateway.domain.eido import NothingToMap, read_eido
from services.cad_gateway.service import publish_mapped
from services.kernel.errors import Rejected
from services.kernel.reference import Agency
from services.platform.logs import correlation_scope, get_logger
from services.web.deps import AppClock, Events, Limits, Reference
from services.web.web import bearer_principal, correlation_id_for, intake_refused, published_or_503

log = get_logger(__name__)
EIDO_BODY = Body(..., description="an Emergency Incident Data Object (JSON)")


router = APIRouter(tags=["CAD gateway"])
agency_principal = bearer_principal(lambda reference: reference.agencies.values(), "an agency")


@router.post("/v1/eido", status_code=202, responses={200: {}, 401: {}, 413: {}, 415: {}, 422: {}, 503: {}},
             summary="A NENA EIDO (NENA-STA-021 JSON): mapped through the agency's call-type table")
async def submit_eido(request: Request, reference: Reference, clock: AppClock, publisher: Events, limits: Limits,
                      document: Any = EIDO_BODY, agency: Agency = Depends(agency_principal)) -> JSONResponse:
    try:
        mapped = map_calls(read_eido(document), agency, reference.sites, clock.now(), limits.window)
    except NothingToMap as nothing:
        log.info("eido_nothing_to_map", agency_id=agency.agency_id)
        return JSONResponse({"status": "nothing_to_map", "reasons": [nothing.reason]}, status_code=200)
    except Rejected as exc:
        raise intake_refused(exc) from None
    if mapped.nothing:
        log.info("eido_nothing_to_map", agency_id=agency.agency_id)
        return JSONResponse({"status": "nothing_to_map", "reasons": mapped.skipped}, status_code=200)
    with correlation_scope(correlation_id_for(request, mapped.events[0][2])) as cid:  # the incident's
        published = await published_or_503(publish_mapped(mapped, publisher), limits.publish_timeout_seconds, "eido")
    log.info("eido_mapped", agency_id=agency.agency_id, events=len(published), skipped=len(mapped.skipped))
    return JSONResponse({"status": "accepted", "correlation_id": cid, "events": published,
                         "skipped": mapped.skipped}, status_code=202)
