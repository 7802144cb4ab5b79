"""The deflection pathways a site runs, each described the same way: its clock, who is paged, its
milestones, its funnel and the funnel's target. Read from the site's settings (``sites.toml``), so a
program manager sees what each pathway promises, and each service reports its figures in one shape
(``PathwayFigures``) that the dashboard and the monthly report show side by side.

LEAD's referral routes (arrest diversion, social contact, community, officer intervention, officer
prevention) are pathways of the same kind: one per accepted referral type, sharing the site's
on-call rotation, intake deadline and the 60% / 75% targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.kernel.events import AttemptOutcome, Milestone, ReferralType, WalkInMilestone
from services.kernel.reference import Site

ENROLLMENT_TARGET = 0.60  # domain brief: enrollment under 60% of referrals is a known failure
ENGAGEMENT_TARGET = 0.75  # ... and engagement under 75% of enrollees

LEAD_TITLES = {ReferralType.arrest_diversion: "LEAD: arrest diversion", ReferralType.social_contact: "LEAD: social contact",
               ReferralType.community: "LEAD: community referral",
               ReferralType.officer_intervention: "Officer intervention (charges held)",
               ReferralType.officer_prevention: "Officer prevention (no charges)"}


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


def pathways_of(site: Site) -> list[Pathway]:
    """Every pathway the site runs, LEAD's routes first."""
    lead_milestones = tuple(m.value for m in Milestone if m is not Milestone.paged)
    extra = {ReferralType.officer_intervention: f"; the legal deadline warned {site.legal_warning_days} days before"}
    runs = [Pathway(t.value, LEAD_TITLES[t], f"intake within {site.intake_deadline_days} days{extra.get(t, '')}",
                    "the on-call case manager, then the escalation policy", lead_milestones,
                    ("referrals", "contacted", "enrolled", "engaged"),
                    f"enrolled {ENROLLMENT_TARGET:.0%} of referrals, engaged {ENGAGEMENT_TARGET:.0%} of enrolled")
            for t in ReferralType if t in site.accepted_referral_types]
    if (qrt := site.quick_response) is not None:
        runs.append(Pathway(
            "quick_response", "Quick Response Team (naloxone plus)",
            f"follow-up within {qrt.follow_up_hours} hours of the overdose",
            f"the team's list; team leads warned {qrt.warn_before_hours:g} hours before the window closes",
            tuple(o.value for o in AttemptOutcome if o is not AttemptOutcome.other),
            ("overdose calls", "follow-ups", "contacted", "engaged", "referred to treatment"),
            f"contacted {qrt.contact_target:.0%} of follow-ups"))
    if (angel := site.self_referral) is not None:
        runs.append(Pathway(
            "self_referral", "Self-referral (volunteer pool)",
            f"a volunteer accepts within {angel.accept_within_minutes:g} minutes; placement within "
            f"{angel.placement_target_hours:g} hours",
            f"the {angel.page_at_once} nearest available volunteers, then the coordinators",
            tuple(m.value for m in WalkInMilestone), ("walk-ins", "accepted", "volunteer on scene", "placed"),
            f"placed within {angel.placement_target_hours:g} hours: {angel.placement_target:.0%} of walk-ins"))
    return runs
