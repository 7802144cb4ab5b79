"""The referral page closes the loop: every step with when and by whom, and closing a referral with its reason
(a refused form comes back with the reason beside the field)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.kernel.clock import FakeClock
from services.kernel.events import AcknowledgedVia, Milestone, ReferralStatus, StatusReason
from services.kernel.lead import (
    EngagementRecorded,
    EngagementWithdrawn,
    PageAcknowledged,
    ReferralNoteWritten,
    ReferralStatusChanged,
)
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.lifecycle import closing_status
from services.referral_intake.domain.model import open_referral
from tests.factories import cad_referral

REF = load_reference_data(REPO_ROOT / "config" / "local")
NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)  # 10:00 in Albuquerque


def test_closing_gives_the_status_the_referrals_stage_allows() -> None:
    assert closing_status(ReferralStatus.requested) is ReferralStatus.rejected
    assert closing_status(ReferralStatus.accepted) is ReferralStatus.cancelled
    assert closing_status(ReferralStatus.in_progress) is ReferralStatus.failed
    assert closing_status(ReferralStatus.on_hold) is ReferralStatus.failed


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW + timedelta(hours=1))


@pytest.fixture
async def ana(memory_settings, clock):
    referral = open_referral(cad_referral(occurred_at=NOW), REF.sites["abq"], REF.agencies["apd"], NOW)
    model, publisher = LeadReadModel(), InMemoryPublisher()
    attempt = EngagementRecorded(engagement_id="e1", referral_id=referral.referral_id, site_id="abq",
                                 milestone=Milestone.contact_attempted, occurred_at=NOW + timedelta(minutes=20),
                                 recorded_at=NOW + timedelta(minutes=20), recorded_by="cm-ana")
    for event in (referral, PageAcknowledged(page_id="pg", referral_id=referral.referral_id, acknowledged_by="cm-ana",
                                             via=AcknowledgedVia.link, acknowledged_at=NOW + timedelta(minutes=4)),
                  ReferralStatusChanged(referral_id=referral.referral_id, site_id="abq", status=ReferralStatus.accepted,
                                        previous_status=ReferralStatus.requested, changed_at=NOW + timedelta(minutes=4),
                                        changed_by="cm-ana"),  # the tracker's, on acknowledgement: no line of its own
                  attempt, attempt):  # the same step read twice is one line
        model.apply(event)
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    app = runtime.build_http_app(settings, REF, publisher, clock, model,
                                 follow_topics=False)
    app.state.handoff_details.apply(referral)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.post("/console/login", data={"token": "local-dev-token-cm-ana"})
        yield client, model, publisher, referral.referral_id


def history(page: str) -> list[str]:
    listed = page.split('data-testid="history">')[1].split("</ol>")[0]
    return [re.sub(r"<[^>]+>", "", re.sub(r"<form.*?</form>", "", item, flags=re.S)).strip()
            for item in listed.split("<li>")[1:]]


async def test_every_step_says_when_and_by_whom(ana) -> None:
    client, _model, _publisher, referral_id = ana
    page = (await client.get(f"/console/referrals/{referral_id}")).text
    assert history(page) == ["Fri 20 Nov 10:04 MST: Took the page by Ana R.",
                             "Fri 20 Nov 10:20 MST: Tried to reach by Ana R."]


async def test_a_time_names_its_year_by_the_services_clock_not_the_walls(ana, clock) -> None:
    """A page leaves out the year the service's clock is in, as the messages do: the same page reads the same on
    any day the wall clock shows, and a time from last year says so."""
    client, _model, _publisher, referral_id = ana
    clock.set(datetime(2027, 1, 4, 17, 0, tzinfo=UTC))
    await client.post("/console/login", data={"token": "local-dev-token-cm-ana"})  # the session before has ended
    page = (await client.get(f"/console/referrals/{referral_id}")).text
    assert history(page)[0] == "Fri 20 Nov 2026 10:04 MST: Took the page by Ana R."


async def test_closing_without_a_reason_is_refused_beside_the_field_and_with_one_it_closes(ana) -> None:
    client, model, publisher, referral_id = ana
    url = f"/console/referrals/{referral_id}"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get(url)).text).group(1)

    refused = await client.post(f"{url}/close", data={"csrf_token": csrf, "reason": ""})
    assert refused.status_code == 422
    assert 'data-testid="reason-error">Choose why the referral ends.' in refused.text
    assert 'aria-invalid="true"' in refused.text and publisher.events(ReferralStatusChanged) == []

    closed = await client.post(f"{url}/close", data={"csrf_token": csrf, "reason": "declined_by_client"})
    assert closed.status_code == 303 and closed.headers["location"] == f"{url}?done=closed"
    [change] = publisher.events(ReferralStatusChanged)
    assert (change.status, change.reason, change.changed_by) == (ReferralStatus.cancelled,
                                                                  StatusReason.declined_by_client, "cm-ana")
    model.apply(change)
    page = (await client.get(f"{url}?done=closed")).text
    assert "The referral is closed." in page
    assert history(page)[-1] == "Fri 20 Nov 11:00 MST: Closed (cancelled), the person declined by Ana R."
    assert "/milestones" not in page and "Close the referral" not in page  # nothing more to record on it

    again = await client.post(f"{url}/close", data={"csrf_token": csrf, "reason": "other"})
    assert again.status_code == 409 and "This referral is already closed: nothing was changed." in again.text
    assert len(publisher.events(ReferralStatusChanged)) == 1


async def test_the_last_step_can_be_undone_once_and_stays_on_the_history_struck_through(ana) -> None:
    client, model, publisher, referral_id = ana
    url = f"/console/referrals/{referral_id}"
    page = (await client.get(url)).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert page.count(f'action="{url}/undo"') == 1 and 'name="engagement_id" value="e1"' in page  # the last only

    undone = await client.post(f"{url}/undo", data={"csrf_token": csrf, "engagement_id": "e1"})
    assert undone.status_code == 303 and undone.headers["location"] == f"{url}?done=undone"
    [withdrawn] = publisher.events(EngagementWithdrawn)
    assert (withdrawn.engagement_id, withdrawn.milestone, withdrawn.withdrawn_by) == (
        "e1", Milestone.contact_attempted, "cm-ana")
    model.apply(withdrawn)
    page = (await client.get(f"{url}?done=undone")).text
    assert "Undone: the referral is back where that step found it." in page
    assert history(page)[-1] == "Fri 20 Nov 10:20 MST: Tried to reach by Ana R. (undone by Ana R., Fri 20 Nov 11:00 MST)"
    assert "<del>" in page and f'action="{url}/undo"' not in page  # nothing left to undo

    again = await client.post(f"{url}/undo", data={"csrf_token": csrf, "engagement_id": "e1"})
    assert again.status_code == 409
    assert "Nothing was undone: only the last step recorded can be undone, and only once." in again.text
    assert len(publisher.events(EngagementWithdrawn)) == 1


async def test_a_note_is_read_by_its_author_and_the_case_manager_who_took_the_referral_and_erased_with_it(
        ana) -> None:
    client, _model, publisher, referral_id = ana
    url = f"/console/referrals/{referral_id}"
    page = (await client.get(url)).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert "No notes yet." in page

    empty = await client.post(f"{url}/notes", data={"csrf_token": csrf, "text": "   "})
    assert empty.status_code == 422 and 'data-testid="note-error">Write the note first.' in empty.text
    long = "x" * 2001
    too_long = await client.post(f"{url}/notes", data={"csrf_token": csrf, "text": long})
    assert too_long.status_code == 422 and "A note is at most 2,000 characters; this one is 2,001." in too_long.text
    assert f">{long}</textarea>" in too_long.text and publisher.events(ReferralNoteWritten) == []  # typed text kept

    text = "Sleeps by the library; prefers mornings"
    for _ in range(2):  # a double tap is one note
        saved = await client.post(f"{url}/notes", data={"csrf_token": csrf, "text": text})
        assert saved.status_code == 303 and saved.headers["location"] == f"{url}?done=noted"
    notes = publisher.events(ReferralNoteWritten)
    assert {n.note_id for n in notes} == {notes[0].note_id} and notes[0].written_by == "cm-ana"
    details = client._transport.app.state.handoff_details
    for n in notes:
        details.apply(n)
    page = (await client.get(f"{url}?done=noted")).text
    assert "Note saved." in page and page.count(text) == 1

    shown, others = details.notes_for(referral_id, "cm-ben", taken_by="cm-ana")  # not the author, not the holder
    assert (shown, others) == ([], 1)
    details.erase(referral_id)
    assert details.notes_for(referral_id, "cm-ana", taken_by="cm-ana")[0][0].text is None
    page = (await client.get(url)).text
    assert text not in page and "erased" in page.split('data-testid="notes"')[1]


async def test_a_step_the_referral_no_longer_allows_is_refused_on_the_page_in_words(ana) -> None:
    client, model, publisher, referral_id = ana
    url = f"/console/referrals/{referral_id}"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get(url)).text).group(1)
    model.apply(ReferralStatusChanged(referral_id=referral_id, site_id="abq", status=ReferralStatus.cancelled,
                                      previous_status=ReferralStatus.accepted, reason=StatusReason.other,
                                      changed_at=NOW + timedelta(minutes=30), changed_by="cm-ben"))  # closed meanwhile
    refused = await client.post(f"{url}/milestones", data={"csrf_token": csrf, "milestone": "contacted"})
    assert refused.status_code == 409 and refused.headers["content-type"].startswith("text/html")
    assert 'data-testid="milestone-error">Not recorded: cannot record contacted on a cancelled referral.' in refused.text
    assert publisher.events(EngagementRecorded) == []
