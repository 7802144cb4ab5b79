"""The public-health feed carries nothing that names or places the person: this test fails on any
name, date of birth, phone, exact address, free text, precise coordinates or minute-precise time."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from services.quick_response.domain.deidentify import deidentify, report_id_for
from tests.factories import overdose

PERSONAL = ("Bartholomew", "Quackenbush", "1994-03-17", "1994", "+15055550177", "4400", "Central", "Room 12",
            "motel", "od-7")


def test_the_report_names_nobody_and_places_no_one_precisely() -> None:
    event = overdose("od-7", occurred_at=datetime(2026, 11, 20, 15, 47, 31, tzinfo=UTC))
    report = deidentify(event, b"key")
    text = json.dumps(report.model_dump(mode="json"))
    for value in PERSONAL:
        assert value not in text, value
    assert report.hour == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # to the hour: no minutes, no seconds
    assert not re.search(r"T\d\d:(?!00:00)\d\d", text)
    assert (report.latitude, report.longitude) == (35.08, -106.65)  # about a kilometre
    assert set(report.model_dump()) == {"report_id", "site_id", "hour", "latitude", "longitude", "fatal",
                                        "naloxone_given", "naloxone_doses", "suspected_substance", "drug_type", "age_range", "sex",
                                        "prior_overdose"}


def test_a_report_id_is_stable_but_cannot_be_matched_without_the_key() -> None:
    assert report_id_for("od-7", b"key") == report_id_for("od-7", b"key")
    assert report_id_for("od-7", b"key") != report_id_for("od-7", b"other key")


def test_the_public_report_cannot_be_matched_to_the_state_report_of_the_same_overdose() -> None:
    from services.quick_response.domain.state_report import state_row

    event = overdose("EMS-1")
    public, state = deidentify(event, b"key"), state_row(event, b"key")
    assert public.report_id != state.report_id and public.report_id.startswith("od-")
