"""LEAD's referral routes (arrest diversion, social contact, community, officer intervention, officer
prevention) as pathways of a site: one per accepted referral type, sharing the site's on-call rotation,
intake deadline and the 60% / 75% targets."""

from __future__ import annotations

from services.kernel.events import Milestone, ReferralType
from services.kernel.pathways import Pathway
from services.kernel.reference import Site

ENROLLMENT_TARGET = 0.60  # domain brief: enrollment under 60% of referrals is a known failure
ENGAGEMENT_TARGET = 0.75  # ... and engagement under 75% of enrollees

LEAD_TITLES = {ReferralType.arrest_diversion: "LEAD: arrest diversion", ReferralType.social_contact: "LEAD: social contact",
               ReferralType.community: "LEAD: community referral",
               ReferralType.officer_intervention: "Officer intervention (charges held)",
               ReferralType.officer_prevention: "Officer prevention (no charges)"}


def lead_pathways(site: Site) -> list[Pathway]:
    """The LEAD routes the site accepts, in the order of ``ReferralType``."""
    milestones = tuple(m.value for m in Milestone if m is not Milestone.paged)
    extra = {ReferralType.officer_intervention: f"; the legal deadline warned {site.legal_warning_days} days before"}
    return [Pathway(t.value, LEAD_TITLES[t], f"intake within {site.intake_deadline_days} days{extra.get(t, '')}",
                    "the on-call case manager, then the escalation policy", milestones,
                    ("referrals", "contacted", "enrolled", "engaged"),
                    f"enrolled {ENROLLMENT_TARGET:.0%} of referrals, engaged {ENGAGEMENT_TARGET:.0%} of enrolled")
            for t in ReferralType if t in site.accepted_referral_types]
