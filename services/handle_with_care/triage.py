"""The triage desk: a child with no known school has an owner until placed.

An encounter whose school is unknown goes to triage (``HwcTriageOpened``). Until then nobody would
know it is waiting but a coordinator who happens to open the queue, and the child's notice would
miss its school day. So, on the triage topic's partition that owns the encounter:

- the district coordinator is told at once that a child needs placing, and where to do it;
- if the child is still unplaced ``coordinator_lead`` before the earliest deadline among the
  district's schools, the timer publishes ``HwcTriageStillUnplaced`` and the coordinator is told
  again;
- placing the child (``HwcTriageResolved``) ends both, and sends the notice to the school placed at
  (``place``, HandleWithCare's). A placement that cannot be sent opens the item again with the reason
  (``HwcTriageOpened``, ``reopened``), and the coordinator is told: a coordinator who placed a child
  must never be left believing the school was told when it was not.

The alerts name no child and nothing of the incident: only that a child waits, the deadline and
the console's triage queue, behind sign-in. Each is sent once (attempt ids), and audited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

from services.delivery.channels import Outgoing
from services.handle_with_care.domain.calendar import NoSchoolDayFound
from services.handle_with_care.domain.figures import HwcReadModel
from services.handle_with_care.domain.triage import TriageItem
from services.handle_with_care.events import (
    HwcTriageAlerted,
    HwcTriageOpened,
    HwcTriageResolved,
    HwcTriageStillUnplaced,
    RecipientRole,
)
from services.handle_with_care.topics import HWC_TRIAGE
from services.kernel.bus import Handlers, dispatch
from services.kernel.clock import Clock, spoken_time
from services.kernel.errors import CommandRefused, Rejected
from services.kernel.events import (
    Channel,
    DeliveryOutcome,
)
from services.kernel.reference import District, ReferenceData
from services.kernel.store import KeyValueStore
from services.messaging.due import Due, ScheduledRecords
from services.messaging.events import DisclosedRecord
from services.messaging.kafka import Publisher
from services.messaging.outbox import AttemptReporter, Disclosure, Dispatch, IdempotentDelivery
from services.platform.logs import correlation_of, correlation_scope, current_correlation_id, get_logger

log = get_logger(__name__)
OPENED, REMINDER, REOPENED = "opened", "reminder", "reopened"
# Why a child waits in triage (HwcTriageOpened.reason): the coordinator's alert says which.
UNKNOWN_SCHOOL = "the officer gave no school in the directory"
DISPUTED = "the officer's school and the district roster's disagree"


Place = Callable[[HwcTriageResolved], Awaitable[object]]


class TriageAlertAttempts(AttemptReporter):
    """Publishes each try of a coordinator alert as ``HwcTriageAlerted`` (the outbox's report)."""

    async def __call__(self, dispatch: Dispatch, attempt: int, outcome: DeliveryOutcome, error: str | None,
                       final: bool) -> None:
        c = dispatch.context
        await self.publisher.publish(HWC_TRIAGE, c["cad_event_id"], HwcTriageAlerted(
            cad_event_id=c["cad_event_id"], attempt_id=dispatch.attempt_id, contact_id=c["contact_id"],
            channel=Channel(dispatch.channel), outcome=outcome, attempt=attempt, error=error, final=final,
            alerted_at=self.clock.now()))


class TriageDesk:
    delivery: IdempotentDelivery  # its channels: attempt events read back settle through it ("delivery.apply_attempt")

    def __init__(self, reference: ReferenceData, items: KeyValueStore, delivery: IdempotentDelivery,
                 publisher: Publisher, clock: Clock, console_url: str, coordinator_lead: timedelta,
                 place: Place) -> None:
        self.reference = reference
        self.lead = coordinator_lead
        self.items = ScheduledRecords(items, TriageItem, lambda item: item.remind_at(self.lead), self._due, publisher,
                                      follows=reference)  # cad event id -> the child waiting
        self.delivery = delivery
        self.publisher = publisher
        self.clock = clock
        self.console_url = console_url.rstrip("/")
        self.place = place

    # --- event handlers (on the triage item's partition) -------------------------------------------
    TRIAGE_EVENTS: ClassVar[Handlers] = {
        HwcTriageOpened: "open", HwcTriageResolved: "resolved", HwcTriageStillUnplaced: "remind",
        HwcTriageAlerted: "delivery.apply_attempt"}

    async def on_triage_event(self, event) -> None:
        await dispatch(self, self.TRIAGE_EVENTS, event)

    async def resolved(self, event: HwcTriageResolved) -> None:
        """The coordinator placed the child: send the notice there, under the encounter's correlation id.
        A replay after the item was settled does nothing; one before (a crash in between) places again,
        and the notice's owner merges the copy."""
        record = self.items.get(event.cad_event_id)
        if record is not None and record.resolved:
            return
        if event.child is None:  # placed before placements carried the child: the encounter was sent again then
            self._update(event.cad_event_id, resolved=True)
            return
        with correlation_scope((record.correlation_id if record else None) or current_correlation_id()):
            try:
                await self.place(event)
            except (Rejected, NoSchoolDayFound) as refused:  # not a broker error: those are retried as any record's
                detail = refused.detail if isinstance(refused, Rejected) else str(refused)
                await self._reopen(event, record, f"placing the child at {event.school_id} failed: {detail}")
                return
            self._update(event.cad_event_id, resolved=True)
            log.info("hwc_triage_placed", cad_event_id=event.cad_event_id, school_id=event.school_id)

    async def _reopen(self, placed: HwcTriageResolved, record: TriageItem | None, reason: str) -> None:
        await self.publisher.publish(HWC_TRIAGE, placed.cad_event_id, HwcTriageOpened(
            cad_event_id=placed.cad_event_id, agency_id=placed.agency_id or "",
            district_id=record.district_id if record else None, child=placed.child,
            encountered_at=placed.encountered_at, opened_at=self.clock.now(), due_at=record.due_at if record else None,
            reason=reason, reopened=True, incident_id=placed.incident_id))
        log.error("hwc_triage_placement_failed", cad_event_id=placed.cad_event_id, school_id=placed.school_id)


    async def open(self, opened: HwcTriageOpened) -> None:
        record = self.items.get(opened.cad_event_id)
        if record is None:
            record = TriageItem(opened.district_id, opened.due_at, opened.reason,
                                correlation_id=current_correlation_id())
            self.items[opened.cad_event_id] = record
        elif opened.reopened:  # a placement that could not be sent: unplaced again (a replayed encounter is not)
            record = self._update(opened.cad_event_id, reason=opened.reason, resolved=False)
        kind = f"{REOPENED}-{opened.opened_at:%Y%m%dT%H%M%S.%f}" if opened.reopened else OPENED
        if not record.resolved:  # a replay completes an alert a crash interrupted
            await self._alert(opened.cad_event_id, record, kind)

    async def remind(self, event: HwcTriageStillUnplaced) -> None:
        self.items.applied(event.cad_event_id, REMINDER)
        record = self.items.get(event.cad_event_id)
        if record is None or record.resolved:
            return
        if not record.reminded:
            record = self._update(event.cad_event_id, reminded=True)
        await self._alert(event.cad_event_id, record, REMINDER)

    # --- timer -------------------------------------------------------------------------------------
    async def publish_due_reminders(self) -> int:
        return await self.items.tick(self.clock.now())

    def _due(self, cad_event_id: str, record: TriageItem, now: datetime) -> list[Due]:
        if record.remind_at(self.lead) is None or record.due_at is None:
            return []
        return [Due(HWC_TRIAGE, REMINDER, HwcTriageStillUnplaced(
            cad_event_id=cad_event_id, due_at=record.due_at, reminded_at=now))]

    # --- delivery ----------------------------------------------------------------------------------
    def _update(self, cad_event_id: str, **changes: Any) -> TriageItem:
        record = replace(self.items.get(cad_event_id) or TriageItem(None, None), **changes)
        self.items[cad_event_id] = record
        return record

    async def _alert(self, cad_event_id: str, record: TriageItem, kind: str) -> None:
        district = self.reference.districts.get(record.district_id or "")
        if district is None:
            log.error("hwc_triage_without_coordinator", cad_event_id=cad_event_id)
            return
        contact = district.coordinator
        subject, text = self._render(record, kind, district)
        for channel in contact.channels:
            attempt_id = f"triage/{cad_event_id}/{kind}/{contact.contact_id}/{channel.value}"
            payload = {"type": f"hwc.triage.{kind}", "district_id": district.district_id, "text": text,
                       "triage_url": f"{self.console_url}/console/triage"}
            await self.delivery.request(Dispatch(
                channel.value, Outgoing(attempt_id, contact.address_for(channel), subject, text, text, payload),
                Disclosure(DisclosedRecord.hwc_triage_alert, cad_event_id, contact.contact_id,
                           RecipientRole.coordinator.value),
                {"cad_event_id": cad_event_id, "contact_id": contact.contact_id}))

    def _render(self, record: TriageItem, kind: str, district: District) -> tuple[str, str]:
        due = record.due_at
        school = next((s for s in self.reference.schools.values() if s.district_id == district.district_id), None)
        when = spoken_time(due, school.timezone, self.clock.now()) if due and school else None
        by = f" before school starts ({when})" if when else " as soon as you can"
        reason = record.reason
        if kind == REMINDER:
            subject = "Handle With Care: a child is still waiting for a school"
            text = f"A child in the Handle With Care triage queue is still unplaced. Place the child{by}"
        elif kind.startswith(REOPENED):
            subject = "Handle With Care: a child you placed was not sent to the school"
            text = f"The notice for a child you placed could not be sent ({reason}). Place the child again{by}"
        elif reason == DISPUTED:
            subject = "Handle With Care: a child needs a school"
            text = ("Police reported a child at a school the district roster does not have the child at. "
                    f"Choose the school{by}")
        else:
            subject = "Handle With Care: a child needs a school"
            text = f"Police reported a child whose school is not known. Place the child{by}"
        return subject, f"{text}: {self.console_url}/console/triage (sign in). No other details are sent by email."


async def resolve_triage_item(cad_event_id: str, school_id: str, district: District, model: HwcReadModel,
                              reference: ReferenceData, publisher: Publisher, clock: Clock) -> None:
    """Place a triaged child at a school of the coordinator's district. The worker that owns the item
    sends the notice from this placement (or opens the item again, saying why it could not)."""
    item = model.triage.get(cad_event_id)
    if item is None:
        raise CommandRefused("not_found", "cad_event_id", "no such triage item")
    if item.opened.district_id != district.district_id:
        raise CommandRefused("forbidden", "district_id", "not your district")
    if item.resolved is not None:
        raise CommandRefused("conflict", "cad_event_id", "already resolved")
    school = reference.schools.get(school_id)
    if school is None:
        raise CommandRefused("invalid", "school_id", "unknown school")
    if school.district_id != district.district_id:
        raise CommandRefused("invalid", "school_id", "not a school of your district")
    opened = item.opened
    with correlation_scope(correlation_of(opened)):  # the encounter's incident: one id for its notice
        await publisher.publish(HWC_TRIAGE, cad_event_id, HwcTriageResolved(
            cad_event_id=cad_event_id, school_id=school_id, resolved_by=district.coordinator.contact_id,
            resolved_at=clock.now(), agency_id=opened.agency_id, child=opened.child,
            encountered_at=opened.encountered_at, incident_id=opened.incident_id))
