"""JSON logs through structlog, with correlation ids and personal data redacted.

- ``configure_logging`` routes structlog and the standard library (Faust, aiokafka, uvicorn) through
  one JSON renderer.
- ``redact_personal_data`` replaces the value of any key that names personal data, at any depth,
  and strips pydantic's ``input_value=...`` echoes from messages: logs carry correlation ids,
  never names, dates of birth, phones, addresses or narratives.
- The correlation id lives in a context variable: ``correlation_scope`` binds it for a unit of work;
  producers copy it into the ``correlation_id`` Kafka header so that every derived event carries it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import logging.config
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import structlog

CORRELATION_HEADER = "correlation_id"
REDACTED = "[redacted]"

# Keys whose values are personal data wherever they appear (exact names, lower-cased).
PERSONAL_KEYS = frozenset({
    "name", "first_name", "last_name", "full_name", "given_name", "family_name", "child", "person",
    "date_of_birth", "dob", "birth_date", "phone", "phone_number", "callback_phone", "officer_callback_phone",
    "to", "from", "from_", "email", "address", "location", "location_description", "description",
    "person_description", "narrative", "notes", "other_people", "officer", "officer_name", "body", "text",
    "message_body", "incident", "school_name_hint",
})
_INPUT_ECHO = re.compile(r"input_value=.*?(?=, input_type=|\]$|$)", re.S)

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def incident_correlation_id(agency_id: str, incident_id: str) -> str:
    """One CAD incident's correlation id, the same from every intake (HTTP, Kafka, EIDO, a file): the page
    for an adult referred and the notice for a child met at the same call carry one id."""
    return hashlib.sha256(f"incident\x1f{agency_id}\x1f{incident_id}".encode()).hexdigest()[:32]


def correlation_of(event: Any) -> str | None:
    """The correlation id an inbound CAD event implies: its incident's, when it names one."""
    agency_id, incident_id = getattr(event, "agency_id", None), getattr(event, "incident_id", None)
    return incident_correlation_id(agency_id, incident_id) if agency_id and incident_id else None


def current_correlation_id() -> str | None:
    return _correlation_id.get()


@contextlib.contextmanager
def correlation_scope(correlation_id: str | None = None) -> Iterator[str]:
    """Bind a correlation id (a new one if none is given) for the code inside the block."""
    cid = correlation_id or new_correlation_id()
    token = _correlation_id.set(cid)
    try:
        with structlog.contextvars.bound_contextvars(correlation_id=cid):
            yield cid
    finally:
        _correlation_id.reset(token)


def correlation_from_headers(headers: Mapping[str, bytes] | list[tuple[str, bytes]] | None) -> str | None:
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    for key, value in items:
        if key == CORRELATION_HEADER and value:
            return value.decode("utf-8", "replace")
    return None


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: (REDACTED if str(k).lower() in PERSONAL_KEYS else _redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    if isinstance(value, str) and "input_value=" in value:
        return _INPUT_ECHO.sub("input_value=" + REDACTED, value)
    return value


def redact_personal_data(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: personal values never reach a log line."""
    return _redact(event_dict)


def _shared_processors() -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_personal_data,
    ]


def configure_logging(level: str = "INFO", fmt: str = "json", service: str | None = None, stream=None) -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    processors = _shared_processors()
    if service:
        processors.insert(0, lambda _l, _m, ev: {**ev, "service": service})
    structlog.configure(
        processors=[*processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=processors, processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer])
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at INFO; their warnings still come through.
    for noisy in ("aiokafka", "kafka", "faust", "mode", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
