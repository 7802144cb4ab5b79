"""Quick Response Team follow-ups: the use cases.

- An overdose response (``on_overdose``, on the CAD topic's partition) publishes its de-identified
  report, always, and opens a follow-up when the site runs a Quick Response Team: one for the
  person, or for the family after a fatal overdose where the site offers it. Stateless: a replay
  publishes the same ids, and the owners below drop the copies.
- The follow-up's owner (``open``, ``apply_attempt``, ``tell_team_lead``, on the follow-up topic's
  partition) keeps ids and times only. The timer publishes ``FollowUpEscalated`` when a window is
  ``warn_before_hours`` from closing with nobody engaged; the owner then tells every team lead,
  each once (attempt ids), with the follow-up id and the time only: who and where stay behind
  sign-in, in the team's list.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import ClassVar

from services.kernel.bus import Handlers, dispatch
from services.kernel.cad import CadOverdoseResponded
from services.kernel.clock import Clock, EventTimeWindow, spoken_time
from services.kernel.events import (
    Channel,
    DisclosureChannel,
)
from services.kernel.reference import CaseManager, ReferenceData, Urgency
from services.kernel.store import KeyValueStore, Owned
from services.messaging.due import Due, Retention, ScheduledRecords
from services.messaging.events import DisclosedRecord
from services.messaging.kafka import Publisher
from services.messaging.outbox import IdempotentDelivery, MessageAttempts, audit_shown, message_each
from services.platform.logs import get_logger
from services.quick_response.domain.deidentify import deidentify
from services.quick_response.domain.follow_up import (
    FollowUp,
    check_overdose,
    plan,
    record_attempt,
    task_id_for,
    warned,
)
from services.quick_response.events import (
    AttemptOutcome,
    FollowUpAlertSent,
    FollowUpAttempted,
    FollowUpEscalated,
    FollowUpExpired,
    FollowUpOpened,
)
from services.quick_response.topics import OVERDOSE_REPORTS, QRT_FOLLOW_UPS

log = get_logger(__name__)
WARNING = "warning"  # what the timer publishes for a follow-up, until its owner applies it (besides its expiry)


def _alert_key(task_id: str, overdue: bool = False) -> str:
    return f"{task_id}/{'overdue' if overdue else 'warn'}"


def follow_up_alerts(publisher: Publisher, clock: Clock) -> MessageAttempts:
    """Each try of a team-lead alert, as ``FollowUpAlertSent`` (the outbox's report)."""
    return MessageAttempts(publisher, clock, QRT_FOLLOW_UPS, FollowUpAlertSent, "task_id")


class QuickResponse:
    delivery: IdempotentDelivery  # its channels: attempt events read back settle through it ("delivery.apply_attempt")

    def __init__(self, reference: ReferenceData, follow_ups: KeyValueStore, delivery: IdempotentDelivery,
                 publisher: Publisher, clock: Clock, report_key: bytes, console_url: str,
                 retention: timedelta = timedelta(days=60), window: EventTimeWindow = EventTimeWindow()) -> None:
        self.reference = reference
        self.window = window
        self.retention = retention
        # The team lead's warning, the program managers' alert, then the deletion (who to visit and where).
        self.follow_ups = ScheduledRecords(follow_ups, Owned[FollowUp], self._alert_at, self._due, publisher,
                                           retention=Retention(QRT_FOLLOW_UPS, self._expires_at, _expired),
                                           follows=reference)  # the team lead's warning, then the deletion
        self.delivery = delivery
        self.publisher = publisher
        self.clock = clock
        self.report_key = report_key
        self.console_url = console_url.rstrip("/")

    OVERDOSE_EVENTS: ClassVar[Handlers] = {CadOverdoseResponded: "on_overdose"}
    FOLLOW_UP_EVENTS: ClassVar[Handlers] = {
        FollowUpOpened: "open", FollowUpAttempted: "apply_attempt", FollowUpEscalated: "tell_team_lead",
        FollowUpAlertSent: "delivery.apply_attempt", FollowUpExpired: "forget"}

    async def on_overdose_event(self, event) -> None:
        await dispatch(self, self.OVERDOSE_EVENTS, event)

    async def on_follow_up_event(self, event) -> None:
        await dispatch(self, self.FOLLOW_UP_EVENTS, event)

    # --- on the overdose's partition ----------------------------------------------------------------
    async def on_overdose(self, event: CadOverdoseResponded) -> None:
        site = check_overdose(event, self.reference.site(event.site_id), self.reference.agencies.get(event.agency_id),
                              self.clock.now(), self.window)
        report = deidentify(event, self.report_key)
        await self.publisher.publish(OVERDOSE_REPORTS, report.report_id, report)
        if site.quick_response is None:
            log.info("overdose_reported_no_follow_up", site_id=site.site_id, reason="site runs no quick response team")
            return
        kind, due_at = plan(event, site.quick_response)
        if kind is None:
            log.info("overdose_reported_no_follow_up", site_id=site.site_id, reason="fatal")
            return
        task_id = task_id_for(event.overdose_event_id)
        await self.publisher.publish(QRT_FOLLOW_UPS, task_id, FollowUpOpened(
            task_id=task_id, overdose_event_id=event.overdose_event_id, site_id=site.site_id, kind=kind,
            occurred_at=event.occurred_at, due_at=due_at, opened_at=self.clock.now(), person=event.person,
            location_description=event.location_description))

    # --- on the follow-up's partition -----------------------------------------------------------------
    async def open(self, event: FollowUpOpened) -> None:
        if event.task_id in self.follow_ups:
            return  # a replay
        self._save(FollowUp(event.task_id, event.site_id, event.kind, event.due_at, event.opened_at))
        log.info("follow_up_opened", task_id=event.task_id, site_id=event.site_id, kind=event.kind.value)

    async def apply_attempt(self, event: FollowUpAttempted) -> None:
        follow_up = self._load(event.task_id)
        if follow_up is None:
            log.warning("attempt_for_unknown_follow_up", task_id=event.task_id)
            return
        self._save(record_attempt(follow_up, event.attempt_id, event.outcome))

    async def tell_team_lead(self, event: FollowUpEscalated) -> None:
        """Before the window closes, the team leads; once it has closed with nobody engaged, the
        site's program managers and the team leads: somebody who can send someone owns it."""
        self.follow_ups.applied(event.task_id, WARNING)
        follow_up = self._load(event.task_id)
        if follow_up is None or not follow_up.is_open:
            return  # closed meanwhile: nobody needs telling
        self._save(warned(follow_up, event.escalated_at, event.overdue))
        site = self.reference.site(follow_up.site_id)
        if site is None or site.quick_response is None:
            return
        closes = spoken_time(follow_up.due_at, site.zone, self.clock.now())
        where = f"The team's list: {self.console_url}/console/qrt (sign in)."
        if event.overdue:
            recipients = list(dict.fromkeys((*site.program_manager_ids, *site.quick_response.team_lead_ids)))
            subject = "Quick Response follow-up window closed, nobody engaged"
            text = (f"Quick Response follow-up {follow_up.task_id} ({site.name}): the window closed {closes} and "
                    f"nobody is engaged. {where}")
        else:
            recipients = list(site.quick_response.team_lead_ids)
            subject = "Quick Response follow-up window closing"
            text = (f"Quick Response follow-up {follow_up.task_id} ({site.name}): the window closes {closes} and "
                    f"nobody is engaged yet. {where}")
        people = [(i, p) for i in recipients if (p := self.reference.case_managers.get(i)) is not None]
        await message_each(self.delivery, people, _alert_key(follow_up.task_id, event.overdue), subject, text,
                           {"type": "qrt.follow_up_overdue" if event.overdue else "qrt.follow_up_due",
                            "task_id": follow_up.task_id, "site_id": site.site_id,
                            "due_at": follow_up.due_at.isoformat()},
                           DisclosedRecord.qrt_follow_up_due, follow_up.task_id, {"task_id": follow_up.task_id},
                           Urgency.low)  # a deadline warning: it waits out a person's quiet hours


    async def forget(self, event: FollowUpExpired) -> None:
        """Retention ended: delete the follow-up and its alerts' records (tombstones in the changelogs)."""
        record = self.follow_ups.expire(event.task_id, event.expired_at)
        if record is None:
            return
        follow_up = record.state
        site = self.reference.site(follow_up.site_id)
        told = (*site.program_manager_ids, *site.quick_response.team_lead_ids) if site and site.quick_response else ()
        self.delivery.forget([f"{_alert_key(event.task_id, overdue)}/{person}/{channel.value}" for person in told
                              for channel in Channel for overdue in (False, True)])
        log.info("follow_up_expired", task_id=event.task_id)

    # --- timer ------------------------------------------------------------------------------------------
    async def publish_due_warnings(self) -> int:
        """The timer: a window about to close, or closed with nobody engaged (``FollowUpEscalated``), a
        retention ended (``FollowUpExpired``); the follow-up's owner applies them."""
        return await self.follow_ups.tick(self.clock.now())

    def _due(self, task_id: str, record: Owned[FollowUp], now: datetime) -> list[Due]:
        follow_up = record.state
        alert_at = self._alert_at(record)
        if alert_at is None or alert_at > now:
            return []
        return [Due(QRT_FOLLOW_UPS, WARNING, FollowUpEscalated(
            task_id=task_id, site_id=follow_up.site_id, due_at=follow_up.due_at, escalated_at=now,
            overdue=follow_up.next_alert_is_overdue))]

    # --- state --------------------------------------------------------------------------------------------
    def _alert_at(self, record: Owned[FollowUp]) -> datetime | None:
        site = self.reference.site(record.state.site_id)
        return record.state.alert_at(site.quick_response) if site and site.quick_response else None

    def _expires_at(self, record: Owned[FollowUp]) -> datetime:
        return record.state.expires_at(self.retention)

    def _load(self, task_id: str) -> FollowUp | None:
        return self.follow_ups.state(task_id)

    def _save(self, follow_up: FollowUp) -> None:
        self.follow_ups.keep(follow_up.task_id, follow_up)


def _expired(task_id: str, now: datetime) -> FollowUpExpired:
    return FollowUpExpired(task_id=task_id, expired_at=now)


# --- the team's commands (the API and the console) -----------------------------------------------------

async def log_attempt(task_id: str, site_id: str, outcome: AttemptOutcome, by: str, at: datetime,
                      idempotency_key: str | None, publisher: Publisher) -> str:
    """One attempt, as a team member logs it; a retried submission with the same key is the same attempt."""
    attempt_id = f"{task_id}/{by}/{idempotency_key or uuid.uuid4().hex}"
    await publisher.publish(QRT_FOLLOW_UPS, task_id, FollowUpAttempted(
        attempt_id=attempt_id, task_id=task_id, site_id=site_id, outcome=outcome, recorded_by=by, attempted_at=at))
    return attempt_id


async def audit_list_read(site_id: str, reader: CaseManager, where: DisclosureChannel, publisher: Publisher,
                          clock: Clock) -> None:
    """The team's list names people and where to find them: who read it, when and where is audited."""
    await audit_shown(publisher, clock, DisclosedRecord.qrt_follow_up_list, site_id, reader.case_manager_id,
                      reader.role, where)
