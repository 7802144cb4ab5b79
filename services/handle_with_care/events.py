"""Handle With Care's own events: a notice from request to expiry, and the coordinator's triage queue, on
``handoff.hwc.notices`` and ``handoff.hwc.triage``. The CAD's ``CadChildEncountered`` stays in the kernel."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, ClassVar

from services.kernel.events import (
    PERSONAL,
    AcknowledgedVia,
    Channel,
    Child,
    DeliveryOutcome,
    Event,
    Instant,
    Int32,
)


class HwcNoticeRequested(Event):
    """A Handle With Care notice is due at a school. Minimal by design: no incident, place, people or officer. Keyed by
    notice_id.
    """

    avro_schema: ClassVar[str] = "hwc_notice_requested"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    notice_id: str
    """Notice id: derived from normalized child name, date of birth, school and deadline."""
    child: Annotated[Child, PERSONAL]
    """The child."""
    school_id: str
    """School or day care (or local authority) that receives it."""
    due_at: Instant
    """Start of the school's next school day after the encounter."""
    requested_at: Instant
    """When the notice was opened."""
    sending_agency: str | None = None
    """Sending agency, only where the program chooses to disclose it."""
    agency_id: str | None = None
    """The agency whose encounter asked for it (never in the notice: ``sending_agency`` is what the school sees)."""
    incident_id: str | None = None
    """The CAD incident of that encounter (never in the notice: only for the program's view of one incident)."""


class HwcNoticeDelivered(Event):
    """One delivery attempt of a notice to one contact on one channel. Keyed by notice_id."""

    avro_schema: ClassVar[str] = "hwc_notice_delivered"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    notice_id: str
    """Notice id."""
    attempt_id: str
    """Idempotency key of this delivery (notice, role, contact, channel)."""
    recipient_role: RecipientRole
    """Recipient."""
    contact_id: str
    """Directory id of the contact."""
    channel: Channel
    """Channel used."""
    outcome: DeliveryOutcome
    """Result."""
    attempt: Int32
    """Try number (1-based)."""
    error: str | None = None
    """Error, when failed (no personal data)."""
    final: bool = True  # the delivery is settled: delivered, refused, or failed for good
    """True on the last attempt of this delivery (delivered, refused, or failed for good): the delivery is settled. Records
    written before this field existed were always settled by the sender, hence the default.
    """
    delivered_at: Instant
    """When the attempt finished."""


class HwcNoticeAcknowledged(Event):
    """A school contact acknowledged a notice. Keyed by notice_id."""

    avro_schema: ClassVar[str] = "hwc_notice_acknowledged"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    notice_id: str
    """Notice id."""
    contact_id: str
    """Who acknowledged."""
    via: AcknowledgedVia
    """How."""
    acknowledged_at: Instant
    """When."""


class HwcNoticeEscalated(Event):
    """An unacknowledged notice went to the next contact, or was reported unacknowledged at its deadline. Keyed by
    notice_id.
    """

    avro_schema: ClassVar[str] = "hwc_notice_escalated"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    notice_id: str
    """Notice id."""
    to_role: RecipientRole
    """Who it goes to now."""
    escalated_at: Instant
    """When."""
    overdue: bool = False
    """True when the deadline passed unacknowledged."""


class HwcNoticeExpired(Event):
    """A notice's retention ended (child_data_retention_days after its deadline, or after its acknowledgement if later): its state, with the child's name and date of birth, is deleted everywhere it is kept (the worker's tables are tombstoned in their changelogs). Keyed by notice_id."""

    avro_schema: ClassVar[str] = "hwc_notice_expired"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    notice_id: str
    """The notice."""
    expired_at: Instant
    """When its retention ended."""


class HwcNoticeRescheduled(Event):
    """A notice's deadline moved because the school calendar it was read from changed (a closure added for the day it
    was due): its escalation stages, the console and the on-time figures follow the new deadline. Keyed by notice_id."""

    avro_schema: ClassVar[str] = "hwc_notice_rescheduled"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    notice_id: str
    """The notice."""
    due_at: Instant
    """The new deadline: the start of the first school day the calendar now has."""
    previous_due_at: Instant
    """The deadline it had."""
    reason: str | None = None
    """Why the day it was due is no longer a school day (the closure's words, e.g. 'closure: snow day')."""
    rescheduled_at: Instant
    """When."""


class HwcTriageOpened(Event):
    """A child encounter named no known school: it waits in the district coordinator's triage queue. Holds no incident
    details. Keyed by cad_event_id.
    """

    avro_schema: ClassVar[str] = "hwc_triage_opened"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    cad_event_id: str
    """The CAD event of the encounter."""
    agency_id: str
    """Agency that reported it (for the coordinator only; never in a notice)."""
    district_id: str | None = None
    """District whose coordinator triages it."""
    child: Annotated[Child, PERSONAL]
    """The child."""
    school_name_hint: Annotated[str | None, PERSONAL] = None
    """School name as the officer gave it."""
    encountered_at: Instant
    """When the encounter happened (the deadline counts from it)."""
    opened_at: Instant
    """When it entered the queue."""
    school_id_given: str | None = None  # what the officer typed, when no school has that id
    """The school id the officer gave, when it is not in the directory or the roster names another school (kept so the
    coordinator sees what was typed)."""
    due_at: Instant | None = None  # the earliest deadline among the district's schools
    """The earliest next-school-day start among the district's schools: the coordinator is reminded before it if the child
    is still unplaced.
    """
    roster_school_id: str | None = None
    """The school the district's roster has the child at, when the officer named another."""
    incident_id: str | None = None
    """The CAD incident of the encounter (for the program's view of one incident; never in a notice or an alert)."""
    reason: str | None = None
    """Why the child waits, in plain words and without personal data: no school known, the officer's school and the
    roster's disagree, or a placement that could not be sent (the item is then open again)."""
    reopened: bool = False
    """Open again: the coordinator's placement could not be sent (``reason`` says why). Only this reopens a placed item;
    a replayed encounter does not."""


class HwcTriageStillUnplaced(Event):
    """A child in triage is still unplaced as the earliest deadline of the district's schools nears: the district
    coordinator is reminded. Keyed by cad_event_id.
    """

    avro_schema: ClassVar[str] = "hwc_triage_still_unplaced"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    cad_event_id: str
    """The encounter in triage."""
    due_at: Instant
    """The deadline it nears."""
    reminded_at: Instant
    """When the reminder was due."""


class HwcTriageAlerted(Event):
    """One attempt to tell the district coordinator that a child needs placing (or is still unplaced). Names no child.
    Keyed by cad_event_id.
    """

    avro_schema: ClassVar[str] = "hwc_triage_alerted"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    cad_event_id: str
    """The encounter in triage."""
    attempt_id: str
    """Idempotency key of the delivery."""
    contact_id: str
    """The coordinator."""
    channel: Channel
    """How."""
    outcome: DeliveryOutcome
    """Result of this attempt."""
    attempt: Int32
    """Attempt number, from 1."""
    error: str | None = None
    """Why it failed, if it did (no personal data)."""
    final: bool = True
    """The delivery is settled."""
    alerted_at: Instant
    """When."""


class HwcTriageResolved(Event):
    """A coordinator placed a triaged child at a school. The worker that owns the item sends the notice to that school
    from this event (the roster is not asked again: the coordinator decided, seeing both), or opens the item again
    with the reason it could not. Keyed by cad_event_id."""

    avro_schema: ClassVar[str] = "hwc_triage_resolved"
    avro_namespace: ClassVar[str] = "org.handoff.hwc"
    cad_event_id: str
    """The CAD event of the encounter."""
    school_id: str
    """The school or day care (or local authority) chosen."""
    resolved_by: str
    """Coordinator contact id."""
    resolved_at: Instant
    """When."""
    agency_id: str | None = None
    """The agency that encountered the child (only whether it is disclosed follows it; never in a notice)."""
    child: Annotated[Child | None, PERSONAL] = None
    """The child, as the triage item has it: the worker sends the notice from this placement itself."""
    encountered_at: Instant | None = None
    """When the encounter happened: the deadline counts from it."""
    incident_id: str | None = None
    """The CAD incident of the encounter."""


# --- operations ---------------------------------------------------------------------------------


class RecipientRole(str, Enum):
    """Which contact received it."""

    primary = "primary"
    backup = "backup"
    coordinator = "coordinator"
    local_authority = "local_authority"


# --- nested records -----------------------------------------------------------------------------
