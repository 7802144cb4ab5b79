"""Errors that decide what happens to a record: dead-letter it now, or retry.

A reason always names the field and what is wrong with it, never the value: reasons end up in
HTTP answers, dead-letter records and logs, none of which may carry personal data.
"""

from __future__ import annotations

import re

from pydantic import ValidationError


class InvalidRecord(Exception):
    """The record can never be processed as it is (bad bytes, unknown schema, failed validation).

    Dead-lettered at once, without retries.
    """

    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason


class Rejected(InvalidRecord):
    """Well-formed, but the domain refuses it (e.g. a site that does not accept this referral type)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__("rejected", f"{field}: {reason}")
        self.field = field
        self.detail = reason


_NAMED = re.compile(r"^Value error, ([A-Za-z_][A-Za-z0-9_.]*): (.+)$", re.DOTALL)


class CommandRefused(Exception):
    """A command the service layer will not carry out as asked: ``kind`` says why, in terms the web
    layer turns into a status (not_found 404, forbidden 403, conflict 409, invalid 422)."""

    STATUS = {"not_found": 404, "forbidden": 403, "conflict": 409, "invalid": 422}

    def __init__(self, kind: str, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.kind, self.field, self.reason = kind, field, reason

    @property
    def status(self) -> int:
        return self.STATUS[self.kind]


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as ``{"field": "person.first_name", "reason": "..."}``, without input values."""
    return describe_errors(exc.errors(include_input=False, include_url=False, include_context=False))


def describe_errors(errors, skip: tuple[str, ...] = (), root: str = "(root)") -> list[dict[str, str]]:
    """Field and reason of each pydantic error. A rule across fields (a model validator) raises
    ``ValueError("field.name: reason")`` and is reported against that field, not the whole body."""
    out = []
    for err in errors:
        field = ".".join(str(p) for p in err["loc"] if p not in skip)
        reason = err["msg"]
        named = _NAMED.match(reason)
        if named:
            field = ".".join(filter(None, (field, named.group(1))))
            reason = named.group(2)
        out.append({"field": field or root, "reason": reason})
    return out


def describe_validation_error(exc: ValidationError) -> str:
    return "; ".join(f"{e['field']}: {e['reason']}" for e in field_errors(exc))
