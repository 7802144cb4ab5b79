from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.kernel.reference import EscalationPolicyConfig, EscalationStepConfig
from services.kernel.store import JsonForm
from services.notifier.domain.escalation import PageState, acknowledge, due_escalation, escalate, open_page

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
POLICY = EscalationPolicyConfig(loops=2, steps=(EscalationStepConfig(targets=("on_call",), escalate_after_minutes=5),
                                                EscalationStepConfig(targets=("cm-cruz",), escalate_after_minutes=10)))


def test_step_escalates_exactly_at_its_deadline() -> None:
    page = open_page("p", "r", "abq", T0)
    assert not due_escalation(page, POLICY, T0 + timedelta(minutes=4, seconds=59))
    assert due_escalation(page, POLICY, T0 + timedelta(minutes=5))


def test_steps_then_loops_then_exhausted() -> None:
    page = open_page("p", "r", "abq", T0)
    seen = []
    now = T0
    while page.is_open:
        now += timedelta(minutes=30)  # a late timer tick
        page = escalate(page, POLICY, now)
        seen.append((page.step_index, page.loop, page.exhausted))
    assert seen == [(1, 0, False), (0, 1, False), (1, 1, False), (1, 1, True)]


def test_next_step_starts_at_previous_deadline_not_at_late_tick() -> None:
    page = escalate(open_page("p", "r", "abq", T0), POLICY, T0 + timedelta(minutes=9))
    assert page.step_started_at == T0 + timedelta(minutes=5)


def test_acknowledged_page_never_escalates_and_keeps_first_ack() -> None:
    page = acknowledge(open_page("p", "r", "abq", T0), "cm-ana", T0 + timedelta(minutes=2))
    assert not due_escalation(page, POLICY, T0 + timedelta(hours=5))
    again = acknowledge(page, "cm-ben", T0 + timedelta(minutes=3))
    assert again is page and again.acknowledged_by == "cm-ana"


def test_state_round_trips_through_its_stored_form() -> None:
    page = acknowledge(escalate(open_page("p", "r", "abq", T0), POLICY, T0), "x", T0)
    form = JsonForm(PageState)
    assert form.load(json.loads(json.dumps(form.dump(page)))) == page
