"""Officer intervention on the real broker: charges held until a treatment plan is complete ->
the case manager warned before the legal deadline -> at the deadline the prosecutor's contact is told,
within the person's consent; without it the refusal is audited and nothing is sent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.kernel.events import (
    DeliveryOutcome,
)
from services.messaging.events import DisclosedRecord
from tests.conftest import eventually
from tests.integration.test_lead_flow import NOW, TOKEN, on_call, referral_body
from tests.integration.test_no_personal_data_in_logs import read_audit

pytestmark = pytest.mark.integration
DEADLINE = NOW + timedelta(days=30)
PROSECUTOR = "diversion@da.example.org"


def intervention(cad_event_id: str, *consent: str) -> dict:
    return {**referral_body(cad_event_id), "referral_type": "officer_intervention",
            "charges_held_until": DEADLINE.isoformat(), "consent": {"recipient_roles": list(consent)}}


async def test_the_legal_deadline_warns_then_tells_the_prosecutor_only_within_consent(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    within = await system.http.post("/v1/referrals", json=intervention("CAD-OI-A", "case_manager", "program_manager",
                                                                       "prosecutor"), headers=TOKEN)
    without = await system.http.post("/v1/referrals", json=intervention("CAD-OI-B", "case_manager",
                                                                        "program_manager"), headers=TOKEN)
    assert within.status_code == without.status_code == 202, within.text
    cm = on_call(system)
    pages = await eventually(lambda: len([m for m in system.messages("sms") if m.to == cm.phone]) >= 2)
    assert pages

    system.clock.set(DEADLINE - timedelta(days=14, seconds=1))
    await eventually(lambda: True, interval=0.5)  # several timer ticks: nothing about the legal deadline yet
    assert not [m for m in system.messages("sms") if "legal deadline" in m.body]
    system.clock.set(DEADLINE - timedelta(days=14))
    warned = await eventually(lambda: [m for m in system.messages("email") if "legal deadline" in m.body])
    assert {m.to for m in warned} >= {"pm@lead.example.org"}
    assert not [m for m in system.messages("email") if m.to == PROSECUTOR]  # a warning is not the prosecutor's

    system.clock.set(DEADLINE)
    told = await eventually(lambda: [m for m in system.messages("email") if m.to == PROSECUTOR])
    assert len(told) == 1 and "CAD-OI-A" in told[0].body and "passed" in told[0].body
    assert "Example" not in told[0].body and "parka" not in told[0].body

    async def refusal_audited():
        _raw, audits = await read_audit(system.settings)
        notices = [a for a in audits if a.record_kind is DisclosedRecord.lead_prosecutor_notice]
        return notices if len(notices) >= 2 else None

    notices = await eventually(refusal_audited)
    outcomes = {a.subject_id: a.outcome for a in notices}
    assert outcomes[within.json()["referral_id"]] is DeliveryOutcome.delivered
    assert outcomes[without.json()["referral_id"]] is DeliveryOutcome.skipped
    assert len([m for m in system.messages("email") if m.to == PROSECUTOR]) == 1
