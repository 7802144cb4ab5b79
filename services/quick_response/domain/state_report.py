"""The state's 24-hour overdose report (West Virginia's law asks for it within a day of the response):
date and time, approximate place, whether an antagonist was given, fatal or not, sex and approximate
age, suspected substance and drug class, a known prior overdose. Nothing that names the person: no
name, date of birth, phone, address or free text; the place to three decimals (about 100 metres)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from services.kernel.cad import CadOverdoseResponded
from services.quick_response.domain.deidentify import report_id_for

APPROXIMATE_DECIMALS = 3
REPORT_WITHIN = timedelta(hours=24)


@dataclass(frozen=True)
class StateReportRow:
    report_id: str
    site_id: str
    agency_id: str
    occurred_at: datetime  # to the minute
    report_due_by: datetime
    approximate_latitude: float | None
    approximate_longitude: float | None
    naloxone_given: bool
    naloxone_doses: int
    fatal: bool
    sex: str
    age_range: str
    suspected_substance: str | None
    drug_type: str
    prior_overdose: bool | None

    def as_dict(self) -> dict:
        return asdict(self)


COLUMNS = tuple(StateReportRow.__dataclass_fields__)


def state_row(event: CadOverdoseResponded, key: bytes) -> StateReportRow:
    def approximate(value: float | None) -> float | None:
        return None if value is None else round(value, APPROXIMATE_DECIMALS)

    minute = event.occurred_at.replace(second=0, microsecond=0)
    return StateReportRow(
        report_id_for(event.overdose_event_id, key, "state"), event.site_id, event.agency_id, minute, minute + REPORT_WITHIN,
        approximate(event.latitude), approximate(event.longitude), event.naloxone_given, event.naloxone_doses,
        event.fatal, event.sex.value, event.age_range, event.suspected_substance,
        (event.drug_type.value if event.drug_type else "unknown"), event.prior_overdose)
