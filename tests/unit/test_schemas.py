"""The Avro schemas are the wire contract, generated from the event models: the committed files are
exactly what the models generate, every event round-trips, and no change breaks data written before."""

from __future__ import annotations

import io
import json
import subprocess

import fastavro
import pytest

from services.kernel.lead import PageAcknowledged
from services.messaging.avro import to_avro_datum
from services.messaging.contract import (
    SCHEMA_DIR,
    avro_schema_of,
    backward_incompatibilities,
    parsed_schema,
    schema_files,
    schema_path,
    stale_schema_files,
)
from services.runtime import EVENTS as ALL_EVENTS  # every service's events, as the composition root knows them
from tests.factories import one_of_each

SAMPLES = {type(e): e for e in one_of_each()}


def test_every_event_has_a_sample_and_a_schema_file() -> None:
    assert set(SAMPLES) == set(ALL_EVENTS)
    assert {p.stem for p in schema_files()} == {cls.avro_schema for cls in ALL_EVENTS}


def test_committed_schema_files_are_what_the_models_generate() -> None:
    # Edit the model in services/kernel/events.py, then: python -m services.messaging.contract
    assert stale_schema_files(ALL_EVENTS) == []


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_generated_schema_is_valid_avro_named_after_the_event(cls) -> None:
    schema = avro_schema_of(cls)
    fastavro.parse_schema(schema)
    assert f"{schema['namespace']}.{schema['name']}" == cls.avro_name()
    assert json.loads(schema_path(cls).read_text()) == schema


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_schema_has_namespace_and_docs(cls) -> None:
    schema = avro_schema_of(cls)
    assert schema["namespace"].startswith("org.handoff.")
    assert schema["doc"]
    assert all(f.get("doc") for f in schema["fields"]), "every field is documented"


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_model_round_trips_through_its_schema(cls) -> None:
    event = SAMPLES[cls]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(cls), to_avro_datum(event))
    buf.seek(0)
    decoded = cls.model_validate(fastavro.schemaless_reader(buf, parsed_schema(cls)))
    assert decoded == event


def test_timestamps_are_milliseconds_and_counts_are_int() -> None:
    fields = {f["name"]: f["type"] for f in avro_schema_of(PageAcknowledged)["fields"]}
    assert fields["acknowledged_at"] == {"type": "long", "logicalType": "timestamp-millis"}
    sent = {f["name"]: f["type"] for f in avro_schema_of(next(c for c in ALL_EVENTS if c.__name__ == "PageSent"))["fields"]}
    assert sent["attempt"] == "int" and sent["error"] == ["null", "string"]


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


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=lambda c: c.__name__)
def test_generated_schema_is_backward_compatible_with_every_committed_version(cls) -> None:
    versions = _committed_versions(schema_path(cls))
    for old in versions:
        assert backward_incompatibilities(avro_schema_of(cls), old) == []


def test_committed_versions_are_found() -> None:
    # Guards the test above against passing vacuously: in a checkout, every schema has a history.
    if (SCHEMA_DIR.parent / ".git").exists():
        assert all(_committed_versions(schema_path(cls)) for cls in ALL_EVENTS)


def test_checker_catches_an_incompatible_change() -> None:
    old = avro_schema_of(PageAcknowledged)
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "site_id", "type": "string", "doc": "added without a default"})
    assert backward_incompatibilities(new, old)
    new["fields"][-1]["type"] = ["null", "string"]
    new["fields"][-1]["default"] = None
    assert backward_incompatibilities(new, old) == []
