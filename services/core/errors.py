"""Errors that decide what happens to a record: dead-letter it now, or retry.

A reason always names the field and what is wrong with it, never the value: reasons end up in
HTTP answers, dead-letter records and logs, none of which may carry personal data.
"""

from __future__ import annotations

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


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as ``{"field": "person.first_name", "reason": "..."}``, without input values."""
    out = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        out.append({"field": loc, "reason": err["msg"]})
    return out


def describe_validation_error(exc: ValidationError) -> str:
    return "; ".join(f"{e['field']}: {e['reason']}" for e in field_errors(exc))
