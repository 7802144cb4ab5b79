"""What a program manager answers for: the funnel against the 60% / 75% targets, how fast pages are
acknowledged and people contacted, and the monthly report. Pure functions over ``ReferralView``s,
which carry no personal data, so nothing here can leak any."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, tzinfo
from statistics import median

from services.kernel.events import ReferralType
from services.kernel.pathways import PathwayFigures
from services.kernel.reference import Site
from services.referral_intake.domain.pathways import ENGAGEMENT_TARGET, ENROLLMENT_TARGET, LEAD_TITLES
from services.referral_intake.domain.views import ReferralView

HANDOFF_TARGET_SECONDS = 30 * 60  # domain brief: the warm handoff within 30 minutes

ACK_BUCKETS = ((5 * 60, "<5 min"), (15 * 60, "5–15"), (30 * 60, "15–30"), (60 * 60, "30–60"), (None, ">1 h"))
CONTACT_BUCKETS = ((86400, "<1 day"), (3 * 86400, "1–3"), (7 * 86400, "3–7"), (14 * 86400, "7–14"),
                   (None, ">14 days"))


@dataclass(frozen=True)
class FunnelSummary:
    referrals: int
    contacted: int
    enrolled: int
    engaged: int
    handoffs_missed: int = 0

    @property
    def enrollment_rate(self) -> float | None:
        return self.enrolled / self.referrals if self.referrals else None

    @property
    def engagement_rate(self) -> float | None:
        return self.engaged / self.enrolled if self.enrolled else None

    @property
    def contact_rate(self) -> float | None:
        return self.contacted / self.referrals if self.referrals else None


def summarize(views: Iterable[ReferralView]) -> FunnelSummary:
    views = list(views)
    return FunnelSummary(
        referrals=len(views),
        contacted=sum(v.seconds_to_contact() is not None for v in views),
        enrolled=sum(v.has("enrolled") or v.has("engaged") for v in views),
        engaged=sum(v.has("engaged") for v in views),
        handoffs_missed=sum(v.handoff_missed_at is not None for v in views))


def bucket(seconds: Iterable[float], edges: tuple[tuple[float | None, str], ...]) -> list[tuple[str, int]]:
    counts = {label: 0 for _, label in edges}
    for value in seconds:
        label = next(label for limit, label in edges if limit is None or value < limit)
        counts[label] += 1
    return list(counts.items())


def time_to_acknowledge(views: Iterable[ReferralView]) -> list[tuple[str, int]]:
    return bucket((s for v in views if (s := v.seconds_to_acknowledge()) is not None), ACK_BUCKETS)


def time_to_contact(views: Iterable[ReferralView]) -> list[tuple[str, int]]:
    return bucket((s for v in views if (s := v.seconds_to_contact()) is not None), CONTACT_BUCKETS)


@dataclass(frozen=True)
class ReportRow:
    """One line of the monthly report: counts and rates only."""

    month: str
    site_id: str
    referral_type: str
    referrals: int
    contacted: int
    enrolled: int
    engaged: int
    enrollment_rate: str
    engagement_rate: str
    meets_enrollment_target: str
    meets_engagement_target: str
    acknowledged_within_30_min: int
    median_minutes_to_acknowledge: str
    median_hours_to_contact: str
    handoffs_missed: int
    median_minutes_event_to_page: str  # CAD's lag before the page, apart from the handoff's own clock


def month_of(at: datetime, zone: tzinfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m")


def monthly_report(views: Iterable[ReferralView], site_id: str, month: str, zone: tzinfo) -> list[ReportRow]:
    """Referrals made in ``month`` (site-local), per referral type and in total."""
    in_month = [v for v in views if v.site_id == site_id and month_of(v.referred_at, zone) == month]
    kinds = sorted({v.referral_type for v in in_month})
    rows = [_row(month, site_id, kind, [v for v in in_month if v.referral_type == kind]) for kind in kinds]
    rows.append(_row(month, site_id, "all", in_month))
    return rows


def route_figures(views: Iterable[ReferralView], site: Site, month: str) -> list[PathwayFigures]:
    """LEAD's routes as pathways (one per accepted referral type): the month's funnel against enrollment's
    60% target, in the shape every pathway reports."""
    in_month = [v for v in views if v.site_id == site.site_id and month_of(v.referred_at, site.zone) == month]
    figures = []
    for kind in sorted(site.accepted_referral_types, key=lambda t: list(ReferralType).index(t)):
        s = summarize(v for v in in_month if v.referral_type == kind.value)
        figures.append(PathwayFigures(kind.value, LEAD_TITLES[kind], month,
                                      (("referrals", s.referrals), ("contacted", s.contacted), ("enrolled", s.enrolled),
                                       ("engaged", s.engaged)),
                                      "enrolled / referrals", ENROLLMENT_TARGET, s.enrollment_rate))
    return figures


def pathways_csv(figures: list[PathwayFigures], site_id: str) -> str:
    """Every pathway's month in one long table: a row per stage, with the pathway's target and rate."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("month", "site_id", "pathway", "stage", "count", "target_measure", "target", "rate", "meets_target"))
    for f in figures:
        for stage, count in f.stages:
            writer.writerow((f.period, site_id, f.pathway, stage, count, f.target_label, f"{f.target:.3f}",
                             "" if f.rate is None else f"{f.rate:.3f}",
                             "" if f.meets_target is None else ("yes" if f.meets_target else "no")))
    return out.getvalue()


def _row(month: str, site_id: str, kind: str, views: list[ReferralView]) -> ReportRow:
    s = summarize(views)
    acks = [a for v in views if (a := v.seconds_to_acknowledge()) is not None]
    contacts = [c for v in views if (c := v.seconds_to_contact()) is not None]
    lags = [lag for v in views if (lag := v.seconds_from_event_to_page()) is not None]
    rate = lambda r: "" if r is None else f"{r:.3f}"  # noqa: E731
    meets = lambda r, target: "" if r is None else ("yes" if r >= target else "no")  # noqa: E731
    return ReportRow(month, site_id, kind, s.referrals, s.contacted, s.enrolled, s.engaged, rate(s.enrollment_rate),
                     rate(s.engagement_rate), meets(s.enrollment_rate, ENROLLMENT_TARGET),
                     meets(s.engagement_rate, ENGAGEMENT_TARGET), sum(a <= HANDOFF_TARGET_SECONDS for a in acks),
                     f"{median(acks) / 60:.1f}" if acks else "", f"{median(contacts) / 3600:.1f}" if contacts else "",
                     s.handoffs_missed, f"{median(lags) / 60:.1f}" if lags else "")


def report_csv(rows: list[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(ReportRow.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return out.getvalue()
