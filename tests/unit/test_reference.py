"""Reference data: one validated path from files or from the reference topic's records."""

from __future__ import annotations

import json
from datetime import date

import pytest

from services.kernel.reference import (
    LiveReference,
    ReferenceDataError,
)
from services.platform.reference_files import RawReference, build_reference_data, read_reference_directory
from services.platform.settings import REPO_ROOT

DIRECTORY = REPO_ROOT / "config" / "local"


def test_records_round_trip_to_the_same_reference_data() -> None:
    raw = read_reference_directory(DIRECTORY)
    replayed = RawReference()
    for section, key, body in raw.records():
        replayed.put(section, key, body)
    assert build_reference_data(replayed) == build_reference_data(raw)


def test_closure_records_and_removal() -> None:
    raw = read_reference_directory(DIRECTORY)
    raw.put("closures", "lincoln-es/2026-11-18",
            json.dumps({"school_id": "lincoln-es", "date": "2026-11-18", "reason": "snow day"}))
    assert build_reference_data(raw).closures == {"lincoln-es": {date(2026, 11, 18): "snow day"}}
    raw.put("closures", "lincoln-es/2026-11-18", None)
    assert build_reference_data(raw).closures == {}


@pytest.mark.parametrize("section, key, body, message", [
    ("closures", "nowhere/2026-11-18", {"school_id": "nowhere", "date": "2026-11-18"}, "unknown school"),
    ("closures", "lincoln-es/x", {"school_id": "lincoln-es", "date": "someday"}, "ISO date"),
    ("sites", "abq", {"name": "x"}, "sites.toml [sites.abq]"),
    ("schools", "lincoln-es", None, "unknown school 'lincoln-es'"),  # a closure-free removal still checks references
])
def test_invalid_updates_are_refused_with_where_and_why(section, key, body, message) -> None:
    raw = read_reference_directory(DIRECTORY)
    if section == "schools":
        raw.put("closures", "lincoln-es/2026-11-18", json.dumps({"school_id": "lincoln-es", "date": "2026-11-18"}))
    raw.put(section, key, None if body is None else json.dumps(body))
    with pytest.raises(ReferenceDataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_reference_data(raw)


def test_live_reference_reads_through_to_the_latest_data() -> None:
    first = build_reference_data(read_reference_directory(DIRECTORY))
    live = LiveReference(first)
    raw = read_reference_directory(DIRECTORY)
    raw.put("closures", "sunrise-dc/2026-12-01", json.dumps({"school_id": "sunrise-dc", "date": "2026-12-01"}))
    live.replace(build_reference_data(raw))
    assert live.closures["sunrise-dc"] == {date(2026, 12, 1): "closed"}
    assert live.site("abq") == first.site("abq")


@pytest.mark.parametrize("section, key, change, message", [
    ("agencies", "apd", {"clients": ["nowhere:cad-apd"]}, "agencies.toml [agencies.apd]: client 'nowhere:cad-apd'"),
    ("organizations", "abq-cm", {"clients": ["keycloak-local"]}, "client 'keycloak-local' is not"),
    ("case_managers", "cm-ana", {"accounts": ["keycloak-local:phone:5550100"]}, "account 'keycloak-local:phone"),
])
def test_accounts_and_machine_clients_name_a_known_identity_provider(section, key, change, message) -> None:
    raw = read_reference_directory(DIRECTORY)
    body = json.loads(dict(((s, k), b) for s, k, b in raw.records())[(section, key)])
    raw.put(section, key, json.dumps({**body, **change}))
    with pytest.raises(ReferenceDataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_reference_data(raw)
