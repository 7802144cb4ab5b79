"""Paging rules end to end in memory: fake channels, fake clock, in-memory publisher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.links import AckLinks
from services.kernel.clock import FakeClock
from services.kernel.events import (
    AcknowledgedVia,
    DeliveryOutcome,
    Milestone,
    ReferralStatus,
    StatusReason,
)
from services.kernel.lead import (
    EngagementRecorded,
    PageAcknowledged,
    PageEscalated,
    PageExhausted,
    PageRequested,
    PageSent,
    ReferralStatusChanged,
)
from services.kernel.topics import AUDIT
from services.messaging.events import DisclosedRecord, DisclosureAudited
from services.messaging.kafka import InMemoryPublisher
from services.messaging.outbox import IdempotentDelivery
from services.notifier.domain.schedule import on_call_at
from services.notifier.service import Notifier, PageAttempts, page_id_for
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.domain.model import open_referral
from tests.factories import cad_referral
from tests.fakes import SettledCalls, recording_channels

REF = load_reference_data(REPO_ROOT / "config" / "local")
T0 = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


class Harness:
    def __init__(self, reference=REF, **failures: int) -> None:
        self.clock = FakeClock(T0)
        self.publisher = InMemoryPublisher()
        self.channels = recording_channels(**failures)
        self.links = AckLinks("test-secret", "https://handoff.test", 3600, self.clock)
        audit = lambda record: self.publisher.publish(AUDIT, record.subject_id, record)  # noqa: E731
        delivery = IdempotentDelivery(self.channels, {}, attempts=2, backoff_seconds=0, audit=audit, service="notifier",
                                      report=PageAttempts(self.publisher, self.clock))
        delivery.clock = self.clock
        notifier = Notifier(reference, {}, delivery, self.links, self.publisher, self.clock)
        self.notifier = SettledCalls(notifier, delivery, self.publisher, PageSent, notifier.on_page_event)
        self.referral = open_referral(cad_referral(), REF.sites["abq"], REF.agencies["apd"], T0)

    async def feed_published(self) -> None:
        """Deliver published page events back to the notifier, as the Kafka topic would."""
        pending = [r for r in self.publisher.records
                   if isinstance(r.event, (PageEscalated, PageAcknowledged, PageExhausted))]
        self.publisher.records = [r for r in self.publisher.records if r not in pending]
        for record in pending:
            self.publisher.records.append(record)
            await self.notifier.on_page_event(record.event)

    def sent_to(self, channel: str) -> list[str]:
        return [m.address for m in self.channels[channel].sent]

    async def taken_by_ben_and_flagged(self):
        """The referral paged, taken by cm-ben, then flagged as its intake deadline nears: the flag to replay."""
        from services.kernel.events import ReferralFlag
        from services.kernel.lead import ReferralFlagged

        await self.notifier.on_referral_event(self.referral)
        await self.notifier.on_page_event(PageAcknowledged(
            page_id=page_id_for(self.referral.referral_id), referral_id=self.referral.referral_id,
            acknowledged_by="cm-ben", via=AcknowledgedVia.link, acknowledged_at=self.clock.now()))
        flag = ReferralFlagged(referral_id=self.referral.referral_id, site_id="abq",
                               flag=ReferralFlag.intake_deadline_near, flagged_at=self.clock.now(),
                               due_at=self.referral.intake_due_at)
        await self.notifier.on_referral_event(flag)
        return flag

    def warnings(self) -> list:
        return [m for ch in self.channels.values() for m in ch.sent if "intake deadline" in m.text + m.body]


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_new_referral_pages_on_call_cm_on_every_channel(h) -> None:
    await h.notifier.on_referral_event(h.referral)
    [request] = h.publisher.events(PageRequested)
    assert request.page_id == page_id_for(h.referral.referral_id)
    site = REF.sites["abq"]
    on_call = REF.case_managers[on_call_at(site.on_call, site.zone, T0)]
    assert h.sent_to("sms") == [on_call.phone] and h.sent_to("email") == [on_call.email]
    sms = h.channels["sms"].sent[0]
    assert "bus shelter at 4th St and Gold Ave SW" in sms.text and "+15055550143" in sms.text
    assert "Zebulon" not in sms.text and "Featherstonehaugh" not in sms.text and "1987" not in sms.text
    assert "https://handoff.test/ack/page/" in sms.text
    assert {e.outcome for e in h.publisher.events(PageSent)} == {DeliveryOutcome.delivered}


async def test_a_page_says_when_the_officer_met_the_person_in_plain_words(h) -> None:
    await h.notifier.on_referral_event(h.referral)  # the CAD event was at 15:30 UTC, the page at 17:00
    sms, email = h.channels["sms"].sent[0], h.channels["email"].sent[0]
    assert "met the person Fri 20 Nov 08:30 MST, 90 min ago at bus shelter" in sms.text
    assert "Officer met the person: Fri 20 Nov 08:30 MST, 90 min ago" in email.body


async def test_a_late_referral_wakes_nobody_and_the_officer_is_told_once(h) -> None:
    late = open_referral(cad_referral("cad-late", occurred_at=T0 - timedelta(days=13)), REF.sites["abq"],
                         REF.agencies["apd"], T0)
    assert late.late  # past the site's warm-handoff window (120 minutes)
    for _ in range(2):  # a replay tells nobody again
        await h.notifier.on_referral_event(late)
    assert h.publisher.events(PageRequested) == []  # never paged: the handoff clock never started
    assert h.sent_to("sms") == ["+15055550143"] and h.sent_to("email") == []  # the officer, once; no case manager
    text = h.channels["sms"].sent[0].text
    assert "Sat 07 Nov" in text and "120-minute warm-handoff window" in text and "outreach" in text
    assert "Zebulon" not in text
    h.clock.advance(hours=3)
    assert await h.notifier.publish_due_escalations() == 0


async def test_replayed_referral_joins_the_open_page_and_sends_nothing(h) -> None:
    for _ in range(3):
        await h.notifier.on_referral_event(h.referral)
    assert len(h.publisher.events(PageRequested)) == 1
    assert len(h.channels["sms"].sent) == 1


async def test_acknowledged_page_does_not_escalate_and_officer_is_told(h) -> None:
    await h.notifier.on_referral_event(h.referral)
    h.clock.advance(minutes=2)
    await h.notifier.on_page_event(PageAcknowledged(
        page_id=page_id_for(h.referral.referral_id), referral_id=h.referral.referral_id, acknowledged_by="cm-ana",
        via=AcknowledgedVia.link, acknowledged_at=h.clock.now()))
    assert h.sent_to("sms")[-1] == "+15055550143"  # the officer's callback
    assert "Ana R." in h.channels["sms"].sent[-1].text  # the acknowledging CM's display name
    assert "for the person you met Fri 20 Nov 08:30 MST" in h.channels["sms"].sent[-1].text  # which referral
    h.clock.advance(hours=3)
    assert await h.notifier.publish_due_escalations() == 0
    assert h.publisher.events(PageEscalated) == []


async def test_unacknowledged_page_reaches_step_two_on_time(h) -> None:
    await h.notifier.on_referral_event(h.referral)
    h.clock.advance(minutes=4, seconds=59)
    assert await h.notifier.publish_due_escalations() == 0
    h.clock.advance(seconds=1)
    assert await h.notifier.publish_due_escalations() == 1
    assert await h.notifier.publish_due_escalations() == 0  # not published twice while in flight
    await h.feed_published()
    [escalated] = h.publisher.events(PageEscalated)
    assert (escalated.from_step, escalated.to_step, escalated.loop) == (0, 1, 0)
    cruz, officer = h.channels["sms"].sent[-2:]
    assert cruz.address == REF.case_managers["cm-cruz"].phone and cruz.text.startswith("ESCALATED")
    assert h.channels["webhook"].sent[-1].payload["referral_id"] == h.referral.referral_id
    # The officer is not left wondering: at the first escalation they hear who is tried now, for which referral.
    assert officer.address == "+15055550143"
    assert "has not answered your LEAD referral for the person you met Fri 20 Nov 08:30 MST" in officer.text
    assert "Now paging: Cruz" in officer.text and "Zebulon" not in officer.text


async def test_duplicate_escalation_event_changes_nothing(h) -> None:
    await h.notifier.on_referral_event(h.referral)
    h.clock.advance(minutes=5)
    await h.notifier.publish_due_escalations()
    [record] = [r for r in h.publisher.records if isinstance(r.event, PageEscalated)]
    await h.notifier.on_page_event(record.event)
    sent = len(h.channels["sms"].sent)
    await h.notifier.on_page_event(record.event)  # replayed
    assert len(h.channels["sms"].sent) == sent


async def test_failed_channel_is_retried_and_every_attempt_recorded() -> None:
    h = Harness(sms=1)
    await h.notifier.on_referral_event(h.referral)
    attempts = [(e.channel.value, e.attempt, e.outcome.value) for e in h.publisher.events(PageSent)]
    assert ("sms", 1, "failed") in attempts and ("sms", 2, "delivered") in attempts
    assert len(h.channels["sms"].sent) == 1


async def test_step_nobody_can_receive_falls_through_to_next_step_at_once() -> None:
    h = Harness(sms=-1, email=-1)
    await h.notifier.on_referral_event(h.referral)
    [escalated] = h.publisher.events(PageEscalated)
    assert escalated.to_step == 1 and h.clock.now() == T0  # no waiting for the 5 minutes
    h.channels["sms"].fail_times = 0
    await h.feed_published()
    assert h.channels["webhook"].sent  # cm-cruz reached by webhook


class OpensCounted(dict):
    """A table that counts how often a record is read (each read of a sealed table opens and decodes it)."""

    opened = 0

    def get(self, key, default=None):
        self.opened += 1
        return super().get(key, default)


async def test_a_delivered_attempt_read_back_leaves_the_page_record_unopened() -> None:
    h = Harness()
    h.notifier.pages.table.raw = pages = OpensCounted()
    await h.notifier.on_referral_event(h.referral)
    [sms, email] = [e for e in h.publisher.events(PageSent) if e.final]
    pages.opened = 0
    await h.notifier.on_page_event(sms)
    await h.notifier.on_page_event(email)
    assert pages.opened == 0  # the common case: nothing to fall through from
    failed = sms.model_copy(update={"outcome": DeliveryOutcome.failed, "attempt_id": "another"})
    await h.notifier.on_page_event(failed)
    assert pages.opened == 1  # a failure may leave the step unreachable: that needs the page


async def test_policy_exhausted_closes_the_page() -> None:
    h = Harness()
    await h.notifier.on_referral_event(h.referral)
    for _ in range(4):
        h.clock.advance(minutes=30)
        await h.notifier.publish_due_escalations()
        await h.feed_published()
    assert h.publisher.events(PageEscalated)[-1].exhausted
    h.clock.advance(hours=1)
    assert await h.notifier.publish_due_escalations() == 0


async def test_replay_after_a_partial_delivery_completes_it_without_resending() -> None:
    h = Harness(email=-1)
    await h.notifier.on_referral_event(h.referral)
    assert len(h.channels["sms"].sent) == 1 and h.channels["email"].sent == []
    h.channels["email"].fail_times = 0
    h.clock.advance(minutes=1)
    await h.notifier.on_referral_event(h.referral)  # replay: joins the page, finishes its step
    assert len(h.channels["sms"].sent) == 1 and len(h.channels["email"].sent) == 1
    assert len(h.publisher.events(PageRequested)) == 1


async def test_timer_made_escalation_carries_the_referrals_correlation_id(h) -> None:
    from services.platform.logs import correlation_scope

    with correlation_scope("corr-from-cad"):
        await h.notifier.on_referral_event(h.referral)
    h.clock.advance(minutes=5)
    await h.notifier.publish_due_escalations()  # outside any correlation scope, as the timer runs
    [record] = [r for r in h.publisher.records if isinstance(r.event, PageEscalated)]
    assert dict(record.headers)["correlation_id"] == b"corr-from-cad"


async def test_intake_deadline_warning_goes_to_the_acknowledging_cm_and_program_managers(h) -> None:
    flag = await h.taken_by_ben_and_flagged()
    await h.notifier.on_referral_event(flag)  # a replayed flag warns nobody twice
    warnings = h.warnings()
    assert sorted(m.address for m in warnings) == ["+15055550102", "ben@lead.example.org", "pm@lead.example.org"]
    assert all("Zebulon" not in m.text and "bus shelter" not in m.text for m in warnings)
    assert {e.step_index for e in h.publisher.events(PageSent) if "intake_deadline" in e.attempt_id} == {-1}


async def test_case_manager_at_the_caseload_limit_is_passed_over() -> None:
    h = Harness()
    site = REF.sites["abq"]
    scheduled = on_call_at(site.on_call, site.zone, T0)
    other = next(m for m in site.on_call.members if m != scheduled)
    h.notifier.caseload = lambda cm: 25 if cm == scheduled else 12
    await h.notifier.on_referral_event(h.referral)
    assert h.sent_to("sms") == [REF.case_managers[other].phone]


async def test_every_delivery_attempt_is_audited_without_personal_data() -> None:
    from services.messaging.events import DisclosedRecord, DisclosureAudited

    h = Harness(sms=1)
    await h.notifier.on_referral_event(h.referral)
    audits = h.publisher.events(DisclosureAudited)
    sent = h.publisher.events(PageSent)
    assert len(audits) == len(sent) and {a.record_kind for a in audits} == {DisclosedRecord.lead_page}
    assert [(a.channel.value, a.attempt, a.outcome.value) for a in audits if a.channel.value == "sms"] == [
        ("sms", 1, "failed"), ("sms", 2, "delivered")]
    assert all(a.subject_id == h.referral.referral_id and a.recipient_role == "case_manager" for a in audits)
    text = repr(audits)
    for value in ("Zebulon", "Featherstonehaugh", "+15055550143", "bus shelter", "red parka", "@lead.example.org"):
        assert value not in text


def with_consent(h: Harness, *roles: str, expires_at=None) -> None:
    from services.kernel.events import Consent

    h.referral = h.referral.model_copy(update={"consent": Consent(recipient_roles=list(roles), expires_at=expires_at)})


async def test_referral_gets_the_sites_standard_consent_when_cad_sends_none(h) -> None:
    assert {r.value for r in h.referral.consent.recipient_roles} == {"case_manager", "outreach", "program_manager",
                                                                     "officer"}


async def test_officer_outside_consent_gets_no_confirmation_and_the_refusal_is_audited() -> None:
    from services.kernel.events import (
        DeliveryOutcome,
    )
    from services.messaging.events import DisclosureAudited

    h = Harness()
    with_consent(h, "case_manager", "outreach")
    await h.notifier.on_referral_event(h.referral)
    await h.notifier.on_page_event(PageAcknowledged(
        page_id=page_id_for(h.referral.referral_id), referral_id=h.referral.referral_id, acknowledged_by="cm-ana",
        via=AcknowledgedVia.link, acknowledged_at=h.clock.now()))
    assert "+15055550143" not in h.sent_to("sms")
    [refused] = [a for a in h.publisher.events(DisclosureAudited) if a.recipient_role == "officer"]
    assert refused.outcome is DeliveryOutcome.skipped


async def test_case_managers_outside_consent_are_passed_over_for_outreach_at_once() -> None:
    h = Harness()
    with_consent(h, "outreach")
    await h.notifier.on_referral_event(h.referral)
    assert h.channels["sms"].sent == [] and h.channels["email"].sent == []
    [escalated] = h.publisher.events(PageEscalated)
    assert escalated.to_step == 1 and h.clock.now() == T0
    await h.feed_published()
    assert h.sent_to("sms") == [REF.case_managers["cm-cruz"].phone]


async def test_expired_consent_discloses_nothing() -> None:
    h = Harness()
    with_consent(h, "case_manager", "outreach", "officer", expires_at=T0 - timedelta(days=1))
    await h.notifier.on_referral_event(h.referral)
    for _ in range(6):
        await h.feed_published()
    assert all(not ch.sent for ch in h.channels.values())
    assert h.publisher.events(PageEscalated)[-1].exhausted


async def test_every_lead_disclosure_carries_the_no_redisclosure_notice(h) -> None:
    from services.notifier.domain.messages import NO_REDISCLOSURE, NO_REDISCLOSURE_SHORT

    await h.notifier.on_referral_event(h.referral)
    h.clock.advance(minutes=5)
    await h.notifier.publish_due_escalations()
    await h.feed_published()
    for message in h.channels["sms"].sent:
        assert message.text.endswith(NO_REDISCLOSURE_SHORT)
    for message in h.channels["email"].sent:
        assert NO_REDISCLOSURE in message.body
    for message in h.channels["webhook"].sent:
        assert message.payload["redisclosure_notice"] == NO_REDISCLOSURE


async def run_out_every_step(h: Harness) -> None:
    for _ in range(4):  # abq: two steps (5 and 10 minutes), two loops
        h.clock.advance(minutes=30)
        await h.notifier.publish_due_escalations()
        await h.feed_published()
    await h.feed_published()  # what the last escalation published (PageExhausted)


async def test_a_page_nobody_acknowledges_is_a_missed_handoff_that_reaches_the_fallback_and_the_officer(h) -> None:
    await h.notifier.on_referral_event(h.referral)
    await run_out_every_step(h)

    [missed] = h.publisher.events(PageExhausted)
    assert (missed.referral_id, missed.site_id, missed.steps, missed.loops) == (h.referral.referral_id, "abq", 2, 2)
    pm, outreach = REF.case_managers["pm-abq"], REF.case_managers["cm-cruz"]
    assert [p.case_manager_id for p in REF.handoff_fallback("abq")] == ["pm-abq", "cm-cruz"]
    [to_pm] = [m for m in h.channels["email"].sent if m.address == pm.email]
    assert to_pm.subject.startswith("MISSED LEAD warm handoff")
    assert "bus shelter at 4th St and Gold Ave SW" in to_pm.body and "+15055550143" in to_pm.body
    assert "Zebulon" not in to_pm.body  # still no name outside the console
    assert [m for m in h.channels["webhook"].sent if m.payload.get("type") == "lead.handoff_missed"]
    assert outreach.phone in h.sent_to("sms")
    officer = [m for m in h.channels["sms"].sent if m.address == "+15055550143"]
    assert len(officer) == 2  # at the first escalation, then once every step went unanswered
    assert "has not answered" in officer[0].text and "no LEAD case manager has acknowledged" in officer[1].text
    kinds = {a.record_kind for a in h.publisher.events(DisclosureAudited)}
    assert DisclosedRecord.lead_handoff_missed in kinds

    sent = sum(len(c.sent) for c in h.channels.values())
    await h.notifier.on_page_event(missed)  # replayed: nobody is told twice
    assert sum(len(c.sent) for c in h.channels.values()) == sent
    h.clock.advance(hours=2)
    assert await h.notifier.publish_due_escalations() == 0


def status_changed(h: Harness, status: ReferralStatus, at) -> ReferralStatusChanged:
    return ReferralStatusChanged(referral_id=h.referral.referral_id, site_id="abq", status=status,
                                 previous_status=ReferralStatus.requested, reason=StatusReason.ineligible, changed_at=at,
                                 changed_by="pm-abq")


@pytest.mark.parametrize("stopper", ["rejected", "cancelled", "entered_in_error", "contacted", "contact_attempted"])
async def test_escalation_stops_when_the_referral_no_longer_waits_for_a_case_manager(h, stopper) -> None:
    await h.notifier.on_referral_event(h.referral)
    h.clock.advance(minutes=2)
    if stopper in ReferralStatus.__members__:
        await h.notifier.on_referral_event(status_changed(h, ReferralStatus(stopper), h.clock.now()))
    else:
        await h.notifier.on_referral_event(EngagementRecorded(
            engagement_id="e-1", referral_id=h.referral.referral_id, site_id="abq", milestone=Milestone(stopper),
            occurred_at=h.clock.now(), recorded_at=h.clock.now(), recorded_by="cm-ben"))
    sent = sum(len(c.sent) for c in h.channels.values())
    await run_out_every_step(h)
    assert h.publisher.events(PageEscalated) == [] and h.publisher.events(PageExhausted) == []
    assert sum(len(c.sent) for c in h.channels.values()) == sent
    [record] = h.notifier.pages.values()
    assert record.state.stopped_because.endswith(stopper)


async def test_an_escalation_already_in_flight_when_the_referral_is_rejected_sends_nothing(h) -> None:
    await h.notifier.on_referral_event(h.referral)
    h.clock.advance(minutes=5)
    assert await h.notifier.publish_due_escalations() == 1  # published, not yet applied
    await h.notifier.on_referral_event(status_changed(h, ReferralStatus.rejected, h.clock.now()))
    sent = sum(len(c.sent) for c in h.channels.values())
    await h.feed_published()
    assert sum(len(c.sent) for c in h.channels.values()) == sent


async def test_a_rejection_after_an_acknowledgement_keeps_the_acknowledgement(h) -> None:
    await h.notifier.on_referral_event(h.referral)
    await h.notifier.on_page_event(PageAcknowledged(
        page_id=page_id_for(h.referral.referral_id), referral_id=h.referral.referral_id, acknowledged_by="cm-ana",
        via=AcknowledgedVia.link, acknowledged_at=h.clock.now()))
    await h.notifier.on_referral_event(status_changed(h, ReferralStatus.rejected, h.clock.now()))
    [record] = h.notifier.pages.values()
    assert record.state.acknowledged_by == "cm-ana" and record.state.stopped_at is None
