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
from services.kernel.lead import EngagementRecorded, PageAcknowledged, ReferralStatusChanged
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
async def ana(memory_settings):
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
    app = runtime.build_http_app(settings, REF, publisher, FakeClock(NOW + timedelta(hours=1)), model,
                                 follow_topics=False)
    app.state.handoff_details.apply(referral)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.post("/console/login", data={"token": "local-dev-token-cm-ana"})
        yield client, model, publisher, referral.referral_id


def history(page: str) -> list[str]:
    listed = page.split('data-testid="history">')[1].split("</ol>")[0]
    return [re.sub(r"<[^>]+>", "", item).strip() for item in listed.split("<li>")[1:]]


async def test_every_step_says_when_and_by_whom(ana) -> None:
    client, _model, _publisher, referral_id = ana
    page = (await client.get(f"/console/referrals/{referral_id}")).text
    assert history(page) == ["Fri 20 Nov 10:04 MST: Took the page by Ana R.",
                             "Fri 20 Nov 10:20 MST: Tried to reach by Ana R."]


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
