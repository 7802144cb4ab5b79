"""The console's and the APIs' own records: each sign-in, refusal, sign-out and denial audited
(CJIS 5.4.1.1), and the sessions ended before their time."""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

from services.kernel.events import (
    Event,
    Instant,
    wire_enum,
)


@wire_enum(default="other")
class AccessEvent(str, Enum):
    """What happened at a sign-in door (CJIS 5.4.1.1 event types)."""

    # In the order of the schema's symbols: new kinds go last, before ``other``.
    signed_in = "signed_in"
    sign_in_refused = "sign_in_refused"  # a wrong credential, too many tries, an account the directory does not know
    signed_out = "signed_out"
    session_expired = "session_expired"  # idle too long, or past its lifetime
    access_denied = "access_denied"  # a session whose person the directory no longer has, or that was ended
    other = "other"


class AccessAudited(Event):
    """A sign-in, refused sign-in, sign-out, expired session or denied access, with the CJIS 5.4.1.1 fields: when, which
    component, what event, which user, the outcome. Never a participant's or a child's data. Keyed by user_id (or the
    client's address when no user is known).
    """

    avro_schema: ClassVar[str] = "access_audited"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    audit_id: str
    """Unique per record."""
    event_type: AccessEvent
    """What happened."""
    component: str
    """Where: console, api."""
    user_id: str | None = None
    """Directory id of the person (staff id, contact id), when known."""
    user_kind: str | None = None
    """staff, coordinator or school."""
    success: bool
    """The outcome."""
    reason: str | None = None
    """Why, when it was refused or ended (never the credential)."""
    client_address: str | None = None
    """Where from: the client's address as the API saw it."""
    occurred_at: Instant
    """When."""


class ConsoleSessionEnded(Event):
    """A console session ended before its time (signed out): every API replica refuses its cookie from now on. Keyed by
    session_key.
    """

    avro_schema: ClassVar[str] = "console_session_ended"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    session_key: str
    """SHA-256 of the session's id (the cookie itself is never on a topic)."""
    user_id: str
    """Whose session."""
    reason: str
    """signed_out, or why else it ended."""
    ended_at: Instant
    """When."""
    lasts_until: Instant
    """When the session would have ended anyway: its end is remembered until then."""
