"""What every HTTP entry point shares: error bodies that name fields (never values), bearer-token
principals, acknowledgement-link routes, and a small accessible HTML shell for the pages people
open from a link on their phone."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, status: int, field: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.status, self.headers = status, headers or {}
        self.errors = [{"field": field, "reason": reason}]


async def api_error_response(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse({"errors": exc.errors}, status_code=exc.status, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error_response)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing's own refusals (404 no such path, 405 wrong method) in the same shape as ours.
        what = {404: "path", 405: "method"}.get(exc.status_code, "request")
        return JSONResponse({"errors": [{"field": what, "reason": str(exc.detail)}]}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default body echoes the submitted values; ours names the field and the reason only.
        errors = [{"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "reason": e["msg"]}
                  for e in exc.errors()]
        return JSONResponse({"errors": errors}, status_code=422)


_SHELL = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#111;line-height:1.5}}
button{{font-size:1.25rem;padding:.75rem 1.5rem;background:#0b5394;color:#fff;border:0;border-radius:.4rem}}
button:focus{{outline:3px solid #f1c232}}dl{{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}}
dt{{font-weight:600}}dd{{margin:0}}.muted{{color:#555}}.badge{{display:inline-block;padding:.05rem .5rem;border-radius:1rem;background:#e1e8f5}}</style>
</head><body><main><h1>{title}</h1>{content}</main></body></html>"""


def html_page(title: str, content_html: str, status: int = 200) -> HTMLResponse:
    """``content_html`` must already be escaped; ``title`` is escaped here."""
    return HTMLResponse(_SHELL.format(title=html.escape(title), content=content_html), status_code=status)


def confirm_form(question: str, button: str) -> str:
    return f'<form method="post"><p>{html.escape(question)}</p><button type="submit">{html.escape(button)}</button></form>'


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def bearer_principal(candidates: Callable[[], Iterable[T]], who: str) -> Callable[..., T]:
    """A FastAPI dependency: the one of ``candidates()`` whose ``token_matches`` the bearer token, else 401.

    ``candidates`` is called per request, so live reference data is always current.
    """
    bearer = HTTPBearer(auto_error=False, description=f"{who}'s API token")

    def principal(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> T:
        if creds is not None:
            for candidate in candidates():
                if candidate.token_matches(creds.credentials):
                    return candidate
        raise ApiError(401, "authorization", f"a valid bearer token of {who} is required", {"WWW-Authenticate": "Bearer"})

    return principal


def add_ack_link_routes(api: APIRouter, links, purpose: str, title: str, question: str, done: str,
                        acknowledge: Callable[[str, str], Awaitable[None]],
                        details: Callable[[str, str], str] | None = None) -> None:
    """GET /ack/{purpose}/{token} shows what is acknowledged (``details(subject id, recipient id)``, HTML)
    and a confirmation button; POST acknowledges through ``acknowledge``. Only POST acts: mail
    scanners and link previews fetch GET links."""
    from services.core.links import InvalidLink

    @api.get(f"/ack/{purpose}/{{token}}", response_class=HTMLResponse, summary=f"Show the {purpose} acknowledgement form")
    async def show(token: str) -> HTMLResponse:
        try:
            subject_id, recipient_id = links.verify(purpose, token)
        except InvalidLink as exc:
            return html_page("Link not valid", paragraph(str(exc)), 410)
        shown = details(subject_id, recipient_id) if details else ""
        return html_page(title, shown + confirm_form(question, "Acknowledge"))

    @api.post(f"/ack/{purpose}/{{token}}", response_class=HTMLResponse, summary=f"Acknowledge a {purpose}")
    async def submit(token: str) -> HTMLResponse:
        try:
            subject_id, recipient_id = links.verify(purpose, token)
        except InvalidLink as exc:
            return html_page("Link not valid", paragraph(str(exc)), 410)
        await acknowledge(subject_id, recipient_id)
        return html_page("Acknowledged", paragraph(done))

