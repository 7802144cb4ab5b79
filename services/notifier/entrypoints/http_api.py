"""Acknowledgement endpoint: the signed, expiring link in a page.

GET on a link shows what is being acknowledged and a button; only POST acknowledges, because
mail scanners and link previews fetch GET links on their own. Acknowledging publishes
``PageAcknowledged``; the notifier worker applies it and stops escalation.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from services.core.clock import Clock, SystemClock
from services.core.events import AcknowledgedVia, PageAcknowledged
from services.core.kafka import Publisher
from services.core.logs import correlation_scope, get_logger
from services.core.topics import PAGES
from services.notifier.adapters.links import AckLinks, InvalidLink
from services.notifier.service import page_id_for

log = get_logger(__name__)

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#111}}
button{{font-size:1.25rem;padding:.75rem 1.5rem;background:#0b5394;color:#fff;border:0;border-radius:.4rem}}</style>
</head><body><main><h1>{title}</h1>{content}</main></body></html>"""


def _html(title: str, content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), content=content), status_code=status)


def create_api(links: AckLinks, publisher: Publisher, clock: Clock | None = None, lifespan=None) -> FastAPI:
    clock = clock or SystemClock()
    api = FastAPI(title="Handoff notifier", version="1.0", lifespan=lifespan)

    @api.get("/ack/page/{token}", response_class=HTMLResponse, summary="Show a page acknowledgement form")
    async def show_page_ack(token: str) -> HTMLResponse:
        try:
            links.verify("page", token)
        except InvalidLink as exc:
            return _html("Link not valid", f"<p>{html.escape(str(exc))}</p>", 410)
        return _html("Acknowledge LEAD page",
                     f'<form method="post"><p>Acknowledge this warm-handoff page? The officer will be told you '
                     f'are on the way.</p><button type="submit">Acknowledge</button></form>')

    @api.post("/ack/page/{token}", response_class=HTMLResponse, summary="Acknowledge a page")
    async def acknowledge_page(token: str) -> HTMLResponse:
        try:
            referral_id, case_manager_id = links.verify("page", token)
        except InvalidLink as exc:
            return _html("Link not valid", f"<p>{html.escape(str(exc))}</p>", 410)
        with correlation_scope():
            await publisher.publish(PAGES, referral_id, PageAcknowledged(
                page_id=page_id_for(referral_id), referral_id=referral_id, acknowledged_by=case_manager_id,
                via=AcknowledgedVia.link, acknowledged_at=clock.now()))
            log.info("page_ack_received", referral_id=referral_id, by=case_manager_id)
        return _html("Acknowledged", "<p>Thank you. Escalation has stopped and the officer is being told.</p>")

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "time": datetime.now(UTC).isoformat()}

    return api

