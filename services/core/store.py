"""Key-value state behind the service layer: a Faust table in workers, a dict in unit tests.

Faust tables are dict-like and backed by a changelog topic, so the service code is the same
either way; values are JSON-able dicts so that the changelog is readable.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

KeyValueStore = MutableMapping[str, Any]
