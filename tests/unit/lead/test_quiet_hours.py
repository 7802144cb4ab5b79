"""Urgency and quiet hours: a case manager's quiet hours (the staff directory) hold a low-urgency message (a deadline
warning, a re-engagement notice) until they end, and never a page. Fake clock, fake channels, the outbox's own
holding (services/messaging/outbox.py ``release_held``)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from services.kernel.events import ReferralFlag
from services.kernel.lead import ReferralFlagged
from services.kernel.reference import Availability, QuietHours, Urgency, held_until
from tests.unit.lead.test_notifier_service import REF, T0, Harness

DENVER = "America/Denver"
# T0 is 10:00 in Denver: these quiet hours (09:00 to 12:00 every day) cover it.
MORNING = QuietHours(windows=(Availability(start=time(9), end=time(12)),), timezone=DENVER)
NIGHT = Availability(start=time(22), end=time(7))


def everyone_quiet(quiet: QuietHours):
    return REF.model_copy(update={"case_managers": {
        cm_id: cm.model_copy(update={"quiet_hours": quiet}) for cm_id, cm in REF.case_managers.items()}})


def test_quiet_hours_end_at_the_end_of_the_stretch_they_are_in() -> None:
    nights = QuietHours(windows=(NIGHT,), timezone=DENVER)
    at_ten_pm = datetime(2026, 12, 5, 5, 0, tzinfo=UTC)  # Friday 22:00 in Denver
    assert nights.until(at_ten_pm) == datetime(2026, 12, 5, 14, 0, tzinfo=UTC)  # Saturday 07:00
    assert nights.until(at_ten_pm + timedelta(hours=8)) == datetime(2026, 12, 5, 14, 0, tzinfo=UTC)  # 06:00
    assert nights.until(at_ten_pm - timedelta(minutes=1)) is None  # 21:59: not quiet
    weekends = QuietHours(windows=(NIGHT, Availability(days=frozenset({5, 6}), start=time(0), end=time(23, 59))),
                          timezone=DENVER)
    # Windows that meet are one stretch: Friday night, the weekend and its nights end on Monday at 07:00.
    assert weekends.until(at_ten_pm) == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def test_quiet_hours_keep_their_wall_clock_across_a_daylight_saving_change() -> None:
    nights = QuietHours(windows=(NIGHT,), timezone=DENVER)
    before_change = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # Saturday 22:00 MDT; clocks go back at 02:00
    assert nights.until(before_change) == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # Sunday 07:00 MST


def test_high_urgency_always_goes_through() -> None:
    assert held_until(Urgency.high, MORNING, T0) is None
    assert held_until(Urgency.low, None, T0) is None
    assert held_until(Urgency.low, MORNING, T0) == datetime(2026, 11, 20, 19, 0, tzinfo=UTC)  # noon in Denver


async def test_a_page_in_quiet_hours_goes_at_once() -> None:
    h = Harness(reference=everyone_quiet(MORNING))
    await h.notifier.on_referral_event(h.referral)
    assert h.sent_to("sms") and h.sent_to("email")
    assert h.notifier.delivery.held == 0


async def test_a_deadline_warning_in_quiet_hours_waits_until_they_end_and_then_goes_once() -> None:
    h = Harness(reference=everyone_quiet(MORNING))
    flag = await h.taken_by_ben_and_flagged()
    warnings = h.warnings
    assert warnings() == [] and h.notifier.delivery.held == 3  # ben's SMS and email, the program manager's email
    h.clock.advance(hours=1, minutes=59)
    assert h.notifier.delivery.release_held() == 0 and warnings() == []
    h.clock.advance(minutes=1)  # noon in Denver
    assert h.notifier.delivery.release_held() == 3
    await h.notifier.delivery.drain()
    assert sorted(m.address for m in warnings()) == ["+15055550102", "ben@lead.example.org", "pm@lead.example.org"]
    assert {m.urgency for m in warnings()} == {"low"}  # what a push says to the push service (RFC 8030 Urgency)
    await h.notifier.on_referral_event(flag)  # replayed: nothing twice
    assert h.notifier.delivery.release_held() == 0
    await h.notifier.delivery.drain()
    assert len(warnings()) == 3


async def test_a_held_warning_is_held_again_after_a_restart_and_goes_when_its_time_comes() -> None:
    h = Harness(reference=everyone_quiet(MORNING))
    await h.notifier.on_referral_event(h.referral)
    flag = ReferralFlagged(referral_id=h.referral.referral_id, site_id="abq", flag=ReferralFlag.intake_deadline_near,
                           flagged_at=h.clock.now(), due_at=h.referral.intake_due_at)
    await h.notifier.on_referral_event(flag)
    delivery = h.notifier.delivery
    held = delivery.held
    assert held > 0
    await delivery.close()  # a stop: the held deliveries stay pending in the outbox table
    assert delivery.held == 0 and delivery.resume() == held and delivery.held == held  # a restart holds them again
    h.clock.advance(hours=2)
    assert delivery.release_held() == held
