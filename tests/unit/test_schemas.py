"""The Avro schemas are the wire contract: every event round-trips, and no change breaks old data."""

from __future__ import annotations

import io
import json
import subprocess

import fastavro
import pytest

from services.kernel.events import ALL_EVENTS
from services.messaging.avro import (
    SCHEMA_DIR,
    backward_incompatibilities,
    load_schema,
    parsed_schema,
    schema_files,
    to_avro_datum,
)
from tests.factories import one_of_each

SAMPLES = {type(e): e for e in one_of_each()}


def test_every_event_has_a_sample_and_a_schema_file() -> None:
    assert set(SAMPLES) == set(ALL_EVENTS)
    assert {p.stem for p in schema_files()} == {cls.avro_schema for cls in ALL_EVENTS}


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_schema_has_namespace_and_docs(cls) -> None:
    schema = load_schema(cls.avro_schema)
    assert schema["namespace"].startswith("org.handoff.")
    assert schema["doc"]
    assert all(f.get("doc") for f in schema["fields"]), "every field is documented"


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_model_round_trips_through_its_schema(cls) -> None:
    event = SAMPLES[cls]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(cls.avro_schema), to_avro_datum(event))
    buf.seek(0)
    decoded = cls.model_validate(fastavro.schemaless_reader(buf, parsed_schema(cls.avro_schema)))
    assert decoded == event


def _avro_fields(schema) -> dict:
    return {f["name"]: f["type"] for f in schema["fields"]}


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_model_and_schema_name_the_same_fields(cls) -> None:
    assert set(cls.model_fields) == set(_avro_fields(load_schema(cls.avro_schema)))


def _committed_versions(path) -> list[dict]:
    """Every earlier committed version of a schema file (empty outside a git checkout)."""
    try:
        shas = subprocess.run(["git", "log", "--format=%H", "--", str(path)], cwd=SCHEMA_DIR, capture_output=True,
                              text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return []
    rel = path.relative_to(SCHEMA_DIR.parent).as_posix()
    return [json.loads(subprocess.run(["git", "show", f"{sha}:{rel}"], cwd=SCHEMA_DIR, capture_output=True, text=True,
                                      check=True).stdout) for sha in shas]


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: p.stem)
def test_schema_is_backward_compatible_with_every_committed_version(path) -> None:
    current = json.loads(path.read_text())
    for old in _committed_versions(path):
        assert backward_incompatibilities(current, old) == []


def test_checker_catches_an_incompatible_change() -> None:
    old = load_schema("page_acknowledged")
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "site_id", "type": "string", "doc": "added without a default"})
    assert backward_incompatibilities(new, old)
    new["fields"][-1]["type"] = ["null", "string"]
    new["fields"][-1]["default"] = None
    assert backward_incompatibilities(new, old) == []
