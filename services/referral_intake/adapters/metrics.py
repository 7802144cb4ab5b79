"""Prometheus figures computed from the read model at scrape time (so they never drift from it)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.pathways import ENGAGEMENT_TARGET, ENROLLMENT_TARGET
from services.referral_intake.domain.views import funnel

HANDOFF_BUCKETS = (60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)  # the 30-minute target sits at 1800 s


class LeadCollector(Collector):
    def __init__(self, model: LeadReadModel) -> None:
        self.model = model

    def collect(self) -> Iterator:
        labels = ["site", "referral_type"]
        counts = {name: GaugeMetricFamily(f"handoff_lead_{name}", f"LEAD referrals that reached: {name}", labels=labels)
                  for name in ("referrals", "contacted", "enrolled", "engaged")}
        counts["handoffs_missed"] = GaugeMetricFamily(
            "handoff_lead_handoffs_missed", "LEAD referrals whose page nobody acknowledged through every step",
            labels=labels)
        totals: dict[tuple[str, str], dict[str, int]] = {}
        for row in funnel(list(self.model.views.values())):
            t = totals.setdefault((row.site_id, row.referral_type), dict.fromkeys(counts, 0))
            for name in counts:
                t[name] += getattr(row, name)
        for key, t in totals.items():
            for name, family in counts.items():
                family.add_metric(list(key), t[name])
        yield from counts.values()
        yield GaugeMetricFamily("handoff_lead_enrollment_target_ratio", "Program target for enrolled/referrals",
                                value=ENROLLMENT_TARGET)
        yield GaugeMetricFamily("handoff_lead_engagement_target_ratio", "Program target for engaged/enrolled",
                                value=ENGAGEMENT_TARGET)
        for metric, measure, what in (
                ("seconds_to_acknowledge", "seconds_to_acknowledge", "Page to its acknowledgement (the warm handoff)"),
                ("seconds_to_contact", "seconds_to_contact", "Referral to first contact"),
                ("seconds_from_event_to_page", "seconds_from_event_to_page", "CAD event to the page (CAD's lag)")):
            family = HistogramMetricFamily(f"handoff_lead_{metric}", what, labels=["site"])
            by_site: dict[str, list[float]] = {}
            for view in self.model.views.values():
                value = getattr(view, measure)()
                if value is not None:
                    by_site.setdefault(view.site_id, []).append(value)
            for site, values in by_site.items():
                buckets = [(str(b), sum(v <= b for v in values)) for b in HANDOFF_BUCKETS] + [("+Inf", len(values))]
                family.add_metric([site], buckets, sum(values))
            yield family
