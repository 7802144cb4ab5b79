"""HTML from Jinja2 templates, autoescaped, over one base layout (``templates/base.html``).

Every page people see goes through here: the console, the acknowledgement links, the printable
report. A value in a template is text unless its producer marked it as HTML (a rendered fragment
is ``Markup``), so a name, a narrative or a school typed by someone else can never become markup.
Each service keeps its own templates beside its entrypoints and finds the shared ones (the layout,
the macros, the charts) after its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from services.kernel.events import ERASED

SHARED = "services.web"

# Every page that can show a person (console, acknowledgement links): never cached (a shared phone, a
# proxy), never framed (clickjacking the Acknowledge button), no referrer (the link is the credential).
PRIVATE_PAGE_HEADERS = {
    "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; frame-ancestors 'none'"}


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def words(value: Any) -> str:
    """A symbol as words: ``in_progress`` -> ``in progress``."""
    return str(getattr(value, "value", value)).replace("_", " ")


def personal(value: Any) -> Any:
    """A personal value as shown: "erased" once its subject's key is destroyed (it reads back as None)."""
    return ERASED if value is None else value


@cache
def environment(package: str = SHARED) -> Environment:
    """The templates of ``package`` (its ``templates/`` folder), then the shared ones."""
    loaders = [PackageLoader(package, "templates")] if package != SHARED else []
    env = Environment(loader=ChoiceLoader([*loaders, PackageLoader(SHARED, "templates")]), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(percent=percent, words=words, personal=personal)
    macros = env.get_template("macros.html").module
    env.globals.update(csrf_field=macros.csrf_field, post_button=macros.post_button)  # type: ignore[attr-defined]
    return env


def fragment(template: str, package: str = SHARED, **context: Any) -> Markup:
    """A part of a page (a chart, a notice, the handoff details), safe to place in another template."""
    return Markup(environment(package).get_template(template).render(**context))


def render_page(template: str, *, title: str, package: str = SHARED, viewer: Any = None,
                nav: Iterable[tuple[str, str]] = (), narrow: bool = False, status: int = 200,
                headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """A whole page: ``template`` extends the base layout; ``viewer`` and ``nav`` fill the header, and a
    ``narrow`` page (a link opened on a phone) is one column of large buttons."""
    html = environment(package).get_template(template).render(title=title, viewer=viewer, nav=list(nav),
                                                              narrow=narrow, **context)
    return HTMLResponse(html, status_code=status, headers={**PRIVATE_PAGE_HEADERS, **(headers or {})})
