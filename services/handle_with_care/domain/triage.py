"""A child with no known school, as the triage desk keeps it until placed: ids, times and the reason only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TriageItem:
    district_id: str | None
    due_at: datetime | None  # the earliest deadline among the district's schools (None: not known)
    reason: str | None = None
    resolved: bool = False
    reminded: bool = False
    correlation_id: str | None = None

    def remind_at(self, lead: timedelta) -> datetime | None:
        """When the coordinator is reminded (None: never, it is placed or was reminded)."""
        if self.resolved or self.reminded or self.due_at is None:
            return None
        return self.due_at - lead
