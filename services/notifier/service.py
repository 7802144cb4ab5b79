"""Pages: open one per referral, deliver each escalation step, escalate on time, stop on acknowledgement.

State lives in ``pages`` (referral id -> page state and what the page says, a Faust table in the
worker) and in ``IdempotentDelivery``'s record of attempt ids, so replays, retries and restarts
do not page twice. Every state change happens while processing an event on the page's own partition; the
timer only *publishes* ``PageEscalated`` events, which the page's owner then applies (and a
duplicate, which no longer matches the page's step, is ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import ClassVar

from services.delivery.channels import PUSH_GONE, Outgoing
from services.delivery.links import AckLinks
from services.kernel.bus import Handlers, dispatch
from services.kernel.clock import Clock
from services.kernel.events import (
    OPEN_STATUSES,
    Channel,
    Consent,
    DeliveryOutcome,
    ReferralStatus,
)
from services.kernel.fhir import ClientSubscriptions
from services.kernel.lead import (
    ConsentRevoked,
    EngagementRecorded,
    EngagementWithdrawn,
    PageAcknowledged,
    PageEscalated,
    PageExhausted,
    PageRequested,
    PageSent,
    ParticipantSeen,
    ReferralCreated,
    ReferralFlagged,
    ReferralLocationUpdated,
    ReferralNoteWritten,
    ReferralRetentionEnded,
    ReferralStatusChanged,
)
from services.kernel.push import PushDevices, PushUnsubscribed, device_key
from services.kernel.reference import CaseManager, ReferenceData, Site
from services.kernel.store import KeyValueStore
from services.kernel.topics import PAGES, PUSH_SUBSCRIPTIONS
from services.messaging.due import Due, ScheduledRecords
from services.messaging.events import DisclosedRecord
from services.messaging.kafka import Publisher
from services.messaging.outbox import AttemptReporter, Disclosure, Dispatch, IdempotentDelivery
from services.notifier.domain.escalation import (
    LATE_REFERRAL,
    MILESTONES_THAT_STOP_PAGING,
    STATUSES_THAT_STOP_PAGING,
    OfficerCase,
    PageRecord,
    PageState,
    acknowledge,
    attempt_id,
    due_escalation,
    escalate,
    next_escalation_at,
    open_page,
    page_id_for,
    stop,
)
from services.notifier.domain.messages import (
    NO_REDISCLOSURE,
    render_page,
    when_met,
)
from services.notifier.domain.schedule import on_call_with_capacity
from services.notifier.updates import ReferralUpdates
from services.platform.logs import current_correlation_id, get_logger

log = get_logger(__name__)
VOICE_PURPOSE = "call"  # a page's call: the signed link its provider fetches the call's words with, and posts to
PUSH_ATTEMPT = "push-"  # a push delivery's attempt id ends with this and the device's subscription id
ON_CALL = "on_call"


def _step_of(state: PageState) -> str:
    """The marker of the escalation out of the page's current step (and loop)."""
    return f"{state.step_index}/{state.loop}"


def resolve_targets(targets: tuple[str, ...], site: Site, at: datetime,
                    has_capacity=lambda _cm: True) -> list[str]:
    """Case manager ids for a step's targets, without repeats: 'on_call' resolved at ``at`` with
    caseloads in view; named people at their caseload limit are passed over unless all of them are."""
    resolved: list[str] = []
    for target in targets:
        cm_id = on_call_with_capacity(site.on_call, site.zone, at, has_capacity) if target == ON_CALL else target
        if cm_id not in resolved:
            resolved.append(cm_id)
    with_room = [cm for cm in resolved if has_capacity(cm)]
    return with_room or resolved


class PageAttempts(AttemptReporter):
    """Publishes each delivery try of a page as ``PageSent``: the outbox's report, given to it by the
    worker, so that the outbox never calls up into the service."""

    async def __call__(self, dispatch: Dispatch, attempt: int, outcome: DeliveryOutcome, error: str | None,
                       final: bool) -> None:
        c = dispatch.context
        await self.publisher.publish(PAGES, c["referral_id"], PageSent(
            page_id=c["page_id"], referral_id=c["referral_id"], attempt_id=dispatch.attempt_id,
            step_index=c["step_index"], loop=c["loop"], target_id=c["target_id"], channel=Channel(dispatch.channel),
            outcome=outcome, attempt=attempt, error=error, final=final, sent_at=self.clock.now()))


class Notifier:
    updates: ReferralUpdates  # who else hears about the referral: a use case of its own, on the page's record

    def __init__(self, reference: ReferenceData, pages: KeyValueStore, delivery: IdempotentDelivery, links: AckLinks,
                 publisher: Publisher, clock: Clock, caseload=lambda _cm: 0,
                 client_subscriptions: ClientSubscriptions | None = None,
                 push_devices: PushDevices | None = None,
                 erase: Callable[[str], None] = lambda _subject: None) -> None:
        self.reference = reference
        self.push_devices = push_devices or PushDevices()  # each person's devices with push on
        self.erase = erase  # destroys a subject's data keys (a device dropped: its endpoint and keys unreadable)
        # the FHIR Subscriptions case-management systems created (the reference data holds the configured ones)
        self.client_subscriptions = client_subscriptions or ClientSubscriptions()
        self.caseload = caseload  # case manager id -> open referrals they took (domain brief: never over 25)
        # indexed by when the current step runs out
        self.pages = ScheduledRecords(pages, PageRecord, self._next_escalation_at, self._due, publisher, follows=reference)
        self.delivery = delivery
        self.links = links
        self.publisher = publisher
        self.clock = clock
        self.updates = ReferralUpdates(self)  # who else hears about the referral, through this page's record

    # --- event handlers (called on the page's partition) -----------------------------------------
    REFERRAL_EVENTS: ClassVar[Handlers] = {
        ReferralCreated: "open", ReferralFlagged: "updates.on_flag", ReferralStatusChanged: "on_status_changed",
        EngagementRecorded: "on_engagement", EngagementWithdrawn: "on_engagement_withdrawn",
        ParticipantSeen: "updates.tell_reengagement",
        ReferralLocationUpdated: "updates.tell_moved",
        ReferralNoteWritten: None,  # never paged: notes stay in the console
        **dict.fromkeys((ConsentRevoked, ReferralRetentionEnded))}  # its keys' end stops what was paged
    PAGE_EVENTS: ClassVar[Handlers] = {
        PageRequested: None, PageSent: "apply_settled_delivery", PageAcknowledged: "apply_acknowledgement",
        PageEscalated: "apply_escalation", PageExhausted: "updates.tell_fallback"}

    async def on_referral_event(self, event) -> None:
        await dispatch(self, self.REFERRAL_EVENTS, event)

    async def on_page_event(self, event) -> None:
        await dispatch(self, self.PAGE_EVENTS, event)

    async def on_status_changed(self, event: ReferralStatusChanged) -> None:
        if event.status in STATUSES_THAT_STOP_PAGING:
            self.stop_paging(event.referral_id, f"status {event.status.value}", event.changed_at)
        record = self.pages.get(event.referral_id)
        if record is not None:  # whether the referral is still open decides who may hear about the person later
            self.pages.put(event.referral_id, replace(record, closed=event.status not in OPEN_STATUSES))
        if event.status is ReferralStatus.completed:
            await self.updates.tell_prosecutor(event.referral_id, completed=True)
        await self.updates.notify_organizations(event.referral_id, event.site_id, event.changed_at)

    async def on_engagement(self, event: EngagementRecorded) -> None:
        if event.milestone in MILESTONES_THAT_STOP_PAGING:
            self.stop_paging(event.referral_id, f"milestone {event.milestone.value}", event.recorded_at)
        await self.updates.notify_organizations(event.referral_id, event.site_id, event.recorded_at)

    async def on_engagement_withdrawn(self, event: EngagementWithdrawn) -> None:
        """A step undone changes the referral as subscribers see it. Paging that a step stopped stays stopped: a
        re-page would repeat the person's whereabouts to more people for a referral somebody already holds."""
        await self.updates.notify_organizations(event.referral_id, event.site_id, event.withdrawn_at)

    def stop_paging(self, referral_id: str, because: str, at: datetime) -> None:
        """The referral has a case manager, or needs none any more: no further step is paged (a
        re-page would only repeat the person's whereabouts to more people: minimum necessary)."""
        loaded = self.load(referral_id)
        if loaded is None:
            return
        state, request = loaded
        stopped = stop(state, because, at)
        if stopped is not state:
            self._save(stopped, request)
            log.info("page_stopped", page_id=state.page_id, referral_id=referral_id, because=because)

    async def apply_settled_delivery(self, event: PageSent) -> None:
        """Record a delivery's outcome; if it was the current step's last hope, escalate now."""
        if not event.final:
            return  # a try that will be tried again
        self.delivery.settle(event.attempt_id, event.outcome)
        if event.channel is Channel.push and (event.error or "").startswith(PUSH_GONE):
            await self._drop_device(event.target_id, event.attempt_id.rsplit(PUSH_ATTEMPT, 1)[-1])
        if event.outcome is DeliveryOutcome.delivered:
            return  # nothing to fall through from (most deliveries): the page's record is not opened for it
        loaded = self.load(event.referral_id)
        if loaded is None:
            return
        state, request = loaded
        if state.is_open and (state.step_index, state.loop) == (event.step_index, event.loop):
            await self._fall_through_if_unreachable(state, request, self.reference.site(state.site_id))

    async def open(self, referral: ReferralCreated) -> PageState | None:
        site = self.reference.site(referral.site_id)
        existing = self.load(referral.referral_id)
        if existing is not None:
            # A repeat trigger joins the open page. Re-running its current step completes any
            # delivery a crash interrupted; those already delivered are skipped by attempt id.
            state, request = existing
            log.info("page_joined_existing", referral_id=referral.referral_id)
            if state.is_open:
                await self._notify_step(state, request, site)
            elif state.stopped_because == LATE_REFERRAL:  # a crash before the officer heard: tell them (once)
                await self.updates.tell_officer_late(state, request, site)
            return None
        now = self.clock.now()
        request = PageRequested(
            page_id=page_id_for(referral.referral_id), dedup_key=referral.referral_id, referral_id=referral.referral_id,
            site_id=referral.site_id, referral_type=referral.referral_type, officer_name=referral.officer.name,
            officer_callback_phone=referral.officer.callback_phone, location_description=referral.location.description,
            person_description=referral.person.description, requested_at=now, met_at=referral.referred_at)
        state = open_page(request.page_id, referral.referral_id, referral.site_id, now)
        if referral.late:
            # Past the warm-handoff window the person is long gone from where the officer was: waking a case
            # manager would send them nowhere. No page (none published: the referral was never paged); the
            # outreach worklist shows it as late, and the officer hears so.
            state = stop(state, LATE_REFERRAL, now)
            self._save(state, request, referral.consent, _case_of(referral))
            log.info("late_referral_not_paged", referral_id=referral.referral_id, site_id=site.site_id)
            await self.updates.tell_officer_late(state, request, site)
            return None
        await self.publisher.publish(PAGES, referral.referral_id, request)
        self._save(state, request, referral.consent, _case_of(referral))
        log.info("page_opened", page_id=state.page_id, referral_id=referral.referral_id, site_id=site.site_id)
        await self._notify_step(state, request, site)
        return state

    async def apply_escalation(self, event: PageEscalated) -> None:
        loaded = self.load(event.referral_id)
        if loaded is None:
            return
        state, request = loaded
        site = self.reference.site(state.site_id)
        expected = escalate(state, site.escalation, event.escalated_at)
        matches = (expected.exhausted and event.exhausted) or (
            not expected.exhausted and not event.exhausted and (expected.step_index, expected.loop) == (event.to_step, event.loop))
        if not state.is_open or state.step_index != event.from_step or not matches:
            return  # already applied, or overtaken by an acknowledgement: a duplicate changes nothing
        if expected.exhausted:
            # Published before the state is saved: a crash in between publishes it again, and
            # everything that follows it is idempotent; the other order could lose it.
            await self.publisher.publish(PAGES, state.referral_id, PageExhausted(
                page_id=state.page_id, referral_id=state.referral_id, site_id=state.site_id,
                steps=len(site.escalation.steps), loops=site.escalation.loops, opened_at=state.opened_at,
                exhausted_at=event.escalated_at))
        self._save(expected, request)
        self.pages.applied(state.referral_id, _step_of(state))
        if expected.exhausted:
            log.warning("page_unacknowledged_after_all_steps", page_id=state.page_id, referral_id=state.referral_id)
            return
        log.info("page_escalated", page_id=state.page_id, to_step=expected.step_index, loop=expected.loop)
        await self._notify_step(expected, request, site)
        if (state.step_index, state.loop) == (0, 0):  # the first escalation: the officer is not left wondering
            tried = [cm.display_name for cm, _channel in self._step_recipients(expected, site)]
            await self.updates.tell_officer_still_trying(expected, request, site, list(dict.fromkeys(tried)))

    async def apply_acknowledgement(self, event: PageAcknowledged) -> None:
        loaded = self.load(event.referral_id)
        if loaded is None:
            log.warning("acknowledgement_for_unknown_page", referral_id=event.referral_id)
            return
        state, request = loaded
        acknowledged = acknowledge(state, event.acknowledged_by, event.acknowledged_at)
        if acknowledged is state:
            return
        self._save(acknowledged, request)
        log.info("page_acknowledged", page_id=state.page_id, by=event.acknowledged_by, via=event.via.value,
                 seconds_to_ack=(event.acknowledged_at - request.requested_at).total_seconds())
        await self.updates.confirm_to_officer(state, request, event.acknowledged_by)

    # --- timer ------------------------------------------------------------------------------------
    async def publish_due_escalations(self) -> int:
        """Publish ``PageEscalated`` for every open page past its step deadline. Writes no state."""
        return await self.pages.tick(self.clock.now())

    def _due(self, _referral_id: str, record: PageRecord, now: datetime) -> list[Due]:
        state = record.state
        site = self.reference.site(state.site_id)
        if site is None or not due_escalation(state, site.escalation, now):
            return []
        return [self._escalation(state, site, now)]

    def _next_escalation_at(self, record: PageRecord) -> datetime | None:
        state = record.state
        site = self.reference.site(state.site_id)
        return next_escalation_at(state, site.escalation) if site is not None else None

    @staticmethod
    def _escalation(state: PageState, site: Site, now: datetime) -> Due:
        nxt = escalate(state, site.escalation, now)
        return Due(PAGES, _step_of(state), PageEscalated(
            page_id=state.page_id, referral_id=state.referral_id, from_step=state.step_index,
            to_step=nxt.step_index, loop=nxt.loop, escalated_at=now, exhausted=nxt.exhausted))

    # --- delivery ---------------------------------------------------------------------------------
    async def _notify_step(self, state: PageState, request: PageRequested, site: Site) -> None:
        for cm, channel in self._step_recipients(state, site):
            await self._deliver_page(state, request, cm, channel)
        await self._fall_through_if_unreachable(state, request, site)

    def _step_recipients(self, state: PageState, site: Site) -> list[tuple[CaseManager, Channel]]:
        step = site.escalation.steps[state.step_index]
        # Resolved at the step's start, so a re-run of the step pages the same people.
        return [(self.reference.case_managers[cm_id], channel)
                for cm_id in resolve_targets(step.targets, site, state.step_started_at, self._has_capacity)
                for channel in step.channels or self.reference.case_managers[cm_id].channels]

    def addresses(self, cm: CaseManager, channel: Channel) -> list[tuple[str, str]]:
        """(how the attempt id ends, address) of each delivery to ``cm`` on ``channel``: one, or for push one per
        device where the person allowed it (none: push is not on anywhere)."""
        if channel is Channel.push:
            return [(f"{PUSH_ATTEMPT}{device.subscription_id}", device.subscription_json())
                    for device in self.push_devices.of(cm.case_manager_id)]
        return [(channel.value, cm.address_for(channel) or "")]

    def _attempts(self, state: PageState, cm: CaseManager, channel: Channel) -> list[tuple[str, str]]:
        """(attempt id, address) of each delivery of the step to ``cm`` on ``channel``."""
        return [(attempt_id(state.page_id, state.step_index, state.loop, cm.case_manager_id, ending), address)
                for ending, address in self.addresses(cm, channel)]

    async def _drop_device(self, person_id: str, subscription_id: str) -> None:
        """Its push service no longer knows the device: no more pushes to it, here or in the console's list."""
        if subscription_id in {d.subscription_id for d in self.push_devices.of(person_id)}:
            subject = device_key(person_id, subscription_id)
            await self.publisher.publish(PUSH_SUBSCRIPTIONS, subject, PushUnsubscribed(
                subscription_id=subscription_id, person_id=person_id, reason="gone", unsubscribed_at=self.clock.now()))
            self.erase(subject)
            log.info("push_device_dropped", person_id=person_id, subscription_id=subscription_id)

    async def _fall_through_if_unreachable(self, state: PageState, request: PageRequested, site: Site) -> None:
        """Nobody at this step can be reached (every delivery failed for good or was refused, and nobody has push
        on where push is their channel): go on to the next step now rather than wait out the step."""
        settled = {DeliveryOutcome.failed.value, DeliveryOutcome.skipped.value}
        # lazily: the first delivery still pending or delivered answers it (each status opens a sealed record)
        statuses = (self.delivery.status(attempt) for cm, channel in self._step_recipients(state, site)
                    for attempt, _address in self._attempts(state, cm, channel))
        if all(status in settled for status in statuses):
            log.warning("page_step_undeliverable", page_id=state.page_id, step=state.step_index)
            await self.pages.request(state.referral_id, self._escalation(state, site, self.clock.now()))

    async def _deliver_page(self, state: PageState, request: PageRequested, cm: CaseManager, channel: Channel) -> None:
        site = self.reference.site(request.site_id)
        ack_url = self.links.url("page", request.referral_id, cm.case_manager_id)
        message = render_page(request, ack_url,
                              self.links.reply_code(request.referral_id, cm.case_manager_id),
                              escalated=state.step_index > 0 or state.loop > 0,
                              met=when_met(request.met_at, site.zone, self.clock.now()) if site else "")
        payload = {"type": "lead.page", "page_id": request.page_id, "referral_id": request.referral_id,
                   "site_id": request.site_id, "text": message.text, "redisclosure_notice": NO_REDISCLOSURE}
        steps = site.escalation.steps if site else ()
        step = steps[state.step_index] if 0 <= state.step_index < len(steps) else None
        if channel is Channel.push:  # the notification's Acknowledge button posts the link the SMS carries
            payload = {**payload, "ack_url": ack_url}
        elif channel is Channel.voice:  # the call fetches what to say, and posts the key pressed, with this link
            payload = {"type": "lead.page_call",
                       "call_url": self.links.url(VOICE_PURPOSE, request.referral_id, cm.case_manager_id, "v1/voice")}
        for attempt, address in self._attempts(state, cm, channel):
            # a push lives no longer than its step: after that the next step pages someone else
            outgoing = Outgoing(attempt, address, message.subject, message.text, message.body, payload,
                                ttl_seconds=int(step.escalate_after_minutes * 60) if step else None)
            await self.deliver_once(state, cm.case_manager_id, channel, outgoing,
                                    Disclosure(DisclosedRecord.lead_page, request.referral_id, cm.case_manager_id,
                                               cm.role))

    async def deliver_once(self, state: PageState, target_id: str, channel: Channel, outgoing: Outgoing,
                            disclosure: Disclosure, not_before: datetime | None = None) -> None:
        """Queue a delivery (held until ``not_before``, if given), unless the person's consent does not cover this
        recipient (42 CFR Part 2)."""
        dispatch = Dispatch(channel.value, outgoing, disclosure, {
            "page_id": state.page_id, "referral_id": state.referral_id, "step_index": state.step_index,
            "loop": state.loop, "target_id": target_id}, not_before)
        if not self._consent_permits(state.referral_id, disclosure.recipient_role):
            await self.delivery.refuse(dispatch, "outside the person's consent scope")
            return
        await self.delivery.request(dispatch)


    def _consent_permits(self, referral_id: str, role: str) -> bool:
        record = self.pages.get(referral_id)
        if record is None or record.consent is None:  # consent not recorded: the site's standard scope
            site = self.reference.site(record.state.site_id) if record else None
            return site is None or role in {r.value for r in site.default_consent_roles}
        return record.consent.permits(role, self.clock.now())

    def _has_capacity(self, cm_id: str) -> bool:
        person = self.reference.case_managers.get(cm_id)
        return person is None or self.caseload(cm_id) < person.max_caseload

    # --- state ------------------------------------------------------------------------------------
    def load(self, referral_id: str) -> tuple[PageState, PageRequested] | None:
        record = self.pages.get(referral_id)
        return None if record is None else (record.state, record.request)

    def _save(self, state: PageState, request: PageRequested, consent: Consent | None = None,
              case: OfficerCase | None = None) -> None:
        previous = self.pages.get(state.referral_id)
        if previous is None:
            self.pages.put(state.referral_id, PageRecord(state, request, current_correlation_id(), consent, case))
        else:
            self.pages.put(state.referral_id, replace(previous, state=state, request=request,
                                                      consent=consent or previous.consent, case=case or previous.case))


def _case_of(referral: ReferralCreated) -> OfficerCase | None:
    """What the prosecutor's notice names of an officer intervention: its CAD event and deadline."""
    if referral.legal_deadline is None:
        return None
    return OfficerCase(referral.cad_event_id, referral.legal_deadline)
