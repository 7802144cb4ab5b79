"""Acknowledgement: the signed, expiring link in a page, or an SMS reply "ACK 123456".

GET shows what is being acknowledged and a button; only POST acknowledges, because mail scanners
and link previews fetch GET links on their own. Acknowledging publishes ``PageAcknowledged``; the
notifier worker applies it, stops escalation and tells the officer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from services.delivery.channels import twilio_signed
from services.delivery.links import AckLinks, InvalidLink
from services.kernel.clock import Clock, spoken_time
from services.kernel.events import (
    AcknowledgedVia,
)
from services.kernel.lead import OFFICER_TARGET, PageAcknowledged, PageRequested
from services.kernel.reference import ReferenceData
from services.kernel.topics import PAGES
from services.messaging.kafka import Publisher
from services.notifier.domain.messages import NO_REDISCLOSURE_SHORT
from services.notifier.domain.officer_view import HandoffProgress, officer_view
from services.notifier.service import page_id_for
from services.platform.logs import correlation_scope, get_logger
from services.web.console import handoff_html, local_time
from services.web.deps import AppClock, Events, Reference, app_state
from services.web.render import fragment, render_page
from services.web.web import AckFlow, ack_link_page

log = get_logger(__name__)
TEMPLATES = "services.notifier.entrypoints"  # its templates/ folder


class PagesRead(Protocol):
    """What the acknowledgement routes read of the LEAD pages: the API's read models, which another service
    keeps (the composition root adapts them to this)."""

    def request_of(self, referral_id: str) -> PageRequested | None:
        """The page's warm-handoff details (officer, callback number, where, who to look for)."""

    def acknowledgement_of(self, referral_id: str) -> tuple[str, datetime] | None:
        """(who, when) once the page was acknowledged."""

    def page_for_reply(self, case_manager_id: str, code: str) -> str | None:
        """The referral whose open page a case manager's SMS reply code answers."""

    def reply_codes_waiting(self, case_manager_id: str) -> list[str]:
        """The reply codes of the pages waiting for this case manager's answer, oldest first."""

    def missed_at(self, referral_id: str) -> datetime | None:
        """When the page went unanswered through every step (a missed warm handoff), while nobody has taken it."""

    def progress_of(self, referral_id: str) -> HandoffProgress | None:
        """The referral's warm handoff as the referring officer sees it (None: unknown, or erased)."""


@dataclass(frozen=True)
class SmsWebhook:
    """The SMS provider's webhook: its auth token signs each request to the public URL (Twilio's scheme)."""

    auth_token: str = ""
    public_base_url: str = ""


router = APIRouter(tags=["LEAD paging"])
PageLinks = Annotated[AckLinks, Depends(app_state("ack_links"))]
Pages = Annotated[PagesRead, Depends(app_state("pages_read"))]
Sms = Annotated[SmsWebhook, Depends(app_state("sms_webhook"))]


def page_flow(pages: PagesRead, reference: ReferenceData, publisher: Publisher, clock: Clock) -> AckFlow:
    """A paged case manager acknowledges by the page's signed link; the officer is then told."""

    async def acknowledge(referral_id: str, case_manager_id: str) -> None:
        with correlation_scope():
            await publisher.publish(PAGES, referral_id, PageAcknowledged(
                page_id=page_id_for(referral_id), referral_id=referral_id, acknowledged_by=case_manager_id,
                via=AcknowledgedVia.link, acknowledged_at=clock.now()))
            log.info("page_ack_received", referral_id=referral_id, by=case_manager_id)

    def page_details(referral_id: str, _case_manager_id: str) -> Markup | str:
        """The warm-handoff details, for the holder of the signed link (the paged case manager)."""
        request = pages.request_of(referral_id)
        site = reference.site(request.site_id) if request else None
        return handoff_html(request, site.zone if site else None) if request else ""

    def acknowledged(referral_id: str) -> str | None:
        known = pages.acknowledgement_of(referral_id)
        if known is None:
            return None
        who, when = known
        person = reference.case_managers.get(who)
        request = pages.request_of(referral_id)
        site = reference.site(request.site_id) if request else None
        return f"by {person.display_name if person else 'a case manager'} at {local_time(when, site.zone if site else None)}"

    def next_steps(referral_id: str, _case_manager_id: str) -> Markup:
        """What the case manager does next: call the officer, open the referral (after signing in)."""
        return fragment("paging/next_steps.html", TEMPLATES, page=pages.request_of(referral_id),
                        referral_id=referral_id)

    def wording(referral_id: str) -> tuple[str, str] | None:
        """A missed warm handoff is not a page like the others: nobody came, and the person has been waiting."""
        missed = pages.missed_at(referral_id)
        request = pages.request_of(referral_id)
        if missed is None or request is None:
            return None
        waited = int((clock.now() - request.requested_at).total_seconds() // 60)
        waiting = f"{waited} minutes" if waited < 120 else f"{waited // 60} hours {waited % 60} minutes"
        return (f"MISSED warm handoff: nobody took this page through every escalation step, and the referral has "
                f"waited {waiting} since it was paged. Take it? You will go and find the person (the officer may "
                f"have left); the officer will be told you took it.",
                "Thank you. The referral is yours: it leaves the top of the outreach worklist, and the officer is "
                "being told.")

    return AckFlow("page", "Acknowledge LEAD page",
                   "Acknowledge this warm-handoff page? The officer will be told you are on the way.",
                   "Thank you. Escalation has stopped and the officer is being told.", acknowledge,
                   details=page_details, acknowledged=acknowledged, next_steps=next_steps, wording=wording)


@router.get("/ack/page/{token}", response_class=HTMLResponse, summary="Show the page acknowledgement form")
async def show_page(token: str, links: PageLinks, pages: Pages, reference: Reference, publisher: Events,
                    clock: AppClock) -> HTMLResponse:
    return await ack_link_page(links, page_flow(pages, reference, publisher, clock), token, act=False)


@router.post("/ack/page/{token}", response_class=HTMLResponse, summary="Acknowledge a page")
async def acknowledge_page(token: str, links: PageLinks, pages: Pages, reference: Reference, publisher: Events,
                           clock: AppClock) -> HTMLResponse:
    return await ack_link_page(links, page_flow(pages, reference, publisher, clock), token, act=True)


@router.get("/status/officer/{token}", response_class=HTMLResponse,
            summary="The referring officer's view of their referral's warm handoff")
async def officer_status(token: str, links: PageLinks, pages: Pages, reference: Reference,
                         clock: AppClock) -> HTMLResponse:
    try:
        referral_id, _officer = links.verify(OFFICER_TARGET, token)
    except InvalidLink as exc:
        return render_page("message.html", title="Link not valid", narrow=True, status=410,
                           paragraphs=[str(exc).replace("acknowledgement ", "")], alert=False, back=None)
    progress = pages.progress_of(referral_id)
    if progress is None:
        return render_page("message.html", title="No longer available", narrow=True, status=410, alert=False,
                           paragraphs=["This referral is no longer kept in Handoff."], back=None)
    site = reference.site(progress.site_id)  # a late referral has no page: its site says the zone
    zone = site.zone if site else UTC
    now = clock.now()
    return render_page("paging/officer_status.html", package=TEMPLATES, title="Your LEAD referral", narrow=True,
                       view=officer_view(progress, zone, now), as_of=spoken_time(now, zone, now),
                       here=f"/status/officer/{token}", notice=NO_REDISCLOSURE_SHORT)


@router.post("/v1/sms/inbound", summary="SMS provider webhook: 'ACK 123456' acknowledges a page",
             response_class=Response)
async def sms_inbound(request: Request, sms: Sms, pages: Pages, reference: Reference, publisher: Events,
                      clock: AppClock) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not twilio_signed(sms.auth_token, f"{sms.public_base_url}/v1/sms/inbound", form,
                         request.headers.get("X-Twilio-Signature", "")):
        return Response(status_code=403)
    code = "".join(ch for ch in form.get("Body", "") if ch.isdigit())
    sender = next((p for p in reference.case_managers.values() if p.phone == form.get("From")), None)
    referral_id = pages.page_for_reply(sender.case_manager_id, code) if sender and len(code) == 6 else None
    if referral_id is None:
        return _twiml(what_to_reply(pages.reply_codes_waiting(sender.case_manager_id) if sender else [], code))
    with correlation_scope():
        await publisher.publish(PAGES, referral_id, PageAcknowledged(
            page_id=page_id_for(referral_id), referral_id=referral_id,
            acknowledged_by=sender.case_manager_id, via=AcknowledgedVia.sms_reply, acknowledged_at=clock.now()))
        log.info("page_ack_received", referral_id=referral_id, by=sender.case_manager_id, via="sms_reply")
    return _twiml("Handoff: acknowledged. The officer is being told.")


def what_to_reply(waiting: list[str], code: str) -> str:
    """The answer to a reply that acknowledges nothing ('ok on my way', a mistyped code): what to send instead."""
    if not waiting:
        return "Handoff: no page is waiting for your answer."
    if len(waiting) == 1:
        return f"Handoff: {'That code does not match. ' if code else ''}To take the page, reply ACK {waiting[0]}."
    return (f"Handoff: {len(waiting)} pages are waiting for you. {'That code matches none of them. ' if code else ''}"
            f"Reply ACK and the code of the one you take: {', '.join(waiting)} (oldest first).")


def _twiml(text: str) -> Response:
    """A text back to the sender, as TwiML built by Twilio's own library."""
    from twilio.twiml.messaging_response import MessagingResponse

    reply = MessagingResponse()
    reply.message(text)
    return Response(str(reply), media_type="application/xml")
