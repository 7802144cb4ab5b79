"""Every HTML page comes from an autoescaped Jinja2 template over the one base layout."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from services.web.render import environment, fragment, render_page

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PACKAGES = {"services.web": ROOT / "services/web/templates"} | {
    f"services.{name}.entrypoints": ROOT / f"services/{name}/entrypoints/templates"
    for name in ("referral_intake", "notifier", "handle_with_care")}


def _templates() -> list[tuple[str, str, Path]]:
    return [(package, path.relative_to(folder).as_posix(), path) for package, folder in TEMPLATE_PACKAGES.items()
            for path in sorted(folder.rglob("*")) if path.is_file()]


@pytest.mark.parametrize(("package", "name", "path"), _templates(), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_every_template_compiles_and_every_page_extends_the_one_layout(package, name, path) -> None:
    environment(package).get_template(name)
    text = path.read_text()
    if "{% extends" in text:
        assert '{% extends "base.html" %}' in text
    else:  # a part, placed in a page: only the layout is a whole document
        assert "<html" not in text or name == "base.html"


def test_templates_ship_in_the_wheel() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, name, _ in _templates():
        patterns = package_data.get(package, [])
        assert any(fnmatch(f"templates/{name}", pattern) for pattern in patterns), f"{package}: templates/{name}"


def test_values_are_text_never_markup() -> None:
    hostile = '<img src=x onerror="alert(1)">'
    page = render_page("message.html", title=hostile, paragraphs=[hostile], alert=True, back=None).body.decode()
    assert hostile not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page
    # A rendered part is markup once, and only once: it is not escaped again where it is placed.
    part = fragment("handoff.html", page=None, paged="")
    assert "<p class=\"muted\">" in render_page("ack.html", title="t", said=None, details=part, question=None,
                                                 next_steps="").body.decode()


def test_every_page_has_the_layout_and_the_private_headers() -> None:
    response = render_page("message.html", title="Link not valid", narrow=True, status=410, paragraphs=["x"],
                           alert=False, back=None)
    body = response.body.decode()
    assert response.status_code == 410 and response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert '<a class="skip" href="#main">' in body and "<title>Link not valid · Handoff</title>" in body
    assert '<body class="narrow">' in body
