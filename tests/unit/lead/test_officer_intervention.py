"""Officer intervention: charges held until a treatment plan is complete. The case manager and the
program managers are warned before the legal deadline; the prosecutor's contact hears of completion
or of the deadline passing, only within the person's consent (otherwise the refusal is audited and
nothing is sent). Officer prevention has no legal clock."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from pydantic import ValidationError

from services.kernel.events import (
    AcknowledgedVia,
    DeliveryOutcome,
    ReferralFlag,
    ReferralStatus,
    ReferralType,
)
from services.kernel.lead import PageAcknowledged, ReferralFlagged, ReferralStatusChanged
from services.messaging.events import DisclosedRecord, DisclosureAudited
from services.notifier.service import page_id_for
from services.referral_intake.domain.model import cad_fingerprint, open_referral
from services.referral_intake.domain.views import ReferralView
from tests.factories import cad_referral
from tests.unit.lead.test_notifier_service import REF, T0, Harness, with_consent

DEADLINE = T0 + timedelta(days=90)


def intervention(**kw):
    return cad_referral("CAD-OI-1", occurred_at=T0, referral_type=ReferralType.officer_intervention,
                        charges_held_until=DEADLINE, **kw)


def test_an_intervention_needs_its_deadline_and_nothing_else_has_one() -> None:
    with pytest.raises(ValidationError, match="charges_held_until: required"):
        cad_referral("CAD-OI-2", occurred_at=T0, referral_type=ReferralType.officer_intervention)
    with pytest.raises(ValidationError, match="only an officer_intervention"):
        cad_referral("CAD-OI-3", occurred_at=T0, referral_type=ReferralType.officer_prevention,
                     charges_held_until=DEADLINE)
    with pytest.raises(ValidationError, match="must be after occurred_at"):
        cad_referral("CAD-OI-4", occurred_at=T0, referral_type=ReferralType.officer_intervention,
                     charges_held_until=T0 - timedelta(days=1))
    created = open_referral(intervention(), REF.sites["abq"], REF.agencies["apd"], T0)
    assert created.legal_deadline == DEADLINE


def test_a_referral_without_a_deadline_keeps_the_fingerprint_it_had_before_the_field_existed() -> None:
    cad = cad_referral("CAD-OLD", occurred_at=T0)
    assert "charges_held_until" not in cad.model_dump_json(exclude={"charges_held_until"})
    older = {"charges_held_until", "incident_id"}  # the fields added since, unset
    assert cad_fingerprint(cad) == hashlib.sha256(cad.model_dump_json(exclude=older).encode()).hexdigest()
    named = cad.model_copy(update={"incident_id": "INC-1"})
    assert cad_fingerprint(named) != cad_fingerprint(cad)  # an incident id, once sent, is part of what CAD said
    moved = intervention().model_copy(update={"charges_held_until": DEADLINE + timedelta(days=1)})
    assert cad_fingerprint(intervention()) != cad_fingerprint(moved)  # the deadline is part of what CAD said


def test_the_legal_clock_flags_near_then_passed_and_stops_when_the_plan_is_complete() -> None:
    view = ReferralView.opened(open_referral(intervention(), REF.sites["abq"], REF.agencies["apd"], T0))
    warn = timedelta(days=14)
    assert view.next_flag_at(timedelta(hours=48), timedelta(days=7), warn) <= DEADLINE - warn
    assert ReferralFlag.legal_deadline_near not in view.due_flags(DEADLINE - warn - timedelta(seconds=1),
                                                                  timedelta(hours=48), timedelta(days=365), warn)
    assert ReferralFlag.legal_deadline_near in view.due_flags(DEADLINE - warn, timedelta(hours=48),
                                                              timedelta(days=365), warn)
    assert ReferralFlag.legal_deadline_passed in view.due_flags(DEADLINE, timedelta(hours=48), timedelta(days=365), warn)
    view.status = ReferralStatus.completed.value
    assert view.due_flags(DEADLINE, timedelta(hours=48), timedelta(days=365), warn) == []
    prevention = ReferralView.opened(open_referral(
        cad_referral("CAD-OP-1", occurred_at=T0, referral_type=ReferralType.officer_prevention),
        REF.sites["abq"], REF.agencies["apd"], T0))
    assert not [f for f in prevention.due_flags(DEADLINE, timedelta(hours=48), timedelta(days=365), warn)
                if f.value.startswith("legal")]


async def opened(consent_roles: tuple[str, ...] | None = None) -> Harness:
    h = Harness()
    h.referral = open_referral(intervention(), REF.sites["abq"], REF.agencies["apd"], T0)
    if consent_roles is not None:
        with_consent(h, *consent_roles)
    await h.notifier.on_referral_event(h.referral)
    await h.notifier.on_page_event(PageAcknowledged(
        page_id=page_id_for(h.referral.referral_id), referral_id=h.referral.referral_id, acknowledged_by="cm-ben",
        via=AcknowledgedVia.link, acknowledged_at=T0))
    for channel in h.channels.values():
        channel.sent.clear()
    return h


def flagged(h: Harness, flag: ReferralFlag) -> ReferralFlagged:
    return ReferralFlagged(referral_id=h.referral.referral_id, site_id="abq", flag=flag, flagged_at=T0,
                           due_at=DEADLINE)


def prosecutor_audits(h: Harness) -> list[DisclosureAudited]:
    return [a for a in h.publisher.events(DisclosureAudited) if a.record_kind is DisclosedRecord.lead_prosecutor_notice]


async def test_the_case_manager_and_program_managers_are_warned_before_the_legal_deadline() -> None:
    h = await opened()
    await h.notifier.on_referral_event(flagged(h, ReferralFlag.legal_deadline_near))
    warned = [m for ch in h.channels.values() for m in ch.sent]
    assert {m.address for m in warned} >= {"+15055550102", "ben@lead.example.org", "pm@lead.example.org"}
    assert all("legal deadline" in m.text + m.body for m in warned)
    assert prosecutor_audits(h) == []  # the prosecutor hears nothing of a warning


async def test_the_prosecutor_hears_of_a_passed_deadline_within_consent_and_nothing_more() -> None:
    h = await opened(("case_manager", "program_manager", "prosecutor"))
    for _ in range(2):  # a replay tells nobody twice
        await h.notifier.on_referral_event(flagged(h, ReferralFlag.legal_deadline_passed))
    told = [m for m in h.channels["email"].sent if m.address == "diversion@da.example.org"]
    assert len(told) == 1 and "CAD-OI-1" in told[0].body and "passed" in told[0].body
    for private in ("Zebulon", "Featherstonehaugh", "1987", "parka", "Marlowe"):
        assert private not in told[0].body + repr(told[0].payload)
    assert [a.outcome for a in prosecutor_audits(h)] == [DeliveryOutcome.delivered]


async def test_without_the_persons_consent_the_prosecutor_gets_nothing_and_the_refusal_is_audited() -> None:
    h = await opened()  # the site's standard consent never names a prosecutor
    await h.notifier.on_referral_event(flagged(h, ReferralFlag.legal_deadline_passed))
    assert not [m for m in h.channels["email"].sent if m.address == "diversion@da.example.org"]
    assert [a.outcome for a in prosecutor_audits(h)] == [DeliveryOutcome.skipped]


async def test_a_completed_plan_is_told_to_the_prosecutor() -> None:
    h = await opened(("case_manager", "prosecutor"))
    await h.notifier.on_referral_event(ReferralStatusChanged(
        referral_id=h.referral.referral_id, site_id="abq", status=ReferralStatus.completed,
        previous_status=ReferralStatus.in_progress, changed_at=T0 + timedelta(days=60), changed_by="cm-ben"))
    [told] = [m for m in h.channels["email"].sent if m.address == "diversion@da.example.org"]
    assert "completed the treatment plan" in told.body
