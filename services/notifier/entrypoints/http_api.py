"""Acknowledgement: the signed, expiring link in a page, or an SMS reply "ACK 123456".

GET shows what is being acknowledged and a button; only POST acknowledges, because mail scanners
and link previews fetch GET links on their own. Acknowledging publishes ``PageAcknowledged``; the
notifier worker applies it, stops escalation and tells the officer.
"""

from __future__ import annotations

import hmac
import html

from fastapi import APIRouter, Request, Response
from markupsafe import Markup

from services.delivery.channels import twilio_signature
from services.delivery.links import AckLinks
from services.kernel.clock import Clock, SystemClock
from services.kernel.events import (
    AcknowledgedVia,
)
from services.kernel.lead import PageAcknowledged
from services.kernel.reference import ReferenceData
from services.kernel.topics import PAGES
from services.messaging.kafka import Publisher
from services.notifier.service import page_id_for
from services.platform.logs import correlation_scope, get_logger
from services.web.console import handoff_html, local_time
from services.web.render import fragment
from services.web.web import add_ack_link_routes

log = get_logger(__name__)
TEMPLATES = "services.notifier.entrypoints"  # its templates/ folder


def create_router(links: AckLinks, publisher: Publisher, clock: Clock | None = None, *,
                  reference: ReferenceData | None = None, page_for_reply=None, sms_auth_token: str = "",
                  public_base_url: str = "", handoff_details=None, acknowledgement_of=None) -> APIRouter:
    """``page_for_reply(case_manager_id, code)`` finds the open page an SMS reply code answers;
    ``acknowledgement_of(referral_id)`` is (who, when) once its page was acknowledged."""
    clock = clock or SystemClock()
    api = APIRouter(tags=["LEAD paging"])

    async def acknowledge(referral_id: str, case_manager_id: str) -> None:
        with correlation_scope():
            await publisher.publish(PAGES, referral_id, PageAcknowledged(
                page_id=page_id_for(referral_id), referral_id=referral_id, acknowledged_by=case_manager_id,
                via=AcknowledgedVia.link, acknowledged_at=clock.now()))
            log.info("page_ack_received", referral_id=referral_id, by=case_manager_id)

    def page_details(referral_id: str, _case_manager_id: str) -> Markup | str:
        """The warm-handoff details, for the holder of the signed link (the paged case manager)."""
        if handoff_details is None or reference is None:
            return ""
        request = handoff_details.pages.get(referral_id)
        site = reference.site(request.site_id) if request else None
        return handoff_html(request, site.zone if site else None) if request else ""

    def acknowledged(referral_id: str) -> str | None:
        known = acknowledgement_of(referral_id) if acknowledgement_of else None
        if known is None:
            return None
        who, when = known
        person = reference.case_managers.get(who) if reference else None
        request = handoff_details.pages.get(referral_id) if handoff_details else None
        site = reference.site(request.site_id) if reference and request else None
        return f"by {person.display_name if person else 'a case manager'} at {local_time(when, site.zone if site else None)}"

    def next_steps(referral_id: str, _case_manager_id: str) -> Markup:
        """What the case manager does next: call the officer, open the referral (after signing in)."""
        request = handoff_details.pages.get(referral_id) if handoff_details else None
        return fragment("paging/next_steps.html", TEMPLATES, page=request, referral_id=referral_id)

    add_ack_link_routes(api, links, "page", "Acknowledge LEAD page",
                        "Acknowledge this warm-handoff page? The officer will be told you are on the way.",
                        "Thank you. Escalation has stopped and the officer is being told.", acknowledge,
                        details=page_details, acknowledged=acknowledged, next_steps=next_steps)

    @api.post("/v1/sms/inbound", summary="SMS provider webhook: 'ACK 123456' acknowledges a page",
              response_class=Response)
    async def sms_inbound(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        expected = twilio_signature(sms_auth_token, f"{public_base_url}/v1/sms/inbound", form)
        if not sms_auth_token or not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "")):
            return Response(status_code=403)
        code = "".join(ch for ch in form.get("Body", "") if ch.isdigit())
        sender = next((p for p in reference.case_managers.values() if p.phone == form.get("From")), None)
        view = page_for_reply(sender.case_manager_id, code) if sender and len(code) == 6 else None
        if view is None:
            return _twiml("Handoff: no open page matches that code.")
        with correlation_scope():
            await publisher.publish(PAGES, view.referral_id, PageAcknowledged(
                page_id=page_id_for(view.referral_id), referral_id=view.referral_id,
                acknowledged_by=sender.case_manager_id, via=AcknowledgedVia.sms_reply, acknowledged_at=clock.now()))
            log.info("page_ack_received", referral_id=view.referral_id, by=sender.case_manager_id, via="sms_reply")
        return _twiml("Handoff: acknowledged. The officer is being told.")

    return api


def _twiml(text: str) -> Response:
    body = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{html.escape(text)}</Message></Response>"
    return Response(body, media_type="application/xml")
