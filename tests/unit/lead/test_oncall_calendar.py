"""On-call calendars: a site's rotation with its overrides, and a person's own shifts, as iCalendar feeds
months ahead behind a per-person secret URL; parsed back with icalendar; the shifts are the ones
paging uses (one rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from icalendar import Calendar
from pydantic import SecretStr

from services import runtime
from services.kernel.clock import FakeClock
from services.kernel.reference import (
    Override,
)
from services.messaging.kafka import InMemoryPublisher
from services.notifier.domain.schedule import on_call_at, shifts_between
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT

NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
REF = load_reference_data(REPO_ROOT / "config" / "local")
ANA = {"Authorization": "Bearer local-dev-token-cm-ana"}


def test_shifts_follow_the_rotation_and_overrides_cut_them() -> None:
    site = REF.sites["abq"]
    covered = site.on_call.model_copy(update={"overrides": (Override(
        start=datetime(2026, 11, 25, 12, 0), end=datetime(2026, 11, 25, 18, 0), case_manager_id="cm-cruz"),)})
    shifts = shifts_between(covered, site.zone, NOW, NOW + timedelta(days=10))
    for shift in shifts:  # every piece is who paging would page
        assert on_call_at(covered, site.zone, shift.start) == shift.case_manager_id
        assert on_call_at(covered, site.zone, shift.end - timedelta(seconds=1)) == shift.case_manager_id
    [cover] = [s for s in shifts if s.case_manager_id == "cm-cruz"]
    assert (cover.start.astimezone(site.zone).hour, cover.end.astimezone(site.zone).hour) == (12, 18)
    assert all(a.end == b.start for a, b in zip(shifts, shifts[1:], strict=False))  # no gaps, no overlaps
    across_dst = shifts_between(site.on_call, site.zone, datetime(2027, 3, 13, tzinfo=UTC),
                                datetime(2027, 3, 16, tzinfo=UTC))
    assert {s.start.astimezone(site.zone).hour for s in across_dst[1:]} == {8}  # the 08:00 handoff holds over DST


@pytest.fixture
async def client(memory_settings):
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"), "public_base_url": "http://t"})
    app = runtime.build_http_app(settings, publisher=InMemoryPublisher(), clock=FakeClock(NOW), follow_topics=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_feeds_parse_back_months_ahead_behind_a_secret_url(client) -> None:
    urls = (await client.get("/v1/me/calendars", headers=ANA)).json()
    assert set(urls["sites"]) == {"abq"}
    site_feed = await client.get(urls["sites"]["abq"].removeprefix("http://t"))
    assert site_feed.status_code == 200 and site_feed.headers["content-type"].startswith("text/calendar")
    events = Calendar.from_ical(site_feed.content).walk("VEVENT")
    starts = [e.decoded("dtstart") for e in events]
    assert min(starts) <= NOW and max(starts) >= NOW + timedelta(days=85)  # a week back, three months ahead
    assert {str(e["summary"]) for e in events} == {"On call: Ana R. (Albuquerque LEAD)",
                                                   "On call: Ben T. (Albuquerque LEAD)"}
    assert len({str(e["uid"]) for e in events}) == len(events)
    mine = Calendar.from_ical((await client.get(urls["mine"].removeprefix("http://t"))).content).walk("VEVENT")
    assert mine and len(mine) < len(events) and {str(e["summary"]) for e in mine} == {"On call: Albuquerque LEAD"}
    site = REF.sites["abq"]
    assert all(on_call_at(site.on_call, site.zone, e.decoded("dtstart")) == "cm-ana" for e in mine)
    token = urls["mine"].rsplit("/", 1)[1]
    assert (await client.get(f"/calendar/{token[:-8]}x.ics")).status_code == 404  # tampered
    assert (await client.get("/v1/me/calendars")).status_code == 401
