"""The web console's shared parts: sign-in and sessions, the page shell, and small SVG charts.

Server-rendered HTML, no front-end framework: a case manager on a phone in the street gets a
page that works on a 360 px screen and over a weak connection. People sign in with the same
credential the API takes; the session is a signed, expiring, HttpOnly, SameSite=Strict cookie
that names who they are, never what they may see: that is looked up in the (live) reference
data on every request, so a revoked person is out at once. Every form carries a CSRF token
derived from the session.

Each service adds its own views (``entrypoints/console.py``); this module knows no service.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from services.kernel.errors import CommandRefused
from services.kernel.events import PageRequested
from services.kernel.reference import CaseManager, Contact, District, ReferenceData, School
from services.web.web import PRIVATE_PAGE_HEADERS, ApiError, api_error_response, as_api_error

SESSION_COOKIE = "handoff_session"
SESSION_SECONDS = 10 * 3600  # a shift


@dataclass(frozen=True)
class Viewer:
    """Who is looking, and what they are: staff (case manager, outreach, program manager,
    administrator), a district's HWC coordinator, or a school's contact."""

    kind: str            # "staff" | "coordinator" | "school"
    id: str
    display_name: str
    role: str            # staff role, or "coordinator" / "school_contact"
    staff: CaseManager | None = None
    district: District | None = None
    school: School | None = None
    csrf: str = ""


def find_principal(reference: ReferenceData, token: str) -> tuple[str, str] | None:
    """(kind, id) of whoever holds ``token``; agencies' CAD tokens do not open the console."""
    for person in reference.case_managers.values():
        if person.token_matches(token):
            return "staff", person.case_manager_id
    for district in reference.districts.values():
        if district.coordinator.token_matches(token):
            return "coordinator", district.district_id
    for school in reference.schools.values():
        for contact in (school.primary_contact, school.backup_contact):
            if contact is not None and contact.token_matches(token):
                return "school", f"{school.school_id}/{contact.contact_id}"
    return None


class Sessions:
    def __init__(self, secret: str, reference: ReferenceData, secure_cookies: bool) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="handoff-console-session")
        self.secret = secret.encode()
        self.reference = reference
        self.secure_cookies = secure_cookies

    def cookie_for(self, kind: str, principal_id: str) -> str:
        return self.serializer.dumps([kind, principal_id])

    def viewer(self, request: Request) -> Viewer | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            kind, principal_id = self.serializer.loads(raw, max_age=SESSION_SECONDS)
        except (BadSignature, ValueError, TypeError):
            return None
        csrf = hmac.new(self.secret, raw.encode(), hashlib.sha256).hexdigest()[:32]
        ref = self.reference
        if kind == "staff" and principal_id in ref.case_managers:
            person = ref.case_managers[principal_id]
            return Viewer(kind, principal_id, person.display_name, person.role, staff=person, csrf=csrf)
        if kind == "coordinator" and principal_id in ref.districts:
            district = ref.districts[principal_id]
            return Viewer(kind, district.coordinator.contact_id, district.coordinator.display_name, "coordinator",
                          district=district, csrf=csrf)
        if kind == "school":
            school_id, contact_id = principal_id.split("/", 1)
            school = ref.schools.get(school_id)
            contact = _contact(school, contact_id) if school else None
            if contact is not None:
                return Viewer(kind, contact_id, contact.display_name, "school_contact", school=school, csrf=csrf)
        return None  # removed from the reference data since: out at once

    def require(self, request: Request, *roles: str) -> Viewer:
        """The signed-in viewer if their role is one of ``roles``; 401 or 403 otherwise."""
        viewer = self.viewer(request)
        if viewer is None:
            raise ConsoleSignIn()
        if roles and viewer.role not in roles:
            raise ApiError(403, "role", "this view is not for your role")
        return viewer

    def check_csrf(self, viewer: Viewer, token: str) -> None:
        if not hmac.compare_digest(viewer.csrf, token or ""):
            raise ApiError(403, "csrf_token", "the form has expired; reload the page")


def _contact(school: School, contact_id: str) -> Contact | None:
    return next((c for c in (school.primary_contact, school.backup_contact) if c and c.contact_id == contact_id), None)


class ConsoleSignIn(Exception):
    """Not signed in: the console answers with the sign-in page (401)."""


# --- routes every console has --------------------------------------------------------------------
HOME_BY_ROLE = {"case_manager": "/console/my-referrals", "outreach": "/console/worklist",
                "program_manager": "/console/dashboard", "administrator": "/console/dashboard",
                "coordinator": "/console/triage", "school_contact": "/console/notices"}


class SignInLimiter:
    """At most ``attempts`` wrong access codes per client in ``window_seconds``: an access code is a
    bearer token, and guessing one must not be free. Kept per process (each API replica counts its own)."""

    def __init__(self, attempts: int = 10, window_seconds: float = 300.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.attempts, self.window, self.monotonic = attempts, window_seconds, monotonic
        self._failures: dict[str, deque[float]] = {}

    def failed(self, client: str) -> None:
        self._recent(client).append(self.monotonic())

    def blocked_for(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        recent = self._recent(client)
        if len(recent) < self.attempts:
            return 0
        return max(1, int(recent[0] + self.window - self.monotonic()) + 1)

    def _recent(self, client: str) -> deque[float]:
        if len(self._failures) > 10_000:  # many clients: forget the quiet ones rather than grow without end
            self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > self.monotonic() - self.window}
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= self.monotonic() - self.window:
            recent.popleft()
        return recent


def create_router(sessions: Sessions, sign_ins: SignInLimiter | None = None) -> APIRouter:
    api = APIRouter(include_in_schema=False)
    sign_ins = sign_ins or SignInLimiter()

    @api.get("/console/login", response_class=HTMLResponse)
    async def login_form(error: str = "") -> HTMLResponse:
        return page("Sign in", login_html(error), None, status=401 if error else 200)

    @api.post("/console/login")
    async def login(request: Request, token: str = Form("")) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = sign_ins.blocked_for(client)
        if wait:
            return page("Sign in", login_html("Too many tries. Wait a few minutes, then try again."), None, status=429,
                        headers={"Retry-After": str(wait)})
        found = find_principal(sessions.reference, token.strip())
        if found is None:
            sign_ins.failed(client)
            return page("Sign in", login_html("That access code is not valid."), None, status=401)
        response = RedirectResponse("/console", status_code=303)
        response.set_cookie(SESSION_COOKIE, sessions.cookie_for(*found), max_age=SESSION_SECONDS, httponly=True,
                            samesite="strict", secure=sessions.secure_cookies, path="/")
        return response

    @api.post("/console/logout")
    async def logout(request: Request, csrf_token: str = Form("")) -> Response:
        viewer = sessions.require(request)
        sessions.check_csrf(viewer, csrf_token)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @api.get("/console")
    async def home(request: Request) -> Response:
        viewer = sessions.require(request)
        return RedirectResponse(HOME_BY_ROLE[viewer.role], status_code=303)

    return api


def install_console_handlers(app, sessions: Sessions) -> None:
    """Not signed in: the sign-in page. A refusal inside the console: a page saying why (the API
    keeps its JSON errors)."""
    @app.exception_handler(ConsoleSignIn)
    async def _sign_in(_request: Request, _exc: ConsoleSignIn) -> HTMLResponse:
        return page("Sign in", login_html("Please sign in to continue."), None, status=401)

    @app.exception_handler(CommandRefused)
    async def _command_refused(request: Request, exc: CommandRefused) -> Response:
        return await _refused(request, as_api_error(exc))

    @app.exception_handler(ApiError)
    async def _refused(request: Request, exc: ApiError) -> Response:
        if not request.url.path.startswith("/console"):
            return await api_error_response(request, exc)
        reason = "; ".join(f"{e['field']}: {e['reason']}" for e in exc.errors)
        title = {403: "Not yours to see", 404: "Not found", 409: "Not possible now"}.get(exc.status, "Refused")
        return page(title, f'<p class=alert role=alert>{esc(reason)}</p><p><a href="/console">Back</a></p>',
                    sessions.viewer(request), status=exc.status)


def login_html(error: str) -> str:
    alert = f'<p class="alert" role="alert">{esc(error)}</p>' if error else ""
    return (f"{alert}<form method=post action=/console/login class=stack>"
            "<label for=token>Your access code</label>"
            "<input id=token name=token type=password autocomplete=current-password required>"
            "<button type=submit>Sign in</button></form>"
            "<p class=muted>School staff: a notice's link works without signing in.</p>")


# --- the page shell ------------------------------------------------------------------------------
NAV_BY_ROLE = {
    "case_manager": [("/console/my-referrals", "My referrals"), ("/console/worklist", "Outreach worklist")],
    "outreach": [("/console/worklist", "Outreach worklist")],
    "program_manager": [("/console/dashboard", "Dashboard"), ("/console/worklist", "Outreach worklist")],
    "administrator": [("/console/dashboard", "Dashboard")],
    "coordinator": [("/console/triage", "Triage queue")],
    "school_contact": [("/console/notices", "Notices")],
}

CSS = """
:root{--ink:#111;--muted:#555;--line:#ccd;--brand:#0b5394;--warn:#8a1c00;--ok:#0b6b2e;--bg:#fff;--panel:#f4f6fa}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--ink);background:var(--bg)}
a{color:var(--brand)}a:focus,button:focus,input:focus,select:focus{outline:3px solid #f1c232;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem;z-index:9}
header{background:var(--brand);color:#fff;padding:.5rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center}
header a{color:#fff}header .who{margin-left:auto;font-size:.9rem}header form{display:inline}
header button{background:transparent;border:1px solid #fff;color:#fff;padding:.2rem .6rem;font-size:.9rem;min-height:auto}
nav ul{list-style:none;margin:0;padding:0;display:flex;gap:1rem;flex-wrap:wrap}
main{max-width:64rem;margin:0 auto;padding:1rem}h1{font-size:1.5rem;margin:.5rem 0 1rem}h2{font-size:1.2rem}
button,.button{font-size:1.05rem;min-height:44px;padding:.6rem 1.1rem;background:var(--brand);color:#fff;border:0;border-radius:.4rem;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#fff;color:var(--brand);border:2px solid var(--brand)}
input,select{font-size:1rem;padding:.55rem;border:1px solid #667;border-radius:.3rem;width:100%;max-width:24rem}
label{font-weight:600;display:block}.stack>*+*{margin-top:.75rem}.muted{color:var(--muted)}
.alert{background:#fdecea;color:var(--warn);padding:.6rem .8rem;border-radius:.3rem}.ok{background:#e7f4ea;color:var(--ok);padding:.6rem .8rem;border-radius:.3rem}
.cards{list-style:none;padding:0;display:grid;gap:.75rem}.card{border:1px solid var(--line);border-radius:.5rem;padding:.75rem 1rem;background:var(--panel)}
.card h2,.card h3{margin:.1rem 0 .3rem;font-size:1.05rem}.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;background:#e1e8f5;font-size:.85rem}
.badge.due{background:#fde2c8;color:#6a2a00}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
.actions{display:flex;flex-wrap:wrap;gap:.5rem}.grid2{display:grid;gap:1rem;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr))}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line)}
figure{margin:0}figcaption{font-weight:600;margin-bottom:.25rem}svg text{font:12px system-ui,sans-serif;fill:#222}
@media print{header,nav,.actions,.noprint{display:none}main{max-width:none}}
"""


def page(title: str, body_html: str, viewer: Viewer | None, status: int = 200, head: str = "",
         headers: dict[str, str] | None = None) -> HTMLResponse:
    nav = ""
    if viewer is not None:
        links = "".join(f'<li><a href="{href}">{esc(label)}</a></li>' for href, label in NAV_BY_ROLE[viewer.role])
        nav = (f'<nav aria-label="Console"><ul>{links}</ul></nav><span class=who>{esc(viewer.display_name)} '
               f'<form method=post action=/console/logout>{csrf_field(viewer)}<button type=submit>Sign out</button>'
               "</form></span>")
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>{esc(title)} · Handoff</title><style>{CSS}</style>{head}'
        f'</head><body><a class=skip href="#main">Skip to content</a><header><strong>Handoff</strong>{nav}</header>'
        f'<main id="main"><h1>{esc(title)}</h1>{body_html}</main></body></html>', status_code=status,
        headers={**PRIVATE_PAGE_HEADERS, **(headers or {})})


def local_time(at: datetime, zone: ZoneInfo | str | None) -> str:
    """A time as people read it where they are: 'Fri 20 Nov 10:05' in ``zone`` (ISO 8601 without one)."""
    if zone is None:
        return at.isoformat()
    return at.astimezone(ZoneInfo(zone) if isinstance(zone, str) else zone).strftime("%a %d %b %H:%M")


def handoff_html(page_request: PageRequested | None, zone: ZoneInfo | None) -> str:
    """The warm-handoff details of a page: where, who called it in and how to reach them (tap to
    call), and how to recognise the person. Shown to the holder of the page's link and in the console."""
    if page_request is None:
        return "<p class=muted>Handoff details are on their way.</p>"
    phone = page_request.officer_callback_phone
    return (f"<dl><dt>Where</dt><dd>{esc(page_request.location_description)}</dd>"
            f"<dt>Officer</dt><dd>{esc(page_request.officer_name)}</dd>"
            f'<dt>Call back</dt><dd><a href="tel:{esc(phone)}">{esc(phone)}</a></dd>'
            f"<dt>Looking for</dt><dd>{esc(page_request.person_description or 'see officer')}</dd>"
            f"<dt>Type</dt><dd>{esc(page_request.referral_type.value.replace('_', ' '))}</dd>"
            f"<dt>Paged</dt><dd>{esc(local_time(page_request.requested_at, zone))}</dd></dl>")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def csrf_field(viewer: Viewer) -> str:
    return f'<input type=hidden name=csrf_token value="{viewer.csrf}">'


def post_button(action: str, label: str, viewer: Viewer, fields: dict[str, str] | None = None,
                secondary: bool = False) -> str:
    hidden = "".join(f'<input type=hidden name="{esc(k)}" value="{esc(v)}">' for k, v in (fields or {}).items())
    cls = ' class="secondary"' if secondary else ""
    return f'<form method=post action="{esc(action)}">{csrf_field(viewer)}{hidden}<button type=submit{cls}>{esc(label)}</button></form>'


# --- charts (server-rendered SVG, labelled for screen readers) ----------------------------------
def bar_chart(title: str, bars: Sequence[tuple[str, float, str]], *, targets: Iterable[tuple[str, float]] = (),
              maximum: float | None = None, unit: str = "") -> str:
    """Horizontal bars (label, value, value text), with optional target lines (label, value)."""
    targets = list(targets)
    top = maximum or max([v for _, v, _ in bars] + [t for _, t in targets] + [1])
    width, left, row = 340, 110, 30
    height = row * len(bars) + 18 + 12 * max(len(targets), 1)
    scale = (width - left - 110) / top  # room to the right for the value text
    parts = []
    for i, (label, value, text) in enumerate(bars):
        y = 10 + i * row
        parts.append(f'<text x="0" y="{y + 15}">{esc(label)}</text>'
                     f'<rect x="{left}" y="{y}" width="{max(value * scale, 1):.1f}" height="20" fill="#0b5394"/>'
                     f'<text x="{left + value * scale + 4:.1f}" y="{y + 15}">{esc(text)}</text>')
    for i, (label, value) in enumerate(targets):
        x = left + value * scale
        parts.append(f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 18}" stroke="#b45309" stroke-width="2" '
                     f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{height - 4 - 12 * i}" fill="#8a3b00">'
                     f'{esc(label)}</text>')
    described = "; ".join(f"{label}: {text}" for label, _, text in bars)
    described += "".join(f"; target {label}" for label, _ in targets)
    return (f'<figure><figcaption>{esc(title)}</figcaption><svg role="img" aria-label="{esc(title)}: {esc(described)}" '
            f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width * 1.6:.0f}px">{"".join(parts)}</svg>'
            "</figure>")


def histogram(title: str, buckets: Sequence[tuple[str, int]]) -> str:
    """Vertical bars of counts per bucket."""
    width, height, base = 340, 150, 120
    top = max([c for _, c in buckets] + [1])
    step = (width - 20) / max(len(buckets), 1)
    parts = []
    for i, (label, count) in enumerate(buckets):
        h = (base - 20) * count / top
        x = 10 + i * step
        parts.append(f'<rect x="{x + 4:.1f}" y="{base - h:.1f}" width="{step - 8:.1f}" height="{h:.1f}" fill="#3d85c6"/>'
                     f'<text x="{x + step / 2:.1f}" y="{base - h - 4:.1f}" text-anchor="middle">{count}</text>'
                     f'<text x="{x + step / 2:.1f}" y="{base + 16}" text-anchor="middle">{esc(label)}</text>')
    described = "; ".join(f"{label}: {count}" for label, count in buckets)
    return (f'<figure><figcaption>{esc(title)}</figcaption><svg role="img" aria-label="{esc(title)}: {esc(described)}" '
            f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width * 1.6:.0f}px">{"".join(parts)}</svg>'
            "</figure>")


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"
