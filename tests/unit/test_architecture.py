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
