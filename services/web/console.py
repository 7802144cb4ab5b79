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
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup

from services.kernel.clock import spoken_time
from services.kernel.errors import CommandRefused
from services.kernel.events import PageRequested
from services.kernel.reference import CaseManager, Contact, District, ReferenceData, School
from services.web.render import SHARED, fragment, render_page
from services.web.web import ApiError, api_error_response, as_api_error

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
        return page("login.html", "Sign in", None, status=401 if error else 200, error=error)

    @api.post("/console/login")
    async def login(request: Request, token: str = Form("")) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = sign_ins.blocked_for(client)
        if wait:
            return page("login.html", "Sign in", None, status=429, headers={"Retry-After": str(wait)},
                        error="Too many tries. Wait a few minutes, then try again.")
        found = find_principal(sessions.reference, token.strip())
        if found is None:
            sign_ins.failed(client)
            return page("login.html", "Sign in", None, status=401, error="That access code is not valid.")
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
        return page("login.html", "Sign in", None, status=401, error="Please sign in to continue.")

    @app.exception_handler(CommandRefused)
    async def _command_refused(request: Request, exc: CommandRefused) -> Response:
        return await _refused(request, as_api_error(exc))

    @app.exception_handler(ApiError)
    async def _refused(request: Request, exc: ApiError) -> Response:
        if not request.url.path.startswith("/console"):
            return await api_error_response(request, exc)
        reason = "; ".join(f"{e['field']}: {e['reason']}" for e in exc.errors)
        title = {403: "Not yours to see", 404: "Not found", 409: "Not possible now"}.get(exc.status, "Refused")
        return page("message.html", title, sessions.viewer(request), status=exc.status, paragraphs=[reason], alert=True,
                    back="/console")


# --- the page shell ------------------------------------------------------------------------------
NAV_BY_ROLE = {
    "case_manager": [("/console/my-referrals", "My referrals"), ("/console/worklist", "Outreach worklist"),
                     ("/console/qrt", "Overdose follow-ups"), ("/console/walk-ins", "Walk-ins")],
    "outreach": [("/console/worklist", "Outreach worklist"), ("/console/qrt", "Overdose follow-ups"),
                 ("/console/walk-ins", "Walk-ins")],
    "program_manager": [("/console/dashboard", "Dashboard"), ("/console/worklist", "Outreach worklist"),
                        ("/console/qrt", "Overdose follow-ups"), ("/console/walk-ins", "Walk-ins")],
    "administrator": [("/console/dashboard", "Dashboard")],
    "coordinator": [("/console/triage", "Triage queue")],
    "school_contact": [("/console/notices", "Notices")],
}

def page(template: str, title: str, viewer: Viewer | None, *, status: int = 200, package: str = SHARED,
         headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """A console page: ``template`` (of ``package``, else shared) in the base layout, with the viewer's
    navigation in the header."""
    return render_page(template, title=title, package=package, viewer=viewer,
                       nav=NAV_BY_ROLE[viewer.role] if viewer else (), status=status, headers=headers, **context)


def local_time(at: datetime, zone: ZoneInfo | str | None) -> str:
    """A time as people read it where they are: 'Fri 20 Nov 10:05 MST' in ``zone``, with the year when it
    is not this year (``spoken_time``); ISO 8601 without a zone."""
    if zone is None:
        return at.isoformat()
    return spoken_time(at, zone, datetime.now(UTC))


def handoff_html(page_request: PageRequested | None, zone: ZoneInfo | None) -> Markup:
    """The warm-handoff details of a page: where, who called it in and how to reach them (tap to
    call), and how to recognise the person. Shown to the holder of the page's link and in the console."""
    paged = local_time(page_request.requested_at, zone) if page_request else ""
    return fragment("handoff.html", page=page_request, paged=paged)


# --- charts (server-rendered SVG, labelled for screen readers) ----------------------------------
def bar_chart(title: str, bars: Sequence[tuple[str, float, str]], *, targets: Iterable[tuple[str, float]] = (),
              maximum: float | None = None, unit: str = "") -> Markup:
    """Horizontal bars (label, value, value text), with optional target lines (label, value)."""
    targets = list(targets)
    top = maximum or max([v for _, v, _ in bars] + [t for _, t in targets] + [1])
    width, left, row = 340, 110, 30
    height = row * len(bars) + 18 + 12 * max(len(targets), 1)
    scale = (width - left - 110) / top  # room to the right for the value text
    drawn = [{"label": label, "text": text, "y": 10 + i * row, "width": f"{max(value * scale, 1):.1f}",
              "text_x": f"{left + value * scale + 4:.1f}"} for i, (label, value, text) in enumerate(bars)]
    lines = [{"label": label, "x": f"{left + value * scale:.1f}", "label_x": f"{left + value * scale + 3:.1f}",
              "label_y": height - 4 - 12 * i} for i, (label, value) in enumerate(targets)]
    described = "; ".join(f"{label}: {text}" for label, _, text in bars)
    described += "".join(f"; target {label}" for label, _ in targets)
    return fragment("bar_chart.html", title=title, described=described, width=width, height=height, left=left,
                    max_width=f"{width * 1.6:.0f}", bars=drawn, targets=lines)


def histogram(title: str, buckets: Sequence[tuple[str, int]]) -> Markup:
    """Vertical bars of counts per bucket."""
    width, height, base = 340, 150, 120
    top = max([c for _, c in buckets] + [1])
    step = (width - 20) / max(len(buckets), 1)
    drawn = []
    for i, (label, count) in enumerate(buckets):
        h = (base - 20) * count / top
        x = 10 + i * step
        drawn.append({"label": label, "count": count, "x": f"{x + 4:.1f}", "y": f"{base - h:.1f}",
                      "width": f"{step - 8:.1f}", "height": f"{h:.1f}", "mid": f"{x + step / 2:.1f}",
                      "count_y": f"{base - h - 4:.1f}"})
    described = "; ".join(f"{label}: {count}" for label, count in buckets)
    return fragment("histogram.html", title=title, described=described, width=width, height=height, base=base,
                    max_width=f"{width * 1.6:.0f}", bars=drawn)
