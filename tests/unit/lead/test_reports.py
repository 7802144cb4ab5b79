"""The program manager's figures: funnel summary, time buckets, the monthly report and its CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.referral_intake.domain.reports import (
    monthly_report,
    report_csv,
    summarize,
    time_to_acknowledge,
    time_to_contact,
)
from services.referral_intake.domain.views import ReferralView, funnel

DENVER = ZoneInfo("America/Denver")
T0 = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)


def view(n: int, *, ack_min: float | None = None, contact_h: float | None = None, enrolled: bool = False,
         engaged: bool = False, at: datetime = T0, kind: str = "arrest_diversion",
         paged_after: timedelta = timedelta(0)) -> ReferralView:
    """A referral made ``at`` (the CAD event), paged ``paged_after`` it, acknowledged ``ack_min`` after the page."""
    v = ReferralView(f"r{n}", "abq", kind, at, at + timedelta(days=30))
    if ack_min is not None:
        v.paged_at = at + paged_after
        v.acknowledged_at = v.paged_at + timedelta(minutes=ack_min)
        v.milestones["acknowledged"] = v.acknowledged_at
    if contact_h is not None:
        v.milestones["contacted"] = at + timedelta(hours=contact_h)
        v.last_contact_at = v.milestones["contacted"]
    if enrolled:
        v.milestones["enrolled"] = at + timedelta(days=3)
    if engaged:
        v.milestones["engaged"] = at + timedelta(days=20)
    return v


def test_summary_rates_follow_the_program_definitions() -> None:
    views = [view(1, contact_h=2, enrolled=True, engaged=True), view(2, contact_h=30, enrolled=True), view(3), view(4)]
    s = summarize(views)
    assert (s.referrals, s.contacted, s.enrolled, s.engaged) == (4, 2, 2, 1)
    assert s.enrollment_rate == 0.5 and s.engagement_rate == 0.5 and s.contact_rate == 0.5
    assert summarize([]).enrollment_rate is None


def test_time_buckets_put_the_30_minute_handoff_on_an_edge() -> None:
    views = [view(1, ack_min=3), view(2, ack_min=29.9), view(3, ack_min=30), view(4, ack_min=90), view(5)]
    assert time_to_acknowledge(views) == [("<5 min", 1), ("5–15", 0), ("15–30", 1), ("30–60", 1), (">1 h", 1)]
    assert dict(time_to_contact([view(1, contact_h=2), view(2, contact_h=24 * 20)]))[">14 days"] == 1


def test_the_handoff_is_timed_from_the_page_and_cads_lag_is_a_figure_of_its_own() -> None:
    thirteen_days_late = view(1, ack_min=1, paged_after=timedelta(days=13))  # CAD sent it 13 days after the event
    assert thirteen_days_late.seconds_to_acknowledge() == 60
    assert time_to_acknowledge([thirteen_days_late])[0] == ("<5 min", 1)
    [row] = monthly_report([thirteen_days_late], "abq", "2026-11", DENVER)[-1:]
    assert (row.median_minutes_to_acknowledge, row.acknowledged_within_30_min) == ("1.0", 1)
    assert row.median_minutes_event_to_page == f"{13 * 24 * 60:.1f}"
    [week] = funnel([thirteen_days_late])
    assert week.median_seconds_to_acknowledge == 60 and week.median_seconds_event_to_page == 13 * 24 * 3600
    never_paged = view(2)
    never_paged.acknowledged_at = T0 + timedelta(minutes=3)  # taken from the worklist: no page to time
    assert never_paged.seconds_to_acknowledge() is None


def test_monthly_report_counts_referrals_made_in_the_sites_month_and_says_nothing_personal() -> None:
    late_oct_utc = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # still 31 October in Denver
    views = [view(1, ack_min=10, contact_h=5, enrolled=True), view(2, ack_min=45, kind="community"),
             view(3, at=late_oct_utc)]
    rows = monthly_report(views, "abq", "2026-11", DENVER)
    total = rows[-1]
    assert [r.referral_type for r in rows] == ["arrest_diversion", "community", "all"]
    assert (total.referrals, total.contacted, total.enrolled, total.acknowledged_within_30_min) == (2, 1, 1, 1)
    assert total.enrollment_rate == "0.500" and total.meets_enrollment_target == "no"
    assert total.median_minutes_to_acknowledge == "27.5"
    csv_text = report_csv(rows)
    assert csv_text.splitlines()[0].split(",")[:4] == ["month", "site_id", "referral_type", "referrals"]
    assert "r1" not in csv_text and "r2" not in csv_text  # no referral ids, let alone people
