"""The overdose report for public-health mapping (ODMAP-style maps, a state dashboard): what the
responders saw, with nothing that names or places the person. No name, date of birth, address,
phone or free text; the time to the hour; the place to two decimals of a degree (about a kilometre)."""

from __future__ import annotations

import hashlib
import hmac

from services.kernel.cad import CadOverdoseResponded
from services.quick_response.events import OverdoseReported

COORDINATE_DECIMALS = 2


def report_id_for(overdose_event_id: str, key: bytes, report: str = "public") -> str:
    """Keyed, so that a CAD event id (which a records clerk can look up) cannot be matched to its report; and
    one id per report, so that the public report cannot be matched to the state's (which has the minute, the
    agency and the place to 100 m) either. The same event always gives the same id: a replay is dropped."""
    prefix = "od-" if report == "public" else f"{report[:2]}-"
    return prefix + hmac.new(key, f"{report}\x1f{overdose_event_id}".encode(), hashlib.sha256).hexdigest()[:24]


def deidentify(event: CadOverdoseResponded, key: bytes) -> OverdoseReported:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, COORDINATE_DECIMALS)

    return OverdoseReported(
        report_id=report_id_for(event.overdose_event_id, key), site_id=event.site_id,
        hour=event.occurred_at.replace(minute=0, second=0, microsecond=0),
        latitude=rounded(event.latitude), longitude=rounded(event.longitude), fatal=event.fatal,
        naloxone_given=event.naloxone_given, naloxone_doses=event.naloxone_doses,
        suspected_substance=event.suspected_substance, drug_type=event.drug_type, age_range=event.age_range, sex=event.sex,
        prior_overdose=event.prior_overdose)
