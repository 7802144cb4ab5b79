"""What every HTTP entry point shares: error bodies that name fields (never values), bearer-token
principals, and the acknowledgement-link routes (their pages: ``templates/ack.html``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.kernel.clock import EventTimeWindow
from services.kernel.errors import CommandRefused, Rejected, describe_errors
from services.platform.logs import correlation_of, get_logger
from services.web.render import render_page

T = TypeVar("T")
log = get_logger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, field: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.status, self.headers = status, headers or {}
        self.errors = [{"field": field, "reason": reason}]


# How an API under a path prefix words its errors, where it speaks a standard of its own (FHIR: an
# OperationOutcome): (status, errors) -> (body, media type). The rest answer {"errors": [{field, reason}]}.
ErrorDialect = Callable[[int, list[dict[str, str]]], tuple[dict[str, Any], str]]


def error_response(path: str, dialects: dict[str, ErrorDialect], status: int, errors: list[dict[str, str]],
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """Every refusal, in the words of the API the path belongs to."""
    for prefix, dialect in dialects.items():
        if path == prefix or path.startswith(prefix + "/"):
            body, media_type = dialect(status, errors)
            return JSONResponse(body, status_code=status, headers=headers, media_type=media_type)
    return JSONResponse({"errors": errors}, status_code=status, headers=headers)


def dialects_of(request: Request) -> dict[str, ErrorDialect]:
    return getattr(request.app.state, "error_dialects", {})


async def api_error_response(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(request.url.path, dialects_of(request), exc.status, exc.errors, exc.headers)


def sentence(reason: str) -> str:
    """A refusal's reason as a person reads it: a sentence, without the field name the API answers with."""
    reason = reason.strip()
    if not reason:
        return reason
    return reason[0].upper() + reason[1:] + ("" if reason.endswith((".", "!", "?")) else ".")


def said_to_people(exc: ApiError) -> str:
    """What a page (not the API) says of a refusal: its reasons as sentences, no field names."""
    return " ".join(sentence(e["reason"]) for e in exc.errors)


def as_api_error(exc: CommandRefused) -> ApiError:
    return ApiError(exc.status, exc.field, exc.reason)


def own_agency(signed_in: str, given: str) -> None:
    """An intake's body names the agency it comes from: the one that signed in, or 403."""
    if given != signed_in:
        raise ApiError(403, "agency_id", "does not match the authenticated agency")


def intake_refused(exc: Rejected, forbidden: tuple[str, ...] = ()) -> ApiError:
    """An intake rule's refusal: 403 when its field says who may send there (``forbidden``), else 422."""
    return ApiError(403 if exc.field in forbidden else 422, exc.field, exc.detail)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error_response)

    @app.exception_handler(CommandRefused)
    async def _command_refused(request: Request, exc: CommandRefused) -> JSONResponse:
        return await api_error_response(request, as_api_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing's own refusals (404 no such path, 405 wrong method) in the same shape as ours.
        what = {400: "body", 404: "path", 405: "method", 413: "body"}.get(exc.status_code, "request")
        reason = str(exc.detail)
        if exc.status_code == 400 and reason == "There was an error parsing the body":  # FastAPI's own words
            reason = "not JSON this API can read: UTF-8 text, nested no deeper than a few hundred levels"
        return error_response(request.url.path, dialects_of(request), exc.status_code,
                              [{"field": what, "reason": reason}], getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default body echoes the submitted values; ours names the field and the reason only.
        malformed = [e for e in exc.errors() if e.get("type") == "json_invalid"]
        if malformed:  # not JSON at all: a 400 that says where, in words (FastAPI's loc is the character index)
            return error_response(request.url.path, dialects_of(request), 400, [{"field": "body", "reason": (
                describe_json_error(malformed[0], await request.body()))}])
        return error_response(request.url.path, dialects_of(request), 422,
                              describe_errors(exc.errors(), skip=("body",), root="body"))


def describe_json_error(error: dict, body: bytes) -> str:
    """'malformed JSON at line 3, column 14 (character 40): Expecting ',' delimiter'; never the text itself."""
    position = next((p for p in error.get("loc", ()) if isinstance(p, int)), None)
    what = (error.get("ctx") or {}).get("error") or "not valid JSON"
    if position is None:
        return f"malformed JSON: {what}"
    before = body[:position].decode("utf-8", "replace")
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1 if "\n" in before else position + 1
    return f"malformed JSON at line {line}, column {column} (character {position}): {what}"


class RequestLimits:
    """ASGI middleware in front of every route: a body over ``max_body_bytes`` is refused with 413
    before it is read into memory (by its Content-Length, or counted as it streams in), and a JSON
    API route (``json_route(path)``) refuses another content type with 415.

    413, not 503: a CAD system retries a 503 forever, and this body will never fit."""

    def __init__(self, app, max_body_bytes: int, json_route: Callable[[str], bool],
                 dialects: dict[str, ErrorDialect] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.json_route = json_route
        self.dialects = dialects or {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(send, scope["path"], 413, "body", f"larger than {self.max_body_bytes} bytes")
            return
        if self.json_route(scope["path"]):
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                await self._refuse(send, scope["path"], 415, "content-type", "must be application/json")
                return
        received = 0

        async def counted_receive():
            # Raised as an HTTPException so that FastAPI's body reader passes it on as it is
            # (any other error there becomes a 400) and the error handlers answer 413.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, f"larger than {self.max_body_bytes} bytes")
            return message

        await self.app(scope, counted_receive, send)

    async def _refuse(self, send, path: str, status: int, field: str, reason: str) -> None:
        answer = error_response(path, self.dialects, status, [{"field": field, "reason": reason}])
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", answer.media_type.encode()),
                                (b"content-length", str(len(answer.body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": bytes(answer.body)})


RETRY_AFTER_SECONDS = 5


async def published_or_503(publishing: Awaitable[T], timeout_seconds: float, what: str, **log_context: str) -> T:
    """Bounded: while Kafka is unreachable the caller hears 503 with Retry-After at once and retries,
    instead of hanging (a retry of something that did get through is deduplicated downstream)."""
    from aiokafka.errors import KafkaError

    try:  # a new subject's key is written before the record sealed under it, within the same limit
        return await asyncio.wait_for(publishing, timeout_seconds)
    except (TimeoutError, KafkaError, ConnectionError) as exc:
        log.warning(f"{what}_publish_failed", error_type=type(exc).__name__, **log_context)
        raise ApiError(503, "service", "event backbone unavailable; retry later",
                       {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None


def bearer_principal(candidates: Callable[[Any], Iterable[T]], who: str) -> Callable[..., Awaitable[T]]:
    """A FastAPI dependency: the one of ``candidates(reference)`` that the bearer token names, else 401 (audited);
    ``reference`` is the app's live reference data (``app.state.reference``).

    A static API token names the candidate whose ``token_matches`` it. An access token from an identity provider
    (the app's ``access_tokens``: ``machine_clients.AccessTokens``) names the candidate whose ``clients`` list its
    client; its scopes are kept in ``request.state.granted_scopes`` for the routes that narrow by them.
    ``candidates`` is called per request, so live reference data is always current.
    """
    from services.web.oidc import ProviderUnavailable, TokenRefused

    bearer = HTTPBearer(auto_error=False, description=f"{who}'s API token, or an access token from its identity provider")

    async def principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> T:
        given = creds.credentials if creds is not None else ""
        tokens = getattr(request.app.state, "access_tokens", None)
        try:
            client = await tokens.client(given) if given and tokens is not None else None
        except TokenRefused as exc:
            await denied(request, 401, exc.reason, 'Bearer error="invalid_token"')
        except ProviderUnavailable:
            raise ApiError(503, "authorization", "the identity provider cannot be reached to check the token; "
                           "retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        if client is not None:
            found = next((c for c in candidates(request.app.state.reference)
                          if client.account in getattr(c, "clients", ())), None)
            if found is None:
                await denied(request, 403, f"client {client.account} is not registered as {who}",
                             'Bearer error="invalid_token"', user_id=client.account)
            request.state.granted_scopes = client.scopes
            request.state.client_account = client.account  # who acted, for what the route records
            return found
        if given:
            for candidate in candidates(request.app.state.reference):
                if candidate.token_matches(given):
                    return candidate
        await denied(request, 401, f"a valid bearer token of {who} is required", "Bearer")

    return principal


async def denied(request: Request, status: int, reason: str, challenge: str, user_id: str | None = None) -> NoReturn:
    """Refuse an API request, with an ``AccessAudited`` record where the app keeps an ``access_log``."""
    from services.web.events import AccessEvent

    access_log = getattr(request.app.state, "access_log", None)
    if access_log is not None:
        await access_log.record(request, AccessEvent.access_denied, False, user_id=user_id, component="api",
                                reason=f"{request.method} {request.url.path}: {reason}")
    raise ApiError(status, "authorization", reason, {"WWW-Authenticate": challenge})


@dataclass(frozen=True)
class AckFlow:
    """An acknowledgement by signed link (``/ack/{purpose}/{token}``): what the page asks and says, and what it
    does. ``acknowledge(subject id, recipient id)`` records it; ``details`` (HTML) shows what is acknowledged;
    ``acknowledged(subject id)`` says by whom and when, once it was (then the page says so instead of offering
    the button again); ``next_steps`` (HTML) follows an acknowledgement; ``gone(subject id)`` says why what the
    link is about is no longer kept (then the page says that, and nothing is acknowledged)."""

    purpose: str
    title: str
    question: str
    done: str
    acknowledge: Callable[[str, str], Awaitable[None]]
    details: Callable[[str, str], str] | None = None
    acknowledged: Callable[[str], str | None] | None = None
    next_steps: Callable[[str, str], str] | None = None
    gone: Callable[[str], str | None] | None = None  # why what the link is about is no longer there, if it is not
    wording: Callable[[str], tuple[str, str] | None] | None = None  # (question, done) where a subject needs its own


async def ack_link_page(links: Any, flow: AckFlow, token: str, act: bool) -> HTMLResponse:
    """GET (``act`` False) shows what is acknowledged and a confirmation button; POST acknowledges. Only POST
    acts: mail scanners and link previews fetch GET links. After the fact, both say so."""
    from services.delivery.links import InvalidLink

    try:
        subject_id, recipient_id = links.verify(flow.purpose, token)
    except InvalidLink as exc:
        return render_page("message.html", title="Link not valid", narrow=True, status=410,
                           paragraphs=[str(exc)], alert=False, back=None)
    if flow.gone and (why := flow.gone(subject_id)):  # nothing to acknowledge: say so, and record nothing
        return render_page("message.html", title="No longer available", narrow=True, status=410, paragraphs=[why],
                           alert=False, back=None)
    shown = flow.details(subject_id, recipient_id) if flow.details and not act else ""
    after = flow.next_steps(subject_id, recipient_id) if flow.next_steps else ""
    earlier = flow.acknowledged(subject_id) if flow.acknowledged else None
    if earlier:  # shown (200); posted again (a replayed button, a push's action) is refused: 409, nothing recorded
        return render_page("ack.html", title="Already acknowledged", narrow=True, status=409 if act else 200,
                           said=f"Already acknowledged {earlier}.", details=shown, question=None, next_steps=after)
    question, done = (flow.wording(subject_id) if flow.wording else None) or (flow.question, flow.done)
    if not act:
        return render_page("ack.html", title=flow.title, narrow=True, said=None, details=shown, question=question,
                           next_steps="")
    try:
        await flow.acknowledge(subject_id, recipient_id)
    except ApiError as exc:  # a person holds this link: a page that says why, in words, not the API's JSON
        if exc.status >= 500:
            raise
        return render_page("message.html", title="Not acknowledged", narrow=True, status=exc.status,
                           paragraphs=[said_to_people(exc)], alert=True, back=None)
    return render_page("ack.html", title="Acknowledged", narrow=True, said=done, details="", question=None,
                       next_steps=after)


# A caller's own correlation id (X-Correlation-ID), or a W3C trace context's trace id (traceparent).
_CORRELATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{7,127}$")
_TRACEPARENT = re.compile(r"^(?!ff)[0-9a-f]{2}-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


def correlation_id_for(request: Request, event=None) -> str | None:
    """The correlation id of an intake: the caller's ``X-Correlation-ID`` when well formed (8 to 128 letters,
    digits and ``._:-``), else the trace id of a well-formed W3C ``traceparent``, else the one the event's CAD
    incident implies (``correlation_of``), else None (a new one). A malformed header is ignored, not refused:
    it must not cost a referral."""
    given = request.headers.get("x-correlation-id", "").strip()
    if _CORRELATION_ID.match(given):
        return given
    trace = _TRACEPARENT.match(request.headers.get("traceparent", "").strip().lower())
    if trace:
        return trace.group(1)
    return correlation_of(event) if event is not None else None


def csv_cell(value) -> str:
    """A value as a CSV cell: one a spreadsheet would run as a formula (=, +, -, @) is quoted as text."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_download(columns: Iterable[str], rows: Iterable[Iterable[Any]], filename: str) -> Response:
    """Rows as a CSV attachment, each cell safe from spreadsheet formulas (``csv_cell``), never cached: what it
    holds may name people."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(v.isoformat() if isinstance(v, datetime) else v) for v in row])
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{filename}"'})


def time_given(field: str, given: datetime | None, now: datetime, window: EventTimeWindow) -> datetime:
    """A time a person entered for something that happened (an attempt, a milestone): now when left out,
    422 naming the field when it has no UTC offset or is further from now than the window allows."""
    at = given or now
    if at.tzinfo is None:
        raise ApiError(422, field, "must carry a UTC offset")
    try:
        window.check(field, at, now)
    except Rejected as exc:
        raise ApiError(422, exc.field, exc.detail) from None
    return at
