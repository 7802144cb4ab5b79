"""On-call calendars: each site's rotation (with its overrides) and each case manager's own shifts as an
iCalendar feed, months ahead, so people see their shifts in their own calendar.

- ``GET /v1/me/calendars`` (staff token): the person's secret feed URLs, their own and one per site
  they work.
- ``GET /calendar/{token}.ics``: the feed. The URL is the credential (calendar apps cannot send a
  bearer token): signed for one person and one feed, it stops working when the person leaves the
  reference data or loses the site, or when the signing key is rotated. A site's feed names the
  staff on call (the site's own staff read it); a person's feed names only the site.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from icalendar import Calendar, Event
from itsdangerous import BadSignature, URLSafeSerializer

from services.kernel.reference import CaseManager, ReferenceData
from services.notifier.domain.schedule import shifts_between
from services.web.deps import AppClock, Reference, app_state
from services.web.web import ApiError, bearer_principal

PRODID = "-//Handoff//On-call calendar//EN"


class CalendarLinks:
    """Secret calendar-feed URLs, signed, and how far ahead a feed reaches."""

    def __init__(self, secret: str, base_url: str, months_ahead: int = 3) -> None:
        if not secret:
            raise ValueError("a signing key is required for calendar links (HANDOFF_LINK_SIGNING_KEY)")
        self.serializer = URLSafeSerializer(secret, salt="handoff-calendar")
        self.base_url = base_url.rstrip("/")
        self.months_ahead = months_ahead

    def url(self, kind: str, subject_id: str, holder_id: str) -> str:
        return f"{self.base_url}/calendar/{self.serializer.dumps([kind, subject_id, holder_id])}.ics"

    def read(self, token: str) -> tuple[str, str, str]:
        try:
            kind, subject_id, holder_id = self.serializer.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise ApiError(404, "token", "no such calendar") from None
        return kind, subject_id, holder_id


router = APIRouter(tags=["On-call calendars"])
staff = bearer_principal(lambda reference: reference.case_managers.values(), "a staff member")
Feeds = Annotated[CalendarLinks, Depends(app_state("calendar_links"))]


def sites_with_rotation(reference: ReferenceData, person: CaseManager) -> list[str]:
    return sorted(s for s in person.sites if s in reference.sites)


@router.get("/v1/me/calendars", summary="Your on-call calendar feeds (secret URLs for your calendar app)")
async def my_calendars(links: Feeds, reference: Reference, person: CaseManager = Depends(staff)) -> dict:
    return {"mine": links.url("person", person.case_manager_id, person.case_manager_id),
            "sites": {s: links.url("site", s, person.case_manager_id) for s in sites_with_rotation(reference, person)}}


@router.get("/calendar/{token}.ics", response_class=Response, include_in_schema=False)
async def feed(token: str, clock: AppClock, links: Feeds, reference: Reference) -> Response:
    kind, subject_id, holder_id = links.read(token)
    holder = reference.case_managers.get(holder_id)
    if holder is None or kind not in ("site", "person") or (kind == "site" and subject_id not in holder.sites) \
            or (kind == "person" and subject_id != holder_id):
        raise ApiError(404, "token", "no such calendar")
    start = clock.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=7)
    end = start + timedelta(days=7 + 31 * links.months_ahead)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("x-published-ttl", "PT1H")
    if kind == "site":
        site = reference.sites[subject_id]
        calendar.add("x-wr-calname", f"On call: {site.name}")
        events = [(site, s) for s in shifts_between(site.on_call, site.zone, start, end)]
    else:
        calendar.add("x-wr-calname", "My on-call shifts")
        events = [(site, s) for site_id in sites_with_rotation(reference, holder) for site in [reference.sites[site_id]]
                  for s in shifts_between(site.on_call, site.zone, start, end)
                  if s.case_manager_id == holder_id]
    stamp = clock.now()
    for site, shift in events:
        who = reference.case_managers.get(shift.case_manager_id)
        event = Event()
        # UTC times need no VTIMEZONE; the calendar app shows them in the reader's zone.
        event.add("uid", f"{site.site_id}-{shift.start.astimezone(UTC):%Y%m%dT%H%M%SZ}-"
                         f"{shift.case_manager_id}@handoff")
        event.add("dtstamp", stamp.astimezone(UTC))
        event.add("dtstart", shift.start.astimezone(UTC))
        event.add("dtend", shift.end.astimezone(UTC))
        event.add("summary", f"On call: {who.display_name if who else shift.case_manager_id} ({site.name})"
                  if kind == "site" else f"On call: {site.name}")
        event.add("transp", "OPAQUE")
        calendar.add_component(event)
    return Response(calendar.to_ical(), media_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "private, max-age=900", "Referrer-Policy": "no-referrer"})
