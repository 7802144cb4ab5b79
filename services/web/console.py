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
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeSerializer
from markupsafe import Markup

from services.kernel.clock import Clock, SystemClock, spoken_time
from services.kernel.errors import CommandRefused
from services.kernel.lead import PageRequested
from services.kernel.reference import CaseManager, Contact, District, ReferenceData, School
from services.kernel.topics import AUDIT, CONSOLE_SESSIONS
from services.messaging.kafka import Publisher
from services.platform.logs import get_logger
from services.web.deps import app_state
from services.web.events import AccessAudited, AccessEvent, ConsoleSessionEnded
from services.web.render import SHARED, fragment, render_page
from services.web.web import ApiError, api_error_response, as_api_error, published_or_503, said_to_people

log = get_logger(__name__)
SESSION_COOKIE = "handoff_session"
REFRESH_AFTER = timedelta(minutes=1)  # the cookie's "last used" is renewed at most this often


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
    session_id: str = ""
    signed_in_at: datetime | None = None
    principal: str = ""  # who signed in, as the audit names them: staff id, district id, school/contact id
    signed_in_with: tuple[str, str] | None = None  # (identity provider id, its ID token): to sign out there too


def _people(reference: ReferenceData) -> Iterator[tuple[str, str, CaseManager | Contact]]:
    """(kind, id, entry) of everyone who may open the console: staff, district coordinators, school contacts."""
    for person in reference.case_managers.values():
        yield "staff", person.case_manager_id, person
    for district in reference.districts.values():
        yield "coordinator", district.district_id, district.coordinator
    for school in reference.schools.values():
        for contact in (school.primary_contact, school.backup_contact):
            if contact is not None:
                yield "school", f"{school.school_id}/{contact.contact_id}", contact


def find_principal(reference: ReferenceData, token: str) -> tuple[str, str] | None:
    """(kind, id) of whoever holds ``token``; agencies' CAD tokens do not open the console."""
    return next(((kind, id_) for kind, id_, entry in _people(reference) if entry.token_matches(token)), None)


def find_account(reference: ReferenceData, provider_id: str, claims: dict) -> tuple[str, str] | None:
    """(kind, id) of the directory's person whose ``accounts`` name this provider's subject, or its verified
    email; None for an account the directory does not know (roles and sites are the directory's)."""
    wanted = {f"{provider_id}:sub:{claims.get('sub')}"}
    if claims.get("email") and claims.get("email_verified") is True:
        wanted.add(f"{provider_id}:email:{str(claims['email']).casefold()}")
    return next(((kind, id_) for kind, id_, entry in _people(reference)
                 if wanted & {a if ":sub:" in a else a.casefold() for a in entry.accounts}), None)


def role_of(reference: ReferenceData, kind: str, principal_id: str) -> str:
    """The directory's role for a (kind, id) that ``find_account`` or ``find_principal`` named."""
    if kind == "staff":
        return reference.case_managers[principal_id].role
    return "coordinator" if kind == "coordinator" else "school_contact"


def session_key(session_id: str) -> str:
    """What the session topic and the ledger of ended sessions hold instead of the session's id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Console sessions: a signed cookie naming the person, the session's id, when it began and when it
    was last used. It ends ``idle`` after its last use (CJIS: at most 30 minutes) and ``lifetime`` after
    it began, whatever its use; signing out ends it at once on every API replica (``ConsoleSessionEnded``
    on the sessions topic, which each replica follows into ``ended``); a person the live directory no
    longer has is out at once. What the person may see is looked up on every request, never kept."""

    def __init__(self, secret: str, reference: ReferenceData, secure_cookies: bool, *, clock: Clock | None = None,
                 idle: timedelta = timedelta(minutes=15), lifetime: timedelta = timedelta(hours=12),
                 access_codes: bool = False) -> None:
        self.serializer = URLSafeSerializer(secret, salt="handoff-console-session-2")
        self.secret = secret.encode()
        self.reference = reference
        self.secure_cookies = secure_cookies
        self.clock = clock or SystemClock()
        self.idle, self.lifetime = idle, lifetime
        self.access_codes = access_codes  # sign-in by access code: a development setting (people sign in at their IdP)
        self.ended: dict[str, datetime] = {}  # session key -> when it would have ended anyway

    def cookie_for(self, kind: str, principal_id: str, signed_in_with: tuple[str, str] | None = None) -> str:
        """A new session's cookie; ``signed_in_with``: (provider id, ID token) of an OIDC sign-in, kept to end
        the provider's session too when the person signs out."""
        now = self.clock.now().timestamp()
        return self.serializer.dumps([kind, principal_id, secrets.token_urlsafe(18), now, now,
                                      list(signed_in_with) if signed_in_with else None])

    def apply(self, event) -> None:
        """An ended session, from the sessions topic (this replica's own sign-outs too); other events pass by."""
        if not isinstance(event, ConsoleSessionEnded):
            return
        now = self.clock.now()
        if len(self.ended) > 1000:  # forget what would have ended anyway
            self.ended = {k: until for k, until in self.ended.items() if until > now}
        self.ended[event.session_key] = event.lasts_until

    def ended_event(self, viewer: Viewer, reason: str) -> ConsoleSessionEnded:
        return ConsoleSessionEnded(session_key=session_key(viewer.session_id), user_id=viewer.id, reason=reason,
                                   ended_at=self.clock.now(),
                                   lasts_until=(viewer.signed_in_at or self.clock.now()) + self.lifetime)

    def viewer(self, request: Request) -> Viewer | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            kind, principal_id, session_id, began, used, provider = self.serializer.loads(raw)
            began_at, used_at = (datetime.fromtimestamp(float(t), UTC) for t in (began, used))
            signed_in_with = (str(provider[0]), str(provider[1])) if provider else None
        except (BadSignature, ValueError, TypeError):
            return None
        now = self.clock.now()
        ended = ("ended" if session_key(str(session_id)) in self.ended else
                 "lifetime" if now - began_at > self.lifetime else "idle" if now - used_at > self.idle else None)
        if ended is not None:
            request.state.session_ended = (ended, kind, principal_id)
            return None
        viewer = self._who(str(kind), str(principal_id))
        if viewer is None:  # removed from the reference data since: out at once
            request.state.session_ended = ("not_in_directory", kind, principal_id)
            return None
        if now - used_at >= REFRESH_AFTER:  # still in use: renewed on the way out (install_console_handlers)
            request.state.session_cookie = self.serializer.dumps([kind, principal_id, session_id, began, now.timestamp(),
                                                                  provider])
        csrf = hmac.new(self.secret, str(session_id).encode(), hashlib.sha256).hexdigest()[:32]
        return replace(viewer, csrf=csrf, session_id=str(session_id), signed_in_at=began_at, principal=str(principal_id),
                       signed_in_with=signed_in_with)

    def _who(self, kind: str, principal_id: str) -> Viewer | None:
        ref = self.reference
        if kind == "staff" and principal_id in ref.case_managers:
            person = ref.case_managers[principal_id]
            return Viewer(kind, principal_id, person.display_name, person.role, staff=person)
        if kind == "coordinator" and principal_id in ref.districts:
            district = ref.districts[principal_id]
            return Viewer(kind, district.coordinator.contact_id, district.coordinator.display_name, "coordinator",
                          district=district)
        if kind == "school" and "/" in principal_id:
            school_id, contact_id = principal_id.split("/", 1)
            school = ref.schools.get(school_id)
            contact = _contact(school, contact_id) if school else None
            if contact is not None:
                return Viewer(kind, contact_id, contact.display_name, "school_contact", school=school)
        return None

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


NOT_AFTER_SIGN_IN = ("/console/login", "/console/logout", "/console/sign-in", "/console/signed-in")


def after_sign_in(path: str | None) -> str:
    """Where a sign-in continues: the console page the person was opening (a link's "Open the referral"), if it
    is one of this console's own pages; else the console's home. Never another site (an open redirect)."""
    if (not path or not path.startswith("/console/") or path.startswith(NOT_AFTER_SIGN_IN) or "//" in path
            or "\\" in path or "/.." in path or any(ord(c) < 32 for c in path)):
        return "/console"
    return path


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


class AccessLog:
    """Every door event as ``AccessAudited`` on the audit topic (CJIS 5.4.1.1): when, where, what, who, the
    outcome and why; never a credential, a participant or a child."""

    def __init__(self, publisher: Publisher, clock: Clock, timeout_seconds: float = 5.0) -> None:
        self.publisher, self.clock, self.timeout_seconds = publisher, clock, timeout_seconds

    async def record(self, request: Request, event_type: AccessEvent, success: bool, *, user_id: str | None = None,
                     user_kind: str | None = None, reason: str | None = None, component: str = "console") -> None:
        client = request.client.host if request.client else None
        audited = AccessAudited(audit_id=uuid.uuid4().hex, event_type=event_type, component=component, user_id=user_id,
                                user_kind=user_kind, success=success, reason=reason, client_address=client,
                                occurred_at=self.clock.now())
        # An access that cannot be audited does not happen: 503, and the person tries again.
        await published_or_503(self.publisher.publish(AUDIT, user_id or client or "unknown", audited),
                               self.timeout_seconds, "audit")
        log.info("access_audited", component=component, event_type=event_type.value, success=success, user_id=user_id,
                 reason=reason)


ENDED_SAYS = {"idle": "Your session ended after {idle} minutes without use. Please sign in again.",
              "lifetime": "Your session reached its {hours} hour limit. Please sign in again.",
              "ended": "You signed out. Please sign in again.",
              "not_in_directory": "Your account is no longer in the directory."}


SignOutThere = Callable[[Viewer], Awaitable[str | None]]


router = APIRouter(include_in_schema=False)
ConsoleSessions = Annotated[Sessions, Depends(app_state("sessions"))]
Access = Annotated[AccessLog, Depends(app_state("access_log"))]
SignIns = Annotated[SignInLimiter, Depends(app_state("sign_ins"))]
# Where to send a person signing out so that their identity provider ends its session too (RP-initiated
# logout), or None: the single sign-on's, where the app has one.
SignOut = Annotated[SignOutThere, Depends(app_state("sign_out_there"))]


@router.get("/console/login", response_class=HTMLResponse)
async def login_form(sessions: ConsoleSessions, error: str = "", next: str = "") -> HTMLResponse:
    return sign_in_page(sessions, error, status=401 if error else 200, then=after_sign_in(next))


@router.post("/console/login")
async def login(request: Request, access: Access, sessions: ConsoleSessions, sign_ins: SignIns,
                token: str = Form(""), next: str = Form("")) -> Response:
    if not sessions.access_codes:
        await access.record(request, AccessEvent.sign_in_refused, False, reason="access codes are off")
        return sign_in_page(sessions, "Sign in with your agency's account.", status=403)
    client = request.client.host if request.client else "unknown"
    wait = sign_ins.blocked_for(client)
    if wait:
        await access.record(request, AccessEvent.sign_in_refused, False, reason="too many tries")
        return sign_in_page(sessions, "Too many tries. Wait a few minutes, then try again.", status=429,
                            headers={"Retry-After": str(wait)})
    found = find_principal(sessions.reference, token.strip())
    if found is None:
        sign_ins.failed(client)
        await access.record(request, AccessEvent.sign_in_refused, False, reason="access code not valid")
        return sign_in_page(sessions, "That access code is not valid.")
    kind, principal_id = found
    await access.record(request, AccessEvent.signed_in, True, user_id=principal_id, user_kind=kind)
    response = RedirectResponse(after_sign_in(next), status_code=303)
    set_session_cookie(response, sessions, sessions.cookie_for(kind, principal_id))
    return response


@router.post("/console/logout")
async def logout(request: Request, access: Access, sessions: ConsoleSessions, sign_out_there: SignOut,
                 csrf_token: str = Form("")) -> Response:
    viewer = sessions.require(request)
    sessions.check_csrf(viewer, csrf_token)
    ended = sessions.ended_event(viewer, "signed_out")
    await published_or_503(access.publisher.publish(CONSOLE_SESSIONS, ended.session_key, ended),
                           access.timeout_seconds, "sessions")
    sessions.apply(ended)  # at once here; every other replica as it reads the topic
    await access.record(request, AccessEvent.signed_out, True, user_id=viewer.principal, user_kind=viewer.kind)
    response = RedirectResponse(await sign_out_there(viewer) or "/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/console")
async def home(request: Request, sessions: ConsoleSessions) -> Response:
    viewer = sessions.require(request)
    return RedirectResponse(HOME_BY_ROLE[viewer.role], status_code=303)


def sign_in_page(sessions: Sessions, error: str = "", *, status: int = 401,
                 headers: dict[str, str] | None = None, then: str = "/console") -> HTMLResponse:
    """The sign-in page: a button per identity provider, and the access-code form where codes are allowed. Both
    carry ``then``, the page the person was opening, to continue to once signed in."""
    providers = sorted(sessions.reference.identity_providers.values(), key=lambda p: p.name)
    return page("login.html", "Sign in", None, status=status, headers=headers, error=error, providers=providers,
                access_codes=sessions.access_codes, then=then if then != "/console" else "")


def set_session_cookie(response: Response, sessions: Sessions, value: str) -> None:
    # The browser may keep it for the session's lifetime; the server ends it sooner when it is idle.
    response.set_cookie(SESSION_COOKIE, value, max_age=int(sessions.lifetime.total_seconds()), httponly=True,
                        samesite="strict", secure=sessions.secure_cookies, path="/")


def install_console_handlers(app, sessions: Sessions, access: AccessLog) -> None:
    """Not signed in: the sign-in page, saying why a session ended (and audited). A refusal inside the
    console: a page saying why (the API, and the console's scripts asking for JSON, keep JSON errors). A session
    in use: its cookie renewed."""
    @app.middleware("http")
    async def _renew_session(request: Request, call_next):
        _served_at.set(sessions.clock.now())  # the service's time while the page is made (``local_time``)
        response = await call_next(request)
        renewed = getattr(request.state, "session_cookie", None)
        if renewed and SESSION_COOKIE not in response.headers.get("set-cookie", ""):
            set_session_cookie(response, sessions, renewed)
        return response

    @app.exception_handler(ConsoleSignIn)
    async def _sign_in(request: Request, _exc: ConsoleSignIn) -> HTMLResponse:
        ended = getattr(request.state, "session_ended", None)
        error = "Please sign in to continue."
        if ended is not None:
            why, kind, principal_id = ended
            error = ENDED_SAYS[why].format(idle=int(sessions.idle.total_seconds() // 60),
                                           hours=f"{sessions.lifetime.total_seconds() / 3600:g}")
            expired = why in ("idle", "lifetime")
            try:
                await access.record(request, AccessEvent.session_expired if expired else AccessEvent.access_denied,
                                    False, user_id=str(principal_id), user_kind=str(kind), reason=why)
            except ApiError:
                pass  # the broker is away: the access is refused all the same (and the log has it)
        opening = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = sign_in_page(sessions, error, then=after_sign_in(opening) if request.method == "GET" else "/console")
        if ended is not None:
            response.delete_cookie(SESSION_COOKIE, path="/")  # told once, audited once
        return response

    @app.exception_handler(CommandRefused)
    async def _command_refused(request: Request, exc: CommandRefused) -> Response:
        return await _refused(request, as_api_error(exc))

    @app.exception_handler(ApiError)
    async def _refused(request: Request, exc: ApiError) -> Response:
        # the API, and the console's own scripts (which ask for JSON), get the field and the reason
        if not request.url.path.startswith("/console") or "application/json" in request.headers.get("accept", ""):
            return await api_error_response(request, exc)
        reason = said_to_people(exc)  # the field names stay in the API's answers
        title = {403: "Not yours to see", 404: "Not found", 409: "Not possible now"}.get(exc.status, "Refused")
        return page("message.html", title, sessions.viewer(request), status=exc.status, paragraphs=[reason], alert=True,
                    back="/console")


# --- the page shell ------------------------------------------------------------------------------
NAV_BY_ROLE = {
    "case_manager": [("/console/my-referrals", "My referrals"), ("/console/worklist", "Outreach worklist"),
                     ("/console/qrt", "Overdose follow-ups"), ("/console/walk-ins", "Walk-ins"), ("/console/push", "Push")],
    "outreach": [("/console/worklist", "Outreach worklist"), ("/console/qrt", "Overdose follow-ups"),
                 ("/console/walk-ins", "Walk-ins"), ("/console/push", "Push")],
    "program_manager": [("/console/dashboard", "Dashboard"), ("/console/worklist", "Outreach worklist"),
                        ("/console/qrt", "Overdose follow-ups"), ("/console/walk-ins", "Walk-ins"),
                        ("/console/push", "Push")],
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


# The service's time while a request is served: the year a page leaves out of a time is the service clock's, as every
# deadline on the page is, not the wall's. Pages are made far below their handlers, so it travels with the request.
_served_at: ContextVar[datetime | None] = ContextVar("served_at", default=None)


def local_time(at: datetime, zone: ZoneInfo | str | None) -> str:
    """A time as people read it where they are: 'Fri 20 Nov 10:05 MST' in ``zone``, with the year when it
    is not this year by the service's clock (``spoken_time``); ISO 8601 without a zone."""
    if zone is None:
        return at.isoformat()
    return spoken_time(at, zone, _served_at.get() or datetime.now(UTC))


def handoff_html(page_request: PageRequested | None, zone: ZoneInfo | None) -> Markup:
    """The warm-handoff details of a page: where, who called it in and how to reach them (tap to
    call), and how to recognise the person. Shown to the holder of the page's link and in the console."""
    paged = local_time(page_request.requested_at, zone) if page_request else ""
    return fragment("handoff.html", page=page_request, paged=paged)


# --- charts (server-rendered SVG, labelled for screen readers) ----------------------------------
def bar_chart(title: str, bars: Sequence[tuple[str, float, str]], *,
              targets: Iterable[tuple[str, float, str]] = (), maximum: float | None = None, unit: str = "") -> Markup:
    """Horizontal bars (label, value, value text), with targets (label, value, the label of the bar it is for).

    A target is a mark across its own bar only, and its caption a line of its own under the chart: a line
    across every bar crossed the value labels, and two captions side by side overlapped."""
    targets = list(targets)
    top = maximum or max([v for _, v, _ in bars] + [t for _, t, _ in targets] + [1])
    width, left, row, caption = 340, 110, 30, 16
    height = row * len(bars) + 14 + caption * len(targets)
    scale = (width - left - 110) / top  # room to the right for the value text
    mark_of = {bar_label: left + value * scale for _, value, bar_label in targets}
    drawn = []
    for i, (label, value, text) in enumerate(bars):
        end = max(left + value * scale, mark_of.get(label, 0))  # the value text starts past its target's mark
        drawn.append({"label": label, "text": text, "y": 10 + i * row, "width": f"{max(value * scale, 1):.1f}",
                      "text_x": f"{end + 5:.1f}"})
    rows = {bar["label"]: bar["y"] for bar in drawn}
    lines = [{"label": f"┆ {label} (target, on {bar_label})", "x": f"{left + value * scale:.1f}",
              "y1": rows.get(bar_label, 10) - 4, "y2": rows.get(bar_label, 10) + 24,
              "label_y": row * len(bars) + 10 + caption * (i + 1) - 4} for i, (label, value, bar_label) in enumerate(targets)]
    described = "; ".join(f"{label}: {text}" for label, _, text in bars)
    described += "".join(f"; target {label} on {bar_label}" for label, _, bar_label in targets)
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
