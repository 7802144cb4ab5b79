"""The code's shape, checked: no function in services/ more complex than radon's rank C (cyclomatic
complexity above 20): a function that branches more than that is one a reader cannot hold in mind."""

from __future__ import annotations

from radon.complexity import cc_rank, cc_visit

from services.platform.settings import REPO_ROOT


def _blocks(blocks):
    """Functions, methods and the functions nested in them, as ``radon cc`` lists them."""
    for block in blocks:
        yield block
        yield from _blocks(getattr(block, "methods", ()))
        yield from _blocks(getattr(block, "closures", ()))


def test_no_function_is_more_complex_than_rank_c() -> None:
    files = sorted((REPO_ROOT / "services").rglob("*.py"))
    blocks = [(path, block) for path in files for block in _blocks(cc_visit(path.read_text()))]
    too_complex = [f"{path.relative_to(REPO_ROOT)}:{block.lineno} {block.fullname} ({cc_rank(block.complexity)}, "
                   f"{block.complexity})" for path, block in blocks if cc_rank(block.complexity) not in "ABC"]
    assert len(blocks) > 1000 and too_complex == []
