"""Who else hears about a referral besides the page's targets, each once and within the person's consent
(42 CFR Part 2): the officer (a case manager took it; nobody did), the fallback people of a missed warm
handoff, deadline warnings to the case manager and the program managers, the prosecutor's notice of
an officer intervention, the FHIR subscribers' id-only notifications, a participant seen by police again,
and a person who moved. Each goes through the page's record (``paging.load``, ``paging.deliver_once``): the
same consent, the same idempotency keys, the same partition."""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from services.delivery.channels import Outgoing
from services.delivery.links import AckLinks
from services.kernel.clock import Clock, spoken_time
from services.kernel.events import (
    PAGES_ONLY,
    Channel,
    ConsentRole,
    ReferralFlag,
)
from services.kernel.fhir import ClientSubscriptions
from services.kernel.lead import (
    OFFICER_TARGET,
    PageExhausted,
    PageRequested,
    ParticipantSeen,
    ReferralFlagged,
    ReferralLocationUpdated,
)
from services.kernel.reference import ReferenceData, Site, Urgency, held_until
from services.messaging.events import DisclosedRecord
from services.messaging.outbox import Disclosure
from services.notifier.domain.escalation import (
    FALLBACK_STEP,
    FHIR_STEP,
    MOVED_STEP,
    PROSECUTOR_STEP,
    REENGAGEMENT_STEP,
    WARNING_STEP,
    PageState,
    open_page,
    page_id_for,
)
from services.notifier.domain.fhir_notification import notification
from services.notifier.domain.messages import (
    NO_REDISCLOSURE,
    NO_REDISCLOSURE_SHORT,
    render_deadline_warning,
    render_handoff_missed,
    render_moved,
    render_officer_confirmation,
    render_officer_late,
    render_officer_no_case_manager,
    render_officer_still_trying,
    render_reengagement,
)
from services.platform.logs import get_logger

log = get_logger(__name__)


class PageRecords(Protocol):
    """What the updates use of the page's owner (``Notifier``): its records, and delivery within consent."""

    reference: ReferenceData
    clock: Clock
    links: AckLinks
    pages: MutableMapping
    client_subscriptions: ClientSubscriptions

    def load(self, referral_id: str) -> tuple[PageState, PageRequested] | None: ...

    async def deliver_once(self, state: PageState, target_id: str, channel: Channel, outgoing: Outgoing,
                           disclosure: Disclosure) -> None: ...


class ReferralUpdates:
    def __init__(self, paging: PageRecords) -> None:
        self.paging = paging

    @property
    def reference(self):
        return self.paging.reference

    @property
    def clock(self):
        return self.paging.clock

    async def _tell_officer(self, state: PageState, request: PageRequested, what: str, subject: str, text: str,
                            **payload: bool) -> None:
        """One SMS to the referring officer's callback number, once (``what`` names it in the attempt id): about
        their referral, never about the person, with the link to its warm handoff as it stands."""
        follow = self.paging.links.url(OFFICER_TARGET, state.referral_id, OFFICER_TARGET, "status")
        text = f"{text.removesuffix(NO_REDISCLOSURE_SHORT).rstrip()} Follow it: {follow} {NO_REDISCLOSURE_SHORT}"
        outgoing = Outgoing(f"{state.page_id}/officer-{what}", request.officer_callback_phone, subject, text, text,
                            {"referral_id": state.referral_id, **payload, "redisclosure_notice": NO_REDISCLOSURE})
        await self.paging.deliver_once(state, OFFICER_TARGET, Channel.sms, outgoing,
                                       Disclosure(DisclosedRecord.lead_officer_confirmation, state.referral_id,
                                                  OFFICER_TARGET, OFFICER_TARGET))

    def _met(self, request: PageRequested, site: Site | None) -> str:
        """When the officer met the person, as the officer's messages name their referral."""
        if request.met_at is None or site is None:
            return ""
        return spoken_time(request.met_at, site.zone, self.clock.now())

    async def confirm_to_officer(self, state: PageState, request: PageRequested, acknowledged_by: str) -> None:
        """The officer who referred hears that a case manager took the page (by display name, nothing else)."""
        cm = self.reference.case_managers.get(acknowledged_by)
        text = render_officer_confirmation(cm.display_name if cm else "on call",
                                           self._met(request, self.reference.site(state.site_id)))
        await self._tell_officer(state, request, "confirmation", "LEAD referral acknowledged", text, acknowledged=True)

    async def tell_officer_still_trying(self, state: PageState, request: PageRequested, site: Site,
                                        trying: list[str]) -> None:
        """The first escalation: the officer hears that the on-call has not answered, and who is paged now."""
        await self._tell_officer(state, request, "still-trying", "LEAD referral: still finding a case manager",
                                 render_officer_still_trying(self._met(request, site), trying), acknowledged=False)

    async def tell_officer_late(self, state: PageState, request: PageRequested, site: Site) -> None:
        """The officer whose referral came past the warm-handoff window hears that nobody was paged, and where it
        went instead (the outreach worklist); nothing about the person."""
        met = self._met(request, site) or spoken_time(request.requested_at, site.zone, self.clock.now())
        await self._tell_officer(state, request, "late", "LEAD referral: late, no case manager paged",
                                 render_officer_late(met, site.warm_handoff_window_minutes), late=True)

    async def tell_fallback(self, event: PageExhausted) -> None:
        """A missed warm handoff: the site's fallback people get the page to take or follow up, and the
        officer hears that nobody is coming yet and what happens next. Each send once (attempt ids)."""
        loaded = self.paging.load(event.referral_id)
        if loaded is None:
            return
        state, request = loaded
        people = self.reference.handoff_fallback(event.site_id)
        if not people:
            log.error("handoff_missed_without_fallback", referral_id=event.referral_id, site_id=event.site_id)
        for person in people:
            message = render_handoff_missed(request, self.paging.links.url("page", request.referral_id, person.case_manager_id),
                                            event.steps, event.loops)
            for channel in person.channels:
                payload = {"type": "lead.handoff_missed", "page_id": request.page_id, "referral_id": request.referral_id,
                           "site_id": request.site_id, "text": message.text, "redisclosure_notice": NO_REDISCLOSURE}
                outgoing = Outgoing(f"{state.page_id}/missed/{person.case_manager_id}/{channel.value}",
                                    person.address_for(channel), message.subject, message.text, message.body, payload)
                await self.paging.deliver_once(replace(state, step_index=FALLBACK_STEP), person.case_manager_id, channel,
                                         outgoing, Disclosure(DisclosedRecord.lead_handoff_missed, request.referral_id,
                                                              person.case_manager_id, person.role))
        await self._tell_officer(replace(state, step_index=FALLBACK_STEP), request, "no-case-manager",
                                 "LEAD referral: no case manager yet", render_officer_no_case_manager(),
                                 acknowledged=False)

    async def on_flag(self, flag: ReferralFlagged) -> None:
        if flag.flag is not ReferralFlag.no_contact:  # outreach's flag, not a deadline
            await self.warn_intake_deadline(flag)
        if flag.flag is ReferralFlag.legal_deadline_passed:
            await self.tell_prosecutor(flag.referral_id, completed=False)

    async def tell_prosecutor(self, referral_id: str, completed: bool) -> None:
        """Officer intervention: the prosecutor's contact hears that the treatment plan was completed,
        or that the legal deadline passed without it: the CAD event and the deadline, nothing else,
        and only within the person's consent (outside it the refusal is audited, nothing is sent)."""
        record = self.paging.pages.get(referral_id)
        case = record.case if record else None
        site = self.reference.site(record.state.site_id) if record else None
        if case is None or site is None or site.prosecutor is None:
            return  # not an officer intervention, or nobody to tell (the site has no prosecutor contact)
        state = record.state
        contact = site.prosecutor
        deadline = case.legal_deadline.astimezone(site.zone).strftime("%d %b %Y")
        outcome = "completed" if completed else "deadline_passed"
        text = (f"LEAD officer intervention, CAD event {case.cad_event_id}: the participant completed the "
                f"treatment plan (deadline {deadline})." if completed else
                f"LEAD officer intervention, CAD event {case.cad_event_id}: the legal deadline {deadline} passed "
                "without a completed treatment plan.")
        for channel in (Channel.email, Channel.webhook):
            address = contact.address_for(channel)
            if address is None:
                continue
            outgoing = Outgoing(f"{referral_id}/prosecutor/{outcome}/{channel.value}", address,
                                "LEAD officer intervention", text, f"{text}\n\n{NO_REDISCLOSURE}",
                                {"type": "lead.officer_intervention", "cad_event_id": case.cad_event_id,
                                 "outcome": outcome, "legal_deadline": case.legal_deadline.isoformat(),
                                 "redisclosure_notice": NO_REDISCLOSURE})
            await self.paging.deliver_once(replace(state, step_index=PROSECUTOR_STEP), contact.contact_id, channel, outgoing,
                                     Disclosure(DisclosedRecord.lead_prosecutor_notice, referral_id, contact.contact_id,
                                                ConsentRole.prosecutor.value))

    async def notify_organizations(self, referral_id: str, site_id: str, at: datetime) -> None:
        """The referral's FHIR Task changed: each subscription of a case-management organisation at the site (the
        one in the reference data, and those its clients created) gets an id-only notification (R4 Subscriptions
        Backport), once per change, within the person's consent (outside it the refusal is audited and nothing is
        sent)."""
        loaded = self.paging.load(referral_id)
        if loaded is None:
            return
        state = replace(loaded[0], step_index=FHIR_STEP)
        base = f"{self.paging.links.base_url}/fhir"
        number = int(at.timestamp() * 1000)
        created = self.paging.client_subscriptions.all(at)
        for org in self.reference.organizations.values():
            if site_id not in org.sites:
                continue
            subscribed = [(org.organization_id, org.subscription_url)] if org.subscription_url else []
            subscribed += [(s.subscription_id, s.endpoint) for s in created if s.organization_id == org.organization_id]
            for subscription_id, endpoint in subscribed:
                bundle = notification(subscription_id, referral_id, number, base, at)
                outgoing = Outgoing(f"{referral_id}/fhir/{subscription_id}/{number}", endpoint, "", "", "",
                                    bundle.model_dump(mode="json", exclude_none=True))
                await self.paging.deliver_once(state, org.organization_id, Channel.webhook, outgoing, Disclosure(
                    DisclosedRecord.lead_fhir_notification, referral_id, org.organization_id, org.consent_role.value))

    async def warn_intake_deadline(self, flag: ReferralFlagged) -> None:
        """Tell the acknowledging case manager and the site's program managers; no personal data."""
        site = self.reference.site(flag.site_id)
        loaded = self.paging.load(flag.referral_id)
        state = loaded[0] if loaded else open_page(page_id_for(flag.referral_id), flag.referral_id, flag.site_id,
                                                   flag.flagged_at)
        people = [state.acknowledged_by] if state.acknowledged_by else []
        people += [pm for pm in (site.program_manager_ids if site else ()) if pm not in people]
        text = render_deadline_warning(flag.referral_id, flag.flag.value, flag.due_at.astimezone(site.zone) if site else flag.due_at)
        subject = "LEAD legal deadline" if flag.flag.value.startswith("legal") else "LEAD intake deadline"
        await self._tell_staff(replace(state, step_index=WARNING_STEP), people, flag.flag.value, subject, text,
                               {"type": "lead.flag", "referral_id": flag.referral_id, "flag": flag.flag.value},
                               DisclosedRecord.lead_deadline_warning, Urgency.low)

    async def _tell_staff(self, state: PageState, people: list[str], key: str, subject: str, text: str,
                          payload: dict, kind: DisclosedRecord, urgency: Urgency) -> None:
        """A message about ``state``'s referral to each of ``people`` (staff ids) on each of their channels,
        once per ``key`` (attempt ids), within the person's consent, with the no-redisclosure notice; of ``low``
        urgency, after the person's quiet hours."""
        for person_id in people:
            person = self.reference.case_managers.get(person_id)
            if person is None:
                continue
            not_before = held_until(urgency, person.quiet_hours, self.clock.now())
            for channel in person.channels:
                if channel in PAGES_ONLY:
                    continue
                for ending, address in self.paging.addresses(person, channel):
                    outgoing = Outgoing(f"{state.referral_id}/{key}/{person_id}/{ending}", address, subject, text,
                                        f"{text}\n\n{NO_REDISCLOSURE}", {**payload, "redisclosure_notice": NO_REDISCLOSURE},
                                        urgency=urgency.value)
                    await self.paging.deliver_once(state, person_id, channel, outgoing,
                                                   Disclosure(kind, state.referral_id, person_id, person.role),
                                                   not_before)

    async def tell_reengagement(self, seen: ParticipantSeen) -> None:
        """Police met an inactive participant: the case manager who took the referral hears where and
        when (nobody took it: the site's program managers), each once per CAD event, within the
        person's consent (outside it the refusal is audited and nothing is sent)."""
        site = self.reference.site(seen.site_id)
        loaded = self.paging.load(seen.referral_id)
        state = loaded[0] if loaded else open_page(page_id_for(seen.referral_id), seen.referral_id, seen.site_id,
                                                   seen.seen_at)
        people = [state.acknowledged_by] if state.acknowledged_by else list(site.program_manager_ids if site else ())
        text = render_reengagement(seen.referral_id, spoken_time(seen.seen_at, site.zone if site else UTC, self.clock.now()),
                                   seen.location_description)
        await self._tell_staff(replace(state, step_index=REENGAGEMENT_STEP), people, f"seen/{seen.cad_event_id}",
                               "LEAD participant seen by police", text,
                               {"type": "lead.participant_seen", "referral_id": seen.referral_id,
                                "seen_at": seen.seen_at.isoformat(), "where": seen.location_description},
                               DisclosedRecord.lead_reengagement, Urgency.low)
        log.info("reengagement_alert_requested", referral_id=seen.referral_id, recipients=len(people))

    async def tell_moved(self, moved: ReferralLocationUpdated) -> None:
        """CAD updated an open referral's call: the person moved. The case manager who took it hears
        where (nobody took it yet: the site's program managers), once per update, within consent. A
        closed referral's person is nobody's to follow any more: nothing is sent."""
        record = self.paging.pages.get(moved.referral_id)
        site = self.reference.site(moved.site_id)
        if record is None or record.closed or site is None:
            return
        state = record.state
        people = [state.acknowledged_by] if state.acknowledged_by else list(site.program_manager_ids)
        text = render_moved(moved.referral_id, spoken_time(moved.updated_at, site.zone, self.clock.now()),
                            moved.location_description)
        key = f"moved/{hashlib.sha256(moved.location_description.encode()).hexdigest()[:12]}"
        await self._tell_staff(replace(state, step_index=MOVED_STEP), people, key, "LEAD referral: the person moved",
                               text, {"type": "lead.location_updated", "referral_id": moved.referral_id,
                                      "updated_at": moved.updated_at.isoformat(),
                                      "where": moved.location_description},
                               DisclosedRecord.lead_location_update, Urgency.high)  # someone may be on the way
        log.info("location_update_requested", referral_id=moved.referral_id, recipients=len(people))
