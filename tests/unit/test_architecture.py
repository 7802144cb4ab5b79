"""The import rules of the architecture, as import-linter contracts in pyproject.toml: the three
services are peers (none imports another), and their domains import no Kafka, Faust, HTTP or
web code. A change that breaks one fails here, naming the import."""

from __future__ import annotations

import os

from importlinter.cli import lint_imports

from services.core.settings import REPO_ROOT


def test_the_import_contracts_hold() -> None:
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)  # import-linter reads pyproject.toml from the working directory
    try:
        assert lint_imports(config_filename=str(REPO_ROOT / "pyproject.toml"), no_cache=True) == 0
    finally:
        os.chdir(cwd)


def test_every_rule_the_architecture_document_names_exists_where_it_says() -> None:
    import importlib
    import re

    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    named = re.findall(r"`(services(?:\.\w+)+):(\w+)`", text)
    assert len(named) >= 25
    missing = []
    for module, symbol in named:
        if not hasattr(importlib.import_module(module), symbol):
            missing.append(f"{module}:{symbol}")
    assert missing == []
