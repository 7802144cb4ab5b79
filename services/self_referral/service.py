"""Self-referral walk-ins: the use cases.

- A walk-in (``on_walk_in``, on the CAD topic's partition) chooses its volunteers and opens the case
  (``WalkInOpened``). Stateless: a replay publishes the same case id and the owner drops the copy.
- The case's owner (on the walk-in topic's partition, keyed by case id) keeps ids and times only:
  ``open`` pages the chosen volunteers, each once (station and time, and their own link: never the
  person's name); ``apply_acceptance`` gives it to the first who accepts and tells the others it is
  taken; ``tell_coordinators`` tells the site's coordinators when nobody could be paged, nobody
  accepted in time, or it is not placed by the target; ``apply_milestone`` closes it when placed or
  declined; ``forget`` deletes it when its retention ends.
- The timer publishes ``WalkInEscalated`` and ``WalkInExpired`` when they are due: it owns every
  walk-in that would otherwise wait for a volunteer forever.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import ClassVar

from services.kernel.bus import Handlers, dispatch
from services.kernel.cad import CadWalkInReported
from services.kernel.clock import Clock, EventTimeWindow, spoken_time
from services.kernel.events import (
    Channel,
)
from services.kernel.reference import ReferenceData, SelfReferralPathway
from services.kernel.store import KeyValueStore, Owned
from services.messaging.due import Due, Retention, ScheduledRecords
from services.messaging.events import DisclosedRecord
from services.messaging.kafka import Publisher
from services.messaging.outbox import IdempotentDelivery, MessageAttempts, message_each
from services.platform.logs import get_logger
from services.self_referral.domain.walk_in import (
    WalkIn,
    accept,
    case_id_for,
    check_walk_in,
    choose_volunteers,
    escalated,
    mileage_cents,
    plan,
    record_milestone,
)
from services.self_referral.events import (
    EscalationReason,
    ExpenseKind,
    VolunteerExpenseClaimed,
    WalkInAccepted,
    WalkInEscalated,
    WalkInExpired,
    WalkInMessageSent,
    WalkInMilestone,
    WalkInMilestoneRecorded,
    WalkInOpened,
)
from services.self_referral.topics import WALK_INS

log = get_logger(__name__)

#: Each message a walk-in sends, by key: the page, "taken", and one per coordinator alert.
PAGE, TAKEN = "page", "taken"


def walk_in_messages(publisher: Publisher, clock: Clock) -> MessageAttempts:
    """Each try of a walk-in's message, as ``WalkInMessageSent`` (the outbox's report)."""
    return MessageAttempts(publisher, clock, WALK_INS, WalkInMessageSent, "case_id")


class SelfReferrals:
    delivery: IdempotentDelivery  # its channels: attempt events read back settle through it ("delivery.apply_attempt")

    def __init__(self, reference: ReferenceData, walk_ins: KeyValueStore, delivery: IdempotentDelivery,
                 publisher: Publisher, clock: Clock, link_for: Callable[[str, str], str], console_url: str,
                 retention: timedelta = timedelta(days=60), window: EventTimeWindow = EventTimeWindow()) -> None:
        self.reference = reference
        # A coordinator's alert at each escalation, then the deletion (a first name, a station).
        self.walk_ins = ScheduledRecords(walk_ins, Owned[WalkIn], self._next_due, self._due, publisher,
                                         retention=Retention(WALK_INS, self._expires_at, _expired), follows=reference)
        self.delivery = delivery
        self.publisher = publisher
        self.clock = clock
        self.link_for = link_for  # (case id, volunteer id) -> the volunteer's signed link
        self.console_url = console_url.rstrip("/")
        self.retention = retention
        self.window = window

    WALK_IN_EVENTS: ClassVar[Handlers] = {CadWalkInReported: "on_walk_in"}
    CASE_EVENTS: ClassVar[Handlers] = {
        WalkInOpened: "open", WalkInAccepted: "apply_acceptance", WalkInEscalated: "tell_coordinators",
        WalkInMilestoneRecorded: "apply_milestone", WalkInMessageSent: "delivery.apply_attempt",
        VolunteerExpenseClaimed: None, WalkInExpired: "forget"}

    async def on_walk_in_event(self, event) -> None:
        await dispatch(self, self.WALK_IN_EVENTS, event)

    async def on_case_event(self, event) -> None:
        await dispatch(self, self.CASE_EVENTS, event)

    # --- on the walk-in's partition ------------------------------------------------------------------
    async def on_walk_in(self, event: CadWalkInReported) -> None:
        now = self.clock.now()
        site, pathway = check_walk_in(event, self.reference.site(event.site_id),
                                      self.reference.agencies.get(event.agency_id), now, self.window)
        paged = choose_volunteers(self.reference.volunteers.values(), site, event.station_id, now)
        accept_by, placement_due_at = plan(event.occurred_at, now, pathway, paged)
        case_id = case_id_for(event.walk_in_event_id)
        await self.publisher.publish(WALK_INS, case_id, WalkInOpened(
            case_id=case_id, walk_in_event_id=event.walk_in_event_id, site_id=site.site_id,
            station_id=event.station_id, occurred_at=event.occurred_at, opened_at=now, paged=paged,
            accept_by=accept_by, placement_due_at=placement_due_at, first_name=event.first_name))
        log.info("walk_in_opened", case_id=case_id, site_id=site.site_id, paged=len(paged))

    # --- on the case's partition -----------------------------------------------------------------------
    async def open(self, event: WalkInOpened) -> None:
        walk_in = self._load(event.case_id)
        if walk_in is None:
            walk_in = WalkIn(event.case_id, event.site_id, event.station_id, event.occurred_at, tuple(event.paged),
                             event.accept_by, event.placement_due_at)
            self._save(walk_in)
        if walk_in.accepted_by is not None or not walk_in.is_open:
            return
        # Again on a replay: the pages already delivered are skipped by attempt id, those a crash
        # interrupted are completed.
        pathway = self._pathway(walk_in.site_id)
        if pathway is None:
            return
        station = pathway.stations[walk_in.station_id]
        waiting_since = walk_in.occurred_at.astimezone(self.reference.site(walk_in.site_id).zone).strftime("%H:%M")
        for volunteer_id in walk_in.paged:
            volunteer = self.reference.volunteers.get(volunteer_id)
            if volunteer is None:
                continue
            text = (f"Handoff: someone asked for help at {station.name} at {waiting_since}. Can you go? "
                    f"First to accept takes it: {self.link_for(walk_in.case_id, volunteer_id)}")
            await message_each(self.delivery, [(volunteer_id, volunteer)], f"{walk_in.case_id}/{PAGE}",
                               "Someone asked for help: can you go?", text,
                               {"type": "walk_in.page", "case_id": walk_in.case_id, "station": station.name},
                               DisclosedRecord.walk_in_page, walk_in.case_id, {"case_id": walk_in.case_id})

    async def apply_acceptance(self, event: WalkInAccepted) -> None:
        walk_in = self._load(event.case_id)
        if walk_in is None:
            log.warning("acceptance_for_unknown_walk_in", case_id=event.case_id)
            return
        walk_in, took_it = accept(walk_in, event.volunteer_id, event.accepted_at)
        if not took_it:
            return  # taken before (this volunteer was told so), or a repeat
        self._save(walk_in)
        log.info("walk_in_accepted", case_id=walk_in.case_id, volunteer_id=event.volunteer_id)
        others = [(i, v) for i in walk_in.paged
                  if i != event.volunteer_id and (v := self.reference.volunteers.get(i)) is not None]
        text = "Handoff: the walk-in you were paged for is taken by another volunteer. Thank you."
        await message_each(self.delivery, others, f"{walk_in.case_id}/{TAKEN}", "Walk-in taken", text,
                           {"type": "walk_in.taken", "case_id": walk_in.case_id}, DisclosedRecord.walk_in_page,
                           walk_in.case_id, {"case_id": walk_in.case_id})

    async def tell_coordinators(self, event: WalkInEscalated) -> None:
        self.walk_ins.applied(event.case_id, event.reason.value)
        walk_in = self._load(event.case_id)
        if walk_in is None or not walk_in.is_open or event.reason in walk_in.escalations:
            return
        if event.reason is not EscalationReason.placement_overdue and walk_in.accepted_by is not None:
            return  # accepted meanwhile
        self._save(escalated(walk_in, event.reason))
        site = self.reference.site(walk_in.site_id)
        pathway = self._pathway(walk_in.site_id)
        if site is None or pathway is None:
            return
        station = pathway.stations[walk_in.station_id].name
        since = spoken_time(walk_in.occurred_at, site.zone, self.clock.now())
        where = f"Open walk-ins: {self.console_url}/console/walk-ins (sign in)."
        subject, text = {
            EscalationReason.no_volunteer: ("Walk-in: no volunteer could be paged",
                                            f"Walk-in {walk_in.case_id} at {station} since {since}: no volunteer is "
                                            f"available and near. Please send someone. {where}"),
            EscalationReason.unanswered: ("Walk-in: nobody accepted",
                                          f"Walk-in {walk_in.case_id} at {station} since {since}: "
                                          f"{len(walk_in.paged)} volunteers paged, nobody accepted. {where}"),
            EscalationReason.placement_overdue: ("Walk-in not placed in time",
                                                 f"Walk-in {walk_in.case_id} at {station} since {since} is not placed "
                                                 f"in treatment within {pathway.placement_target_hours:g} hours. "
                                                 f"{where}"),
        }[event.reason]
        people = [(i, p) for i in pathway.coordinator_ids if (p := self.reference.case_managers.get(i)) is not None]
        await message_each(self.delivery, people, f"{walk_in.case_id}/{event.reason.value}", subject, text,
                           {"type": f"walk_in.{event.reason.value}", "case_id": walk_in.case_id,
                            "site_id": site.site_id}, DisclosedRecord.walk_in_alert, walk_in.case_id,
                           {"case_id": walk_in.case_id})
        log.info("walk_in_escalated", case_id=walk_in.case_id, reason=event.reason.value)

    async def apply_milestone(self, event: WalkInMilestoneRecorded) -> None:
        walk_in = self._load(event.case_id)
        if walk_in is not None:
            self._save(record_milestone(walk_in, event.milestone_id, event.milestone))


    async def forget(self, event: WalkInExpired) -> None:
        """Retention ended: delete the walk-in and its messages' records (tombstones in the changelogs)."""
        record = self.walk_ins.expire(event.case_id, event.expired_at)
        if record is None:
            return
        walk_in = record.state
        pathway = self._pathway(walk_in.site_id)
        keys = [f"{event.case_id}/{PAGE}/{v}" for v in walk_in.paged]
        keys += [f"{event.case_id}/{TAKEN}/{v}" for v in walk_in.paged]
        keys += [f"{event.case_id}/{r.value}/{c}" for r in EscalationReason
                 for c in (pathway.coordinator_ids if pathway else ())]
        self.delivery.forget([f"{key}/{channel.value}" for key in keys for channel in Channel])
        log.info("walk_in_expired", case_id=event.case_id)

    # --- timer ------------------------------------------------------------------------------------------
    async def publish_due(self) -> int:
        """The timer: a coordinator's alert due (``WalkInEscalated``), a retention ended (``WalkInExpired``);
        the case's owner applies them."""
        return await self.walk_ins.tick(self.clock.now())

    def _due(self, case_id: str, record: Owned[WalkIn], now: datetime) -> list[Due]:
        walk_in = record.state
        step = walk_in.next_escalation()
        if step is None or step[1] > now:
            return []
        return [Due(WALK_INS, step[0].value, WalkInEscalated(
            case_id=case_id, site_id=walk_in.site_id, reason=step[0], escalated_at=now))]

    # --- state --------------------------------------------------------------------------------------------
    def _pathway(self, site_id: str) -> SelfReferralPathway | None:
        site = self.reference.site(site_id)
        return site.self_referral if site else None

    def _next_due(self, record: Owned[WalkIn]) -> datetime | None:
        step = record.state.next_escalation()
        return step[1] if step else None

    def _expires_at(self, record: Owned[WalkIn]) -> datetime:
        return record.state.expires_at(self.retention)

    def _load(self, case_id: str) -> WalkIn | None:
        return self.walk_ins.state(case_id)

    def _save(self, walk_in: WalkIn) -> None:
        self.walk_ins.keep(walk_in.case_id, walk_in)


def _expired(case_id: str, now: datetime) -> WalkInExpired:
    return WalkInExpired(case_id=case_id, expired_at=now)


# --- what volunteers and staff record (the volunteer's link, the API, the console) --------------------------

async def volunteer_accepts(case_id: str, volunteer_id: str, at: datetime, publisher: Publisher) -> None:
    await publisher.publish(WALK_INS, case_id, WalkInAccepted(case_id=case_id, volunteer_id=volunteer_id,
                                                              accepted_at=at))


async def log_milestone(case_id: str, site_id: str, milestone: WalkInMilestone, by: str, at: datetime,
                        idempotency_key: str | None, publisher: Publisher) -> str:
    """One milestone, as a volunteer or a coordinator records it; a retried tap with the same key is the same."""
    milestone_id = f"{case_id}/{by}/{idempotency_key or uuid.uuid4().hex}"
    await publisher.publish(WALK_INS, case_id, WalkInMilestoneRecorded(
        milestone_id=milestone_id, case_id=case_id, site_id=site_id, milestone=milestone, recorded_by=by, at=at))
    return milestone_id


async def claim_expense(case_id: str, site_id: str, volunteer_id: str, kind: ExpenseKind, miles: float | None,
                        amount_cents: int | None, incurred_on: date, pathway: SelfReferralPathway, at: datetime,
                        idempotency_key: str | None, publisher: Publisher) -> VolunteerExpenseClaimed:
    """A volunteer's claim: mileage at the site's rate, anything else at the amount paid."""
    if kind is ExpenseKind.mileage:
        if miles is None:
            raise ValueError("miles: required for mileage")
        amount_cents = mileage_cents(miles, pathway)
    elif amount_cents is None:
        raise ValueError("amount_cents: required for meals and other expenses")
    claim = VolunteerExpenseClaimed(
        expense_id=f"{case_id}/{volunteer_id}/{idempotency_key or uuid.uuid4().hex}", case_id=case_id,
        site_id=site_id, volunteer_id=volunteer_id, kind=kind, miles=miles if kind is ExpenseKind.mileage else None,
        amount_cents=amount_cents, incurred_on=incurred_on, claimed_at=at)
    await publisher.publish(WALK_INS, case_id, claim)
    return claim
