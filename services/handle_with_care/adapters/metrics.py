"""Prometheus figures for Handle With Care, computed from the read model at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.handle_with_care.domain.figures import HwcReadModel

MEASURES = ("notices", "delivered", "on_time", "acknowledged", "escalated", "unresolved")


class HwcCollector(Collector):
    def __init__(self, model: HwcReadModel, now: Callable[[], datetime]) -> None:
        self.model = model
        self.now = now

    def collect(self) -> Iterator:
        families = {m: GaugeMetricFamily(f"handoff_hwc_{m}", f"Handle With Care notices: {m}", labels=["district"])
                    for m in MEASURES}
        totals: dict[str, dict[str, int]] = {}
        for row in self.model.figures(self.now()):
            t = totals.setdefault(row.district_id, dict.fromkeys(MEASURES, 0))
            for m in MEASURES:
                t[m] += getattr(row, m)
        for district, t in totals.items():
            for m, family in families.items():
                family.add_metric([district], t[m])
        yield from families.values()
        triage = GaugeMetricFamily("handoff_hwc_triage_open", "Encounters waiting for a school", labels=["district"])
        open_by: dict[str, int] = {}
        for item in self.model.triage.values():
            if item.resolved is None:
                key = item.opened.district_id or "unknown"
                open_by[key] = open_by.get(key, 0) + 1
        for district, count in open_by.items():
            triage.add_metric([district], count)
        yield triage
