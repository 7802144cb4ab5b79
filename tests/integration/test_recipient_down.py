"""Recipients that are down or slow: retries with backoff, escalation on time, nobody else waits.

The dev inbox injects the faults: the on-call case manager's SMS gateway sits on every request
longer than the client's timeout, SMTP refuses twice (451), and the webhook answers 500.
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.kernel.events import DeliveryOutcome
from services.messaging.outbox import PENDING
from services.notifier.domain.escalation import attempt_id
from tests.conftest import eventually
from tests.integration.test_lead_flow import on_call, submit

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))


async def test_a_hanging_sms_gateway_delays_nothing_else_and_escalation_is_on_time(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW, delivery_timeout_seconds=2.0,
                                  delivery_attempts=3)
    cm = on_call(system)
    backup = system.reference.case_managers["cm-cruz"]
    inbox = system.inbox.inbox
    inbox.delay[f"sms:{cm.phone}"] = 30.0  # longer than the client's timeout: every try times out
    inbox.fail_next.update(email=2, webhook=1)

    ids = [await submit(system, f"CAD-SLOW-{n}") for n in range(3)]
    # Every email arrives (after two refusals and retries) while the SMS tries still hang.
    mail = await eventually(lambda: len(system.messages("email")) == 3 and system.messages("email"))
    assert {m.to for m in mail} == {cm.email} and inbox.fail_next["email"] == 0
    delivery = system.apps["notifier"].services["notifier"].delivery
    sms_attempts = [attempt_id(f"pg-{rid}", 0, 0, cm.case_manager_id, "sms") for rid in ids]
    assert all(delivery.status(a) == PENDING for a in sms_attempts)

    # Step two is due at 5:00 whatever the stuck sends are doing.
    system.clock.advance(minutes=5)
    to_backup = lambda: [m for m in system.messages("sms") if m.to == backup.phone]  # noqa: E731
    escalated = await eventually(lambda: len(to_backup()) == 3 and to_backup(), timeout=5)
    assert all(m.body.startswith("ESCALATED") for m in escalated)  # (the officers hear too, from their own texts)
    hooks = await eventually(lambda: len(system.messages("webhook")) == 3 and system.messages("webhook"), timeout=5)
    assert {json.loads(h.body)["referral_id"] for h in hooks} == set(ids) and inbox.fail_next["webhook"] == 0
    assert any(delivery.status(a) == PENDING for a in sms_attempts)  # the first tries are still out

    # The stuck sends give up after their tries and say so; nothing arrived twice.
    await eventually(lambda: all(delivery.status(a) == DeliveryOutcome.failed.value for a in sms_attempts), timeout=20)
    assert not [m for m in system.messages("sms") if m.to == cm.phone]
    assert inbox.duplicates == []
