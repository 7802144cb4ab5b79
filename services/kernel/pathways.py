"""The deflection pathways a site runs, each described the same way: its clock, who is paged, its
milestones, its funnel and the funnel's target. Each service describes its own pathway from the site's
settings (``sites.toml``), so a program manager sees what each pathway promises, and reports its figures
in one shape (``PathwayFigures``) that the dashboard and the monthly report show side by side.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pathway:
    """What one pathway of a site promises, in words a program manager reads."""

    key: str  # the referral type, "quick_response" or "self_referral"
    title: str
    clock: str
    paged: str
    milestones: tuple[str, ...]
    funnel: tuple[str, ...]
    target: str


@dataclass(frozen=True)
class PathwayFigures:
    """One pathway's funnel for a period, and how it stands against its own target."""

    pathway: str
    title: str
    period: str
    stages: tuple[tuple[str, int], ...]
    target_label: str  # e.g. "contacted / follow-ups"
    target: float
    rate: float | None  # None: nothing to measure yet

    @property
    def meets_target(self) -> bool | None:
        return None if self.rate is None else self.rate >= self.target


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
