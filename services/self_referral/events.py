"""The self-referral pathway's own events: a walk-in case from opening to expiry on its topic
(``handoff.self-referral.walk-ins``). The CAD's ``CadWalkInReported`` stays in the kernel: the gateway writes it."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Annotated, ClassVar

from services.kernel.events import (
    PERSONAL,
    Channel,
    DeliveryOutcome,
    Event,
    Instant,
    Int32,
)


class WalkInOpened(Event):
    """A walk-in's case opened and its volunteers were chosen (nearest first). Keyed by case_id."""

    avro_schema: ClassVar[str] = "walk_in_opened"
    avro_namespace: ClassVar[str] = "org.handoff.selfreferral"
    case_id: str
    """Case id (one per walk-in event)."""
    walk_in_event_id: str
    """The walk-in event it came from."""
    site_id: str
    """Site."""
    station_id: str
    """Where the person waits."""
    occurred_at: Instant
    """When the person asked for help."""
    opened_at: Instant
    """When Handoff opened it."""
    paged: list[str]
    """Volunteer ids paged at once (empty: nobody could be, and the coordinators are told at once)."""
    accept_by: Instant
    """When the coordinators are told if nobody has accepted."""
    placement_due_at: Instant
    """The site's target for placement in treatment."""
    first_name: Annotated[str | None, PERSONAL] = None
    """For the volunteer who takes it."""


class WalkInAccepted(Event):
    """A volunteer said they will go (the first one takes it; later ones are told it is taken). Keyed by case_id."""

    avro_schema: ClassVar[str] = "walk_in_accepted"
    avro_namespace: ClassVar[str] = "org.handoff.selfreferral"
    case_id: str
    """Case id."""
    volunteer_id: str
    """Who."""
    accepted_at: Instant
    """When."""


class WalkInEscalated(Event):
    """A walk-in's coordinators are told: nobody could be paged, nobody accepted in time, or no placement within the
    target. Keyed by case_id."""

    avro_schema: ClassVar[str] = "walk_in_escalated"
    avro_namespace: ClassVar[str] = "org.handoff.selfreferral"
    case_id: str
    """Case id."""
    site_id: str
    """Site."""
    reason: EscalationReason
    """Why."""
    escalated_at: Instant
    """When."""


class WalkInMilestoneRecorded(Event):
    """A step on the way to treatment (placed or declined ends the case). Keyed by case_id."""

    avro_schema: ClassVar[str] = "walk_in_milestone_recorded"
    avro_namespace: ClassVar[str] = "org.handoff.selfreferral"
    milestone_id: str
    """Unique per record (a retried tap is the same record)."""
    case_id: str
    """Case id."""
    site_id: str
    """Site."""
    milestone: WalkInMilestone
    """Which step."""
    recorded_by: str
    """Volunteer or staff id."""
    at: Instant
    """When it happened."""


class VolunteerExpenseClaimed(Event):
    """A volunteer claims back what they paid for a case (mileage, meals). Keyed by case_id."""

    avro_schema: ClassVar[str] = "volunteer_expense_claimed"
    avro_namespace: ClassVar[str] = "org.handoff.selfreferral"
    expense_id: str
    """Unique per claim (a retried submission is the same claim)."""
    case_id: str
    """Case id."""
    site_id: str
    """Site."""
    volunteer_id: str
    """Who paid."""
    kind: ExpenseKind
    """What for."""
    miles: float | None = None
    """Distance driven, for mileage."""
    amount_cents: Int32
    """Amount claimed, in cents (mileage: miles at the site's rate)."""
    incurred_on: date
    """The day it was paid."""
    claimed_at: Instant
    """When it was claimed."""


class WalkInMessageSent(Event):
    """One delivery attempt of a walk-in's message (a page, "taken", a coordinator's alert). Keyed by case_id."""

    avro_schema: ClassVar[str] = "walk_in_message_sent"
    avro_namespace: ClassVar[str] = "org.handoff.selfreferral"
    case_id: str
    """Case id."""
    attempt_id: str
    """Idempotency key of this delivery (case, message, recipient, channel)."""
    recipient_id: str
    """Volunteer or staff id."""
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


class WalkInExpired(Event):
    """A walk-in's retention ended (walk_in_data_retention_days after it happened): it is deleted wherever it is kept.
    Keyed by case_id."""

    avro_schema: ClassVar[str] = "walk_in_expired"
    avro_namespace: ClassVar[str] = "org.handoff.selfreferral"
    case_id: str
    """Case id."""
    expired_at: Instant
    """When its retention ended."""


# --- CAD feed health (a silent feed is a broken integration, not a quiet night) -------------------------


class WalkInMilestone(str, Enum):
    """A walk-in's way to treatment, as the volunteer or the coordinator records it."""

    volunteer_arrived = "volunteer_arrived"
    assessed = "assessed"
    placement_found = "placement_found"
    transported = "transported"
    placed = "placed"
    declined = "declined"


class ExpenseKind(str, Enum):
    """What a volunteer paid up front and claims back."""

    mileage = "mileage"
    meals = "meals"
    other = "other"


class EscalationReason(str, Enum):
    """Why a walk-in's coordinators are told."""

    no_volunteer = "no_volunteer"  # nobody in the pool could be paged (none available, eligible or near)
    unanswered = "unanswered"  # nobody accepted within the site's minutes
    placement_overdue = "placement_overdue"  # not placed within the site's target
