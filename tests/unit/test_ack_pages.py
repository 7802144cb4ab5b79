"""The pages people open from a link: never cached or framed; after the fact they say it was already
acknowledged instead of offering the button again; a page's acknowledgement offers the next steps."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.handle_with_care.events import HwcNoticeAcknowledged
from services.kernel.clock import FakeClock
from services.kernel.events import (
    AcknowledgedVia,
)
from services.kernel.lead import PageAcknowledged, PageRequested
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.model import open_referral
from tests.factories import cad_referral, one_of_each

REF = load_reference_data(REPO_ROOT / "config" / "local")
NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


@pytest.fixture
async def system(memory_settings):
    model, publisher = LeadReadModel(), InMemoryPublisher()
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k"), "public_base_url": "http://t"})
    app = runtime.build_http_app(settings, REF, publisher, FakeClock(NOW), model, follow_topics=False)
    referral = open_referral(cad_referral(occurred_at=NOW), REF.sites["abq"], REF.agencies["apd"], NOW)
    page = PageRequested(page_id="pg", dedup_key=referral.referral_id, referral_id=referral.referral_id, site_id="abq",
                         referral_type=referral.referral_type, officer_name="Ofc. Marlowe",
                         officer_callback_phone="+15055550143", location_description="bus shelter", requested_at=NOW)
    for event in (referral, page):
        model.apply(event)
        app.state.handoff_details.apply(event)
    links = app.state.ack_links  # signed by the app's clock, as the notifier's would be
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield app, model, publisher, client, links, referral


async def test_a_page_link_is_private_offers_the_next_steps_and_says_when_it_was_already_acknowledged(system) -> None:
    app, model, publisher, client, links, referral = system
    url = links.url("page", referral.referral_id, "cm-ana").removeprefix("http://t")
    shown = await client.get(url)
    assert shown.headers["Cache-Control"] == "no-store" and shown.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in shown.headers["Content-Security-Policy"]
    assert "<form method=\"post\">" in shown.text

    done = await client.post(url)
    assert 'href="tel:+15055550143"' in done.text and f"/console/referrals/{referral.referral_id}" in done.text
    assert len(publisher.events(PageAcknowledged)) == 1

    model.apply(publisher.events(PageAcknowledged)[0])
    again = await client.get(url)
    assert "Already acknowledged by Ana R." in again.text and "<form" not in again.text
    assert 'href="tel:+15055550143"' in again.text
    replayed = await client.post(url)  # the button again, or a push notification's action after someone took it
    assert replayed.status_code == 409 and "Already acknowledged" in replayed.text
    assert len(publisher.events(PageAcknowledged)) == 1  # nothing published the second time


async def test_a_notice_link_says_when_it_was_already_acknowledged(system) -> None:
    app, _model, publisher, client, links, _referral = system
    hwc = app.state.hwc_model
    from services.handle_with_care.events import HwcNoticeRequested

    [request] = [e for e in one_of_each() if isinstance(e, HwcNoticeRequested)]
    hwc.apply(request)
    url = links.url("notice", request.notice_id, "lincoln-counselor").removeprefix("http://t")
    first = await client.get(url)
    assert first.headers["Cache-Control"] == "no-store" and "<form" in first.text
    hwc.apply(HwcNoticeAcknowledged(notice_id=request.notice_id, contact_id="lincoln-counselor",
                                    via=AcknowledgedVia.link, acknowledged_at=NOW))
    again = await client.get(url)
    school = REF.schools[request.school_id].name
    assert f"Already acknowledged by {school}" in again.text and "<form" not in again.text  # which school, by name
    assert request.child.first_name not in again.text  # a link forwarded after that shows no child
    assert publisher.events(HwcNoticeAcknowledged) == []


async def test_a_notice_link_names_the_child_only_to_the_school_it_was_sent_to_signed_in(system) -> None:
    app, _model, _publisher, client, links, _referral = system
    from services.handle_with_care.events import HwcNoticeRequested

    [request] = [e for e in one_of_each() if isinstance(e, HwcNoticeRequested)]
    app.state.hwc_model.apply(request)
    url = links.url("notice", request.notice_id, "lincoln-counselor").removeprefix("http://t")
    name = f"{request.child.first_name} {request.child.last_name}"

    forwarded = await client.get(url)  # whoever holds the link, signed in to nothing
    assert name not in forwarded.text and request.child.date_of_birth.isoformat() not in forwarded.text
    assert "Lincoln Elementary" in forwarded.text and "<form" in forwarded.text  # the school can still acknowledge
    assert f'href="/console/login?next=/console/notices/{request.notice_id}"' in forwarded.text

    await client.post("/console/login", data={"token": "local-dev-token-sunrise-director"})  # another school's
    assert name not in (await client.get(url)).text
    await client.post("/console/login", data={"token": "local-dev-token-lincoln-counselor"})  # the school's own
    assert name in (await client.get(url)).text


async def test_a_notice_link_past_the_notices_retention_says_so_and_records_nothing(system) -> None:
    app, _model, publisher, client, links, _referral = system
    hwc = app.state.hwc_model
    from services.handle_with_care.events import HwcNoticeExpired, HwcNoticeRequested

    [request] = [e for e in one_of_each() if isinstance(e, HwcNoticeRequested)]
    hwc.apply(request)
    hwc.apply(HwcNoticeExpired(notice_id=request.notice_id, expired_at=NOW))
    url = links.url("notice", request.notice_id, "lincoln-counselor").removeprefix("http://t")
    for answer in (await client.get(url), await client.post(url)):
        assert answer.status_code == 410 and "no longer kept" in answer.text
        assert "<form" not in answer.text and "recorded as received" not in answer.text
    assert publisher.events(HwcNoticeAcknowledged) == []  # nothing said happened that did not


async def test_a_missed_handoffs_link_says_it_was_missed_and_how_long_the_referral_has_waited(system) -> None:
    from datetime import timedelta

    from services.kernel.lead import PageExhausted

    app, model, publisher, client, links, referral = system
    model.apply(PageExhausted(page_id="pg", referral_id=referral.referral_id, site_id="abq", steps=2, loops=2,
                              opened_at=NOW, exhausted_at=NOW + timedelta(minutes=20)))
    app.state.clock.set(NOW + timedelta(minutes=47))
    url = links.url("page", referral.referral_id, "pm-abq").removeprefix("http://t")
    shown = (await client.get(url)).text
    assert "MISSED warm handoff" in shown and "waited 47 minutes since it was paged" in shown
    assert "will be told you are on the way" not in shown
    done = (await client.post(url)).text
    assert "The referral is yours" in done and len(publisher.events(PageAcknowledged)) == 1
