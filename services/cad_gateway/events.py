"""The CAD gateway's own events: an agency's feed falling silent and resuming, and the alerts about it, on
``handoff.ops.feed-health``. The CAD intake events it writes for the pathways stay in the kernel."""

from __future__ import annotations

from typing import ClassVar

from services.kernel.events import (
    Channel,
    DeliveryOutcome,
    Event,
    Instant,
    Int32,
)


class CadFeedSilent(Event):
    """An agency's CAD sent nothing for longer than its expectation allows, within its active hours. Keyed by
    agency_id."""

    avro_schema: ClassVar[str] = "cad_feed_silent"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    agency_id: str
    """The agency whose feed is silent."""
    last_event_at: Instant | None = None
    """Its last CAD event (None: none since the gateway started)."""
    silent_since: Instant
    """Where the silence is measured from (the last event, or the gateway's start)."""
    detected_at: Instant
    """When the gateway noticed."""


class CadFeedResumed(Event):
    """A silent agency's CAD events arrive again. Keyed by agency_id."""

    avro_schema: ClassVar[str] = "cad_feed_resumed"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    agency_id: str
    """The agency."""
    silent_since: Instant
    """The silence that ended."""
    resumed_at: Instant
    """The first event after it."""


class FeedAlertSent(Event):
    """One delivery attempt of a feed-health alert to program staff. Keyed by agency_id."""

    avro_schema: ClassVar[str] = "feed_alert_sent"
    avro_namespace: ClassVar[str] = "org.handoff.ops"
    agency_id: str
    """The agency."""
    attempt_id: str
    """Idempotency key of this delivery (agency, silence, message, recipient, channel)."""
    recipient_id: str
    """Staff id."""
    channel: Channel
    """Channel used."""
    outcome: DeliveryOutcome
    """Result."""
    attempt: Int32
    """Try number (1-based)."""
    error: str | None = None
    """Error, when failed."""
    final: bool = True
    """True on the last attempt of this delivery."""
    sent_at: Instant
    """When the attempt finished."""
