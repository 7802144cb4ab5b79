"""The Avro schema files (``schemas/*.avsc``, the wire contract) as data: read, named, listed.

Apart from the codec (``services.messaging.avro``) so that the wire events can name their schema without
importing Avro, HTTP or the registry client: the events, and the domains that use them, stay free
of I/O libraries, and the two modules no longer import each other.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from services.kernel.settings import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / "schemas"


@cache
def load_schema(stem: str) -> dict[str, Any]:
    """The raw JSON of ``schemas/<stem>.avsc``."""
    return json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text())


def schema_full_name(stem: str) -> str:
    schema = load_schema(stem)
    return f"{schema['namespace']}.{schema['name']}" if "namespace" in schema else schema["name"]


def schema_files() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("*.avsc"))

