"""Acknowledgement endpoint: the signed, expiring link in a page.

GET shows what is being acknowledged and a button; only POST acknowledges, because mail scanners
and link previews fetch GET links on their own. Acknowledging publishes ``PageAcknowledged``; the
notifier worker applies it, stops escalation and tells the officer.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from services.core.clock import Clock, SystemClock
from services.core.events import AcknowledgedVia, PageAcknowledged
from services.core.kafka import Publisher
from services.core.links import AckLinks, InvalidLink
from services.core.logs import correlation_scope, get_logger
from services.core.topics import PAGES
from services.core.web import confirm_form, html_page, paragraph
from services.notifier.service import page_id_for

log = get_logger(__name__)


def create_router(links: AckLinks, publisher: Publisher, clock: Clock | None = None) -> APIRouter:
    clock = clock or SystemClock()
    api = APIRouter(tags=["LEAD paging"])

    @api.get("/ack/page/{token}", response_class=HTMLResponse, summary="Show a page acknowledgement form")
    async def show_page_ack(token: str) -> HTMLResponse:
        try:
            links.verify("page", token)
        except InvalidLink as exc:
            return html_page("Link not valid", paragraph(str(exc)), 410)
        return html_page("Acknowledge LEAD page", confirm_form(
            "Acknowledge this warm-handoff page? The officer will be told you are on the way.", "Acknowledge"))

    @api.post("/ack/page/{token}", response_class=HTMLResponse, summary="Acknowledge a page")
    async def acknowledge_page(token: str) -> HTMLResponse:
        try:
            referral_id, case_manager_id = links.verify("page", token)
        except InvalidLink as exc:
            return html_page("Link not valid", paragraph(str(exc)), 410)
        with correlation_scope():
            await publisher.publish(PAGES, referral_id, PageAcknowledged(
                page_id=page_id_for(referral_id), referral_id=referral_id, acknowledged_by=case_manager_id,
                via=AcknowledgedVia.link, acknowledged_at=clock.now()))
            log.info("page_ack_received", referral_id=referral_id, by=case_manager_id)
        return html_page("Acknowledged", paragraph("Thank you. Escalation has stopped and the officer is being told."))

    return api
