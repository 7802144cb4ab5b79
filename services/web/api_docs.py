"""/openapi.json and /docs for anyone with a Handoff credential: agencies' CAD integrators, staff,
coordinators and school contacts. The schema is no secret, but every endpoint asks who calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html

from services.kernel.reference import ReferenceData
from services.web.web import bearer_principal


def everyone(reference: ReferenceData) -> Iterator[Any]:
    """Whoever holds a Handoff credential: agencies, staff, district coordinators, school contacts."""
    yield from reference.agencies.values()
    yield from reference.case_managers.values()
    for district in reference.districts.values():
        yield district.coordinator
    for school in reference.schools.values():
        yield from (c for c in (school.primary_contact, school.backup_contact) if c is not None)


router = APIRouter(include_in_schema=False,
                   dependencies=[Depends(bearer_principal(everyone, "an agency, staff member or school contact"))])


@router.get("/openapi.json")
async def openapi(request: Request) -> dict:
    return request.app.openapi()


@router.get("/docs")
async def docs() -> Response:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Handoff API")
