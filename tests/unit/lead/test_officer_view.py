"""The referring officer follows their referral's warm handoff behind the link in their messages: paged, who is
tried now, taken by whom, missed, late. Never the person's details; a link for one referral shows no other."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from services import runtime
from services.kernel.events import AcknowledgedVia
from services.kernel.lead import PageAcknowledged, PageEscalated, PageExhausted, PageSent
from services.kernel.topics import PAGES, REFERRALS
from services.notifier.domain.escalation import page_id_for
from services.notifier.domain.officer_view import HandoffProgress, officer_view
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.views import ReferralView
from tests.unit.lead.test_notifier_service import REF, T0, Harness

DENVER = REF.sites["abq"].zone
OFFICER_PHONE = "+15055550143"


def test_each_state_is_said_in_a_sentence_with_its_times() -> None:
    met = T0 - timedelta(minutes=20)
    received = HandoffProgress(site_id="abq", received_at=met, window_minutes=120)
    assert officer_view(received, DENVER, T0).headline == ("Handoff has your referral and is finding the on-call "
                                                            "case manager.")
    paged = replace(received, paged_at=T0, tried_now=["Ana R."])
    view = officer_view(paged, DENVER, T0)
    assert view.headline == "The on-call case manager (Ana R.) has been paged and has not answered yet."
    assert view.timeline == [("Fri 20 Nov 09:40 MST", "You met the person and referred them"),
                             ("Fri 20 Nov 10:00 MST", "The on-call case manager was paged")]
    assert not view.done
    escalated = replace(paged, tried_now=["Cruz", "Dee"], escalated=True)
    assert officer_view(escalated, DENVER, T0).headline == "The on-call has not answered. Now paging Cruz and Dee."
    taken = replace(escalated, acknowledged_by="Cruz", acknowledged_at=T0 + timedelta(minutes=6))
    view = officer_view(taken, DENVER, T0)
    assert view.done and view.headline == "Cruz took your referral and is on the way or will call you."
    assert view.timeline[-1] == ("Fri 20 Nov 10:06 MST", "Cruz took it")
    missed = replace(escalated, missed_at=T0 + timedelta(minutes=30))
    assert officer_view(missed, DENVER, T0).headline.startswith("No case manager has taken your referral.")
    late = HandoffProgress(site_id="abq", received_at=T0 - timedelta(hours=5), late=True, window_minutes=120)
    assert "after the 120-minute warm-handoff window, so nobody was paged" in officer_view(late, DENVER, T0).headline


def test_the_view_knows_who_the_latest_escalation_step_paged() -> None:
    view = ReferralView("r1", "abq", "social_contact", T0, T0 + timedelta(days=30))

    def sent(step: int, loop: int, target: str) -> PageSent:
        return PageSent(page_id="p", referral_id="r1", attempt_id=f"{step}/{loop}/{target}", step_index=step, loop=loop,
                        target_id=target, channel="sms", outcome="delivered", attempt=1, sent_at=T0)

    for event in (sent(0, 0, "cm-ana"), sent(0, 0, "cm-ana"), sent(1, 0, "cm-cruz"), sent(1, 0, "cm-dee"),
                  sent(1, 0, "officer"), sent(-1, 0, "cm-pm"), sent(0, 0, "cm-late")):
        view.apply(event)
    assert view.paging_step == (0, 1) and view.tried_now == ["cm-cruz", "cm-dee"]
    view.apply(sent(0, 1, "cm-ana"))  # the second time round the policy
    assert view.tried_now == ["cm-ana"]


@pytest.fixture
async def officer(memory_settings):
    """The notifier pages in memory (fake channels and clock); the API's read models fold what it published, as
    they would from the topics; the officer opens the link their SMS carries."""
    h = Harness()  # its links are signed with "test-secret" for https://handoff.test, as the API's below
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("test-secret"),
                                                  "public_base_url": "https://handoff.test"})
    model = LeadReadModel()
    app = runtime.build_http_app(settings, REF, h.publisher, h.clock, model, follow_topics=False)
    folded = [h.referral]  # intake published it; the notifier's harness starts from the page

    def fold() -> None:
        followed = {spec.name for spec in runtime.API_READ_MODELS["lead"]}
        for event in [*folded, *(r.event for r in h.publisher.records if r.topic in followed)]:
            model.apply(event)  # the folds are idempotent: applying an event again changes nothing
            app.state.handoff_details.apply(event)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://handoff.test") as client:
        yield h, fold, client


def officer_texts(h: Harness) -> list[str]:
    return [m.text for m in h.channels["sms"].sent if m.address == OFFICER_PHONE]


def link_in(text: str) -> str:
    [url] = re.findall(r"https://handoff\.test(/status/officer/\S+)", text)
    return url


async def test_the_officer_follows_the_handoff_from_the_first_escalation_to_who_took_it(officer) -> None:
    h, fold, client = officer
    await h.notifier.on_referral_event(h.referral)
    h.clock.advance(minutes=5)
    assert await h.notifier.publish_due_escalations() == 1
    await h.feed_published()
    fold()
    [still_trying] = officer_texts(h)
    url = link_in(still_trying)

    shown = await client.get(url)
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    assert "The on-call has not answered. Now paging Cruz" in shown.text and "Refresh" in shown.text
    for personal in ("Zebulon", "Featherstonehaugh", "1987", "bus shelter", "Marlowe"):
        assert personal not in shown.text

    await h.publisher.publish(PAGES, h.referral.referral_id, PageAcknowledged(
        page_id=page_id_for(h.referral.referral_id), referral_id=h.referral.referral_id, acknowledged_by="cm-cruz",
        via=AcknowledgedVia.link, acknowledged_at=h.clock.now()))
    await h.feed_published()
    fold()
    assert link_in(officer_texts(h)[-1]) == url  # the confirmation carries the same link: one per referral
    taken = await client.get(url)
    assert f"{REF.case_managers['cm-cruz'].display_name} took your referral" in taken.text
    assert "Refresh" not in taken.text  # nothing more will change for the officer


async def test_a_missed_handoff_says_what_happens_next(officer) -> None:
    h, fold, client = officer
    await h.notifier.on_referral_event(h.referral)
    while not h.publisher.events(PageExhausted):
        h.clock.advance(minutes=5)
        await h.notifier.publish_due_escalations()
        await h.feed_published()
    await h.feed_published()
    fold()
    shown = await client.get(link_in(officer_texts(h)[-1]))
    assert "No case manager has taken your referral. Outreach will look for the person" in shown.text
    assert len(h.publisher.events(PageEscalated)) >= 1


async def test_a_link_that_is_not_signed_or_names_an_unknown_referral_shows_nothing(officer) -> None:
    h, _fold, client = officer
    forged = await client.get("/status/officer/not-a-token")
    assert forged.status_code == 410 and "not valid" in forged.text
    page_link = h.links.url("page", h.referral.referral_id, "officer").removeprefix("https://handoff.test")
    other_purpose = await client.get(page_link.replace("/ack/page/", "/status/officer/"))
    assert other_purpose.status_code == 410  # a page's acknowledgement link does not open the officer's view
    unknown = h.links.url("officer", "no-such-referral", "officer", "status").removeprefix("https://handoff.test")
    gone = await client.get(unknown)
    assert gone.status_code == 410 and "no longer kept" in gone.text


async def test_a_late_referrals_view_says_its_times_in_the_sites_zone(officer) -> None:
    """Nobody was paged for it, so no page names its site: the referral does."""
    from services.referral_intake.domain.model import open_referral
    from tests.factories import cad_referral

    h, fold, client = officer
    late = open_referral(cad_referral(cad_event_id="CAD-LATE", occurred_at=T0 - timedelta(hours=5)),
                         REF.sites["abq"], REF.agencies["apd"], T0)
    assert late.late
    await h.publisher.publish(REFERRALS, late.referral_id, late)
    fold()
    shown = await client.get(h.links.url("officer", late.referral_id, "officer", "status").removeprefix(
        "https://handoff.test"))
    assert "nobody was paged" in shown.text and "Fri 20 Nov 05:00 MST" in shown.text
