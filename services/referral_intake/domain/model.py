"""Pure referral rules: no Kafka, no HTTP, no clock of its own (``now`` is passed in)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta

from services.kernel.cad import CadReferralMade
from services.kernel.clock import EventTimeWindow
from services.kernel.errors import Rejected
from services.kernel.events import (
    Consent,
)
from services.kernel.lead import ReferralCreated
from services.kernel.reference import Agency, Site

REFERRAL_NAMESPACE = uuid.UUID("6f1c2b1e-58b4-4d8e-9a57-2f3c4d5e6a70")


def referral_id_for(site_id: str, agency_id: str, cad_event_id: str) -> str:
    """Deterministic: a retried POST or a replayed CAD record maps to the same referral."""
    return str(uuid.uuid5(REFERRAL_NAMESPACE, f"{site_id}/{agency_id}/{cad_event_id}"))


# Fields added to CadReferralMade after referrals were fingerprinted: left out while unset, so a CAD
# system's retry of an older referral still matches its fingerprint.
_LATER_FIELDS = frozenset({"charges_held_until", "incident_id"})


def cad_fingerprint(cad: CadReferralMade) -> str:
    """What a CAD event said, as a hash: the same ``cad_event_id`` with another body is not a retry."""
    unset = {name for name in _LATER_FIELDS if getattr(cad, name) is None}
    return hashlib.sha256(cad.model_dump_json(exclude=unset).encode()).hexdigest()


# What may change when CAD updates a call (the person moved, the incident's time was revised): the
# same referral, told to its case manager, not a new one and not a conflict.
_UPDATABLE_FIELDS = frozenset({"location", "occurred_at", "submitted_by"})


def subject_fingerprint(cad: CadReferralMade) -> str:
    """What a CAD event says about who and why, without what an update may change."""
    unset = {name for name in _LATER_FIELDS if getattr(cad, name) is None}
    return hashlib.sha256(cad.model_dump_json(exclude=unset | _UPDATABLE_FIELDS).encode()).hexdigest()


def intake_due_at(referred_at: datetime, site: Site) -> datetime:
    """End of the site-local day ``intake_deadline_days`` after the referral (e.g. 7 days for Santa Fe)."""
    local = referred_at.astimezone(site.zone)
    due_day = local.date() + timedelta(days=site.intake_deadline_days + 1)
    return datetime(due_day.year, due_day.month, due_day.day, tzinfo=site.zone) - timedelta(microseconds=1)


def check_agency_may_refer(agency: Agency | None, site_id: str) -> None:
    if agency is None:
        raise Rejected("agency_id", "unknown agency")
    if site_id not in agency.sites:
        raise Rejected("site_id", f"agency {agency.agency_id!r} may not submit for site {site_id!r}")


def check_referral(cad: CadReferralMade, site: Site | None, agency: Agency | None, now: datetime,
                   window: EventTimeWindow = EventTimeWindow()) -> Site:
    """The site that takes this referral, or ``Rejected`` naming the field and reason. The one rule
    for the HTTP intake (which answers at once) and the worker (which sees Kafka's records too)."""
    if site is None:
        raise Rejected("site_id", f"unknown site {cad.site_id!r}")
    check_agency_may_refer(agency, cad.site_id)
    if cad.referral_type not in site.accepted_referral_types:
        raise Rejected("referral_type", f"site {site.site_id!r} does not accept {cad.referral_type.value} referrals")
    window.check("occurred_at", cad.occurred_at, now)
    return site


def open_referral(cad: CadReferralMade, site: Site | None, agency: Agency | None, now: datetime,
                  window: EventTimeWindow = EventTimeWindow()) -> ReferralCreated:
    """A referral opened from a CAD event, or ``Rejected`` naming the field and reason."""
    site = check_referral(cad, site, agency, now, window)
    return ReferralCreated(
        referral_id=referral_id_for(cad.site_id, cad.agency_id, cad.cad_event_id), cad_event_id=cad.cad_event_id,
        agency_id=cad.agency_id, site_id=cad.site_id, referral_type=cad.referral_type, referred_at=cad.occurred_at,
        created_at=now, intake_due_at=intake_due_at(cad.occurred_at, site), officer=cad.officer, person=cad.person,
        location=cad.location, cad_fingerprint=cad_fingerprint(cad), legal_deadline=cad.charges_held_until,
        incident_id=cad.incident_id, late=now - cad.occurred_at > timedelta(minutes=site.warm_handoff_window_minutes),
        consent=cad.consent or Consent(recipient_roles=sorted(site.default_consent_roles, key=lambda r: r.value)))
