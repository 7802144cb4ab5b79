"""The import rules of the architecture, as import-linter contracts in pyproject.toml: the three
services are peers (none imports another), and their domains import no Kafka, Faust, HTTP or
web code. A change that breaks one fails here, naming the import."""

from __future__ import annotations

import os

from importlinter.cli import lint_imports

from services.platform.settings import REPO_ROOT


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


def test_no_module_of_services_imports_itself_round_a_cycle() -> None:
    import grimp

    graph = grimp.build_graph("services")
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    cycles, index, low, stack, counter = [], {}, {}, [], iter(range(10**6))

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = next(counter)
        stack.append(module)
        for imported in imports[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    assert cycles == []
