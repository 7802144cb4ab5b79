"""Acknowledgement of a Handle With Care notice by its signed link (GET shows, POST acknowledges).

The page shows nothing about the child or the incident: the notice itself is in the email or the
school portal; this only records that the school has it.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from services.core.clock import Clock, SystemClock
from services.core.events import AcknowledgedVia, HwcNoticeAcknowledged
from services.core.kafka import Publisher
from services.core.links import AckLinks, InvalidLink
from services.core.logs import correlation_scope, get_logger
from services.core.topics import HWC_NOTICES
from services.core.web import confirm_form, html_page, paragraph

log = get_logger(__name__)


def create_router(links: AckLinks, publisher: Publisher, clock: Clock | None = None) -> APIRouter:
    clock = clock or SystemClock()
    api = APIRouter(tags=["Handle With Care"])

    @api.get("/ack/notice/{token}", response_class=HTMLResponse, summary="Show a notice acknowledgement form")
    async def show_notice_ack(token: str) -> HTMLResponse:
        try:
            links.verify("notice", token)
        except InvalidLink as exc:
            return html_page("Link not valid", paragraph(str(exc)), 410)
        return html_page("Handle With Care", confirm_form("Confirm that your school has received this notice.",
                                                          "Acknowledge"))

    @api.post("/ack/notice/{token}", response_class=HTMLResponse, summary="Acknowledge a notice")
    async def acknowledge_notice(token: str) -> HTMLResponse:
        try:
            notice_id, contact_id = links.verify("notice", token)
        except InvalidLink as exc:
            return html_page("Link not valid", paragraph(str(exc)), 410)
        with correlation_scope():
            await publisher.publish(HWC_NOTICES, notice_id, HwcNoticeAcknowledged(
                notice_id=notice_id, contact_id=contact_id, via=AcknowledgedVia.link, acknowledged_at=clock.now()))
            log.info("hwc_ack_received", notice_id=notice_id, by=contact_id)
        return html_page("Acknowledged", paragraph("Thank you. The notice is recorded as received."))

    return api
