"""What every HTTP entry point shares: error bodies that name fields (never values), and a small
accessible HTML shell for the pages people open from a link on their phone."""

from __future__ import annotations

import html

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, field: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.status, self.headers = status, headers or {}
        self.errors = [{"field": field, "reason": reason}]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"errors": exc.errors}, status_code=exc.status, headers=exc.headers)

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
button:focus{{outline:3px solid #f1c232}}</style>
</head><body><main><h1>{title}</h1>{content}</main></body></html>"""


def html_page(title: str, content_html: str, status: int = 200) -> HTMLResponse:
    """``content_html`` must already be escaped; ``title`` is escaped here."""
    return HTMLResponse(_SHELL.format(title=html.escape(title), content=content_html), status_code=status)


def confirm_form(question: str, button: str) -> str:
    return f'<form method="post"><p>{html.escape(question)}</p><button type="submit">{html.escape(button)}</button></form>'


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"
