"""Quick Response's own events: the follow-up a team owns, from opening to expiry, on its topic
(``handoff.qrt.follow-ups``), and the de-identified ``OverdoseReported`` it publishes for public health.
The CAD's ``CadOverdoseResponded``, which the gateway writes and this service reads, is the kernel's."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, ClassVar

from services.kernel.cad import DrugType, OverdosePerson, Sex
from services.kernel.events import (
    PERSONAL,
    Channel,
    DeliveryOutcome,
    Event,
    Instant,
    Int32,
    wire_enum,
)


class FollowUpOpened(Event):
    """A Quick Response Team follow-up is due. Keyed by task_id."""

    avro_schema: ClassVar[str] = "follow_up_opened"
    avro_namespace: ClassVar[str] = "org.handoff.qrt"
    task_id: str
    """Follow-up id (one per overdose event)."""
    overdose_event_id: str
    """The overdose response it follows."""
    site_id: str
    """Site whose team follows it up."""
    kind: FollowUpKind
    """The person, or the family."""
    occurred_at: Instant
    """When the overdose response happened."""
    due_at: Instant
    """End of the site's follow-up window."""
    opened_at: Instant
    """When Handoff opened it."""
    person: Annotated[OverdosePerson | None, PERSONAL] = None
    """Who to visit and where, when known."""
    location_description: Annotated[str | None, PERSONAL] = None
    """Where the response happened."""


class FollowUpAttempted(Event):
    """The team logged an attempt. Keyed by task_id."""

    avro_schema: ClassVar[str] = "follow_up_attempted"
    avro_namespace: ClassVar[str] = "org.handoff.qrt"
    attempt_id: str
    """Unique per attempt (a retried submission is the same attempt)."""
    task_id: str
    """Follow-up id."""
    site_id: str
    """Site."""
    outcome: AttemptOutcome
    """What happened."""
    recorded_by: str
    """Staff id of the team member."""
    attempted_at: Instant
    """When."""


class FollowUpEscalated(Event):
    """A follow-up's window is closing with nobody engaged: its team lead is told; or it closed so, and the site's
    program managers are told too. Keyed by task_id."""

    avro_schema: ClassVar[str] = "follow_up_escalated"
    avro_namespace: ClassVar[str] = "org.handoff.qrt"
    task_id: str
    """Follow-up id."""
    site_id: str
    """Site."""
    due_at: Instant
    """When the window closes."""
    escalated_at: Instant
    """When."""
    overdue: bool = False
    """True when the window has closed with nobody engaged."""


class FollowUpExpired(Event):
    """A follow-up's retention ended (qrt_data_retention_days after its window closed): it is deleted wherever it is
    kept, the worker's tables (tombstones in their changelogs) and the team's list. Keyed by task_id.
    """

    avro_schema: ClassVar[str] = "follow_up_expired"
    avro_namespace: ClassVar[str] = "org.handoff.qrt"
    task_id: str
    """Follow-up id."""
    expired_at: Instant
    """When its retention ended."""


class FollowUpAlertSent(Event):
    """One delivery attempt of a closing-window alert to a team lead. Keyed by task_id."""

    avro_schema: ClassVar[str] = "follow_up_alert_sent"
    avro_namespace: ClassVar[str] = "org.handoff.qrt"
    task_id: str
    """Follow-up id."""
    attempt_id: str
    """Idempotency key of this delivery (task, team lead, channel)."""
    recipient_id: str
    """Staff id of the team lead."""
    channel: Channel
    """Channel used."""
    outcome: DeliveryOutcome
    """Result."""
    attempt: Int32
    """Try number (1-based)."""
    error: str | None = None
    """Error, when failed (no personal data)."""
    final: bool = True
    """True on the last attempt of this delivery."""
    sent_at: Instant
    """When the attempt finished."""


class FollowUpKind(str, Enum):
    """Who the team follows up: the person, or (after a fatal overdose, where the site offers it) the family."""

    outreach = "outreach"
    family_support = "family_support"


@wire_enum(default="other")
class AttemptOutcome(str, Enum):
    """One follow-up attempt, as the team logs it in one tap."""

    visited = "visited"
    not_home = "not_home"
    wrong_address = "wrong_address"
    refused = "refused"
    engaged = "engaged"
    referred_to_treatment = "referred_to_treatment"
    other = "other"


class OverdoseReported(Event):
    """An overdose response, de-identified for public-health mapping (ODMAP-style) and the state's report: no name,
    date of birth, address or free text; the time to the hour and the place to about a kilometre. Keyed by report_id.
    """

    avro_schema: ClassVar[str] = "overdose_reported"
    avro_namespace: ClassVar[str] = "org.handoff.public"
    report_id: str
    """Opaque id (a keyed hash of the event id): the same overdose always has the same id."""
    site_id: str
    """Site."""
    hour: Instant
    """Start of the hour it happened in."""
    latitude: float | None = None
    """Latitude rounded to two decimals."""
    longitude: float | None = None
    """Longitude rounded to two decimals."""
    fatal: bool
    """The person died."""
    naloxone_given: bool
    """An opioid antagonist was given."""
    naloxone_doses: Int32
    """How many doses."""
    suspected_substance: str | None = None
    """Suspected drug."""
    drug_type: DrugType | None = None
    """Suspected drug class."""
    age_range: str
    """Approximate age."""
    sex: Sex
    """Sex."""
    prior_overdose: bool | None = None
    """A known earlier overdose."""


# --- Self-referral (Angel / PAARI: a person asks the police for help; a volunteer pool is paged) -----
