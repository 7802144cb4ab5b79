"""The Avro contract, generated from the wire events (``services.kernel.events``): one source of truth.

pydantic-avro turns each model's JSON schema into Avro (types, unions, nested records and enums,
``timestamp-millis`` where the model says ``avro_type``); this module completes what it leaves out
(the namespace, the docs and enum defaults of named types, and the PII tag of each field the model marks
``PERSONAL``) and orders keys as people read them.
The codec encodes and decodes with these schemas; ``schemas/*.avsc`` are the same schemas written out
for other systems (``python -m services.messaging.contract`` rewrites them, ``--check`` compares), and
``tests/unit/test_schemas.py`` keeps the files equal to the models and BACKWARD compatible with every
committed version of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from pydantic_avro.to_avro.types import AvroTypeConverter

from services.kernel.events import PII_TAG, Event

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"  # in a checkout; the runtime never reads it

_RECORD_KEYS = ("type", "name", "namespace", "doc", "symbols", "default", "fields", "items", "values")
_FIELD_KEYS = ("name", "type", "default", "doc", "confluent:tags")


def _doc(text: str | None) -> str | None:
    # Docstrings wrap at the source's line length; a schema's doc is one paragraph.
    return " ".join(text.split()) if text else None


@cache
def avro_schema_of(cls: type[Event]) -> dict[str, Any]:
    """The Avro schema of a wire event, as a JSON-ready dict."""
    json_schema = cls.model_json_schema(mode="serialization")
    named = {d.get("title", key): d for key, d in json_schema.get("$defs", {}).items()}
    named[cls.__name__] = json_schema
    fields = AvroTypeConverter(json_schema).fields_to_avro_dicts(json_schema)
    schema = {"type": "record", "name": cls.__name__, "namespace": cls.avro_namespace,
              "doc": _doc(json_schema.get("description")), "fields": fields}
    return _complete(schema, named)


def _complete(node: Any, named: dict[str, dict[str, Any]]) -> Any:
    """Docs and enum defaults on named types, PII tags on personal fields, keys in reading order, no empty docs."""
    if isinstance(node, list):
        return [_complete(n, named) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") in ("record", "enum"):
        definition = named.get(node["name"], {})
        node.setdefault("doc", _doc(definition.get("description")))
        if "avro_default" in definition:
            node["default"] = definition["avro_default"]
        node = {k: _complete(node[k], named) for k in _RECORD_KEYS if k in node and node[k] is not None}
        if "fields" in node:
            properties = definition.get("properties", {})
            node["fields"] = [_field(f, properties.get(f["name"], {})) for f in node["fields"]]
        return node
    if set(node) == {"type"} and isinstance(node["type"], str):
        return node["type"]  # {"type": "string"} is "string"
    return {k: _complete(v, named) for k, v in node.items()}


def _is_leaf(avro_type: Any) -> bool:
    """A personal value sealed whole: text, or a date."""
    return avro_type == "string" or (isinstance(avro_type, dict) and avro_type.get("logicalType") == "date")


def sealable(avro_type: Any) -> Any:
    """A personal leaf's type with ``bytes`` beside it, for its sealed form. The plain type stays first: a record
    written before (or by a CAD system, in plain text) resolves to it, and Avro reads it as it always did."""
    if _is_leaf(avro_type):
        return [avro_type, "bytes"]
    if isinstance(avro_type, list) and len(avro_type) == 2 and "null" in avro_type:
        [plain] = [t for t in avro_type if t != "null"]
        if _is_leaf(plain):
            return ["null", plain, "bytes"]
    return avro_type


def _field(field: dict[str, Any], model_field: dict[str, Any]) -> dict[str, Any]:
    union = field["type"]
    if isinstance(union, list) and "null" in union and field.get("default") is None:
        field["type"] = ["null", *(t for t in union if t != "null")]  # a union without a default reads null first
    if model_field.get("personal"):
        field["confluent:tags"] = [PII_TAG]
        field["type"] = sealable(field["type"])
    if field.get("doc"):
        field["doc"] = _doc(field["doc"])
    return {k: field[k] for k in _FIELD_KEYS if k in field and (k != "doc" or field[k])}


@cache
def parsed_schema(cls: type[Event]) -> Any:
    """The schema of ``cls`` parsed by fastavro, for the codec's hot path."""
    return fastavro.parse_schema(avro_schema_of(cls))


def schema_text(cls: type[Event]) -> str:
    """The ``.avsc`` file's text: the schema, indented, with a final newline."""
    return json.dumps(avro_schema_of(cls), indent=2, ensure_ascii=False) + "\n"


def schema_path(cls: type[Event]) -> Path:
    return SCHEMA_DIR / f"{cls.avro_schema}.avsc"


def schema_files() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("*.avsc"))


def stale_schema_files(events: Iterable[type[Event]]) -> list[str]:
    """The files in ``schemas/`` that differ from ``events``' models (every event: the composition root's
    ``services.runtime.EVENTS``), or are missing, or name no event."""
    expected = {schema_path(cls): schema_text(cls) for cls in events}
    stale = [p.name for p, text in expected.items() if not p.exists() or p.read_text() != text]
    return stale + [p.name for p in schema_files() if p not in expected]


def backward_incompatibilities(new_schema: dict[str, Any], old_schema: dict[str, Any]) -> list[str]:
    """Why data written with ``old_schema`` could not be read with ``new_schema`` (empty: BACKWARD compatible).

    Uses the Apache ``avro`` package's checker, the same rules a registry applies.
    """
    import avro.schema
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

    result = ReaderWriterCompatibilityChecker().get_compatibility(
        reader=avro.schema.parse(json.dumps(new_schema)), writer=avro.schema.parse(json.dumps(old_schema)))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    return [f"{'/'.join(loc) or '/'}: {msg}" for loc, msg in zip(result.locations, result.messages, strict=False)] or ["incompatible"]


def main(argv: list[str], events: Iterable[type[Event]]) -> int:
    """``handoff schemas write [--check]``: write ``schemas/`` from ``events``' models, or check it."""
    events = tuple(events)
    if "--check" in argv:
        stale = stale_schema_files(events)
        for name in stale:
            print(f"schemas/{name} differs from the models: run handoff schemas write")
        return 1 if stale else 0
    for path in schema_files():
        path.unlink()
    for cls in events:
        schema_path(cls).write_text(schema_text(cls))
    print(f"wrote {len(events)} schemas to {SCHEMA_DIR}")
    return 0
