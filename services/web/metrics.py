"""/metrics for Prometheus: the metrics token, a program manager's or a coordinator's bearer token.

What is scraped (the services' collectors, joined in one registry) is the composition root's to gather."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.web.deps import Reference, app_state
from services.web.web import ApiError


@dataclass(frozen=True)
class Scrape:
    """The registry a scrape reads, and the metrics token (None: only people's tokens)."""

    registry: CollectorRegistry
    token: str | None = None


router = APIRouter(include_in_schema=False)
bearer = HTTPBearer(auto_error=False)


@router.get("/metrics")
async def metrics(reference: Reference, scrape: Annotated[Scrape, Depends(app_state("metrics"))],
                  creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Response:
    given = creds.credentials if creds else ""
    allowed = bool(given) and (
        (scrape.token is not None and hmac.compare_digest(given, scrape.token))
        or any(p.role == "program_manager" and p.token_matches(given) for p in reference.case_managers.values())
        or any(d.coordinator.token_matches(given) for d in reference.districts.values()))
    if not allowed:
        raise ApiError(401, "authorization", "the metrics token or a program manager's or coordinator's token",
                       {"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(scrape.registry), media_type=CONTENT_TYPE_LATEST)
