"""What HTTP routes depend on, as FastAPI dependencies: routers are module-level ``APIRouter``s whose routes
take these ``Annotated`` parameters, never closures over a ``create_router``'s arguments.

The composition root (``services.runtime.build_http_app``) puts each shared object on ``app.state`` once;
a dependency reads it per request, so live reference data is always current, and a test that builds the app
with its own clock, publisher or reference data has every route use them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from services.kernel.clock import Clock, EventTimeWindow
from services.kernel.reference import ReferenceData
from services.messaging.kafka import Publisher


def app_state(name: str) -> Callable[[Request], Any]:
    """A dependency: ``request.app.state.<name>``, as the composition root set it."""

    def from_app(request: Request) -> Any:
        return getattr(request.app.state, name)

    from_app.__name__ = f"app_{name}"
    return from_app


@dataclass(frozen=True)
class IntakeLimits:
    """How long a request may wait for the event backbone before it is answered 503, and the window an event's
    own time must fall in (an outside system's clock, or a typo, must not reorder a person's history)."""

    publish_timeout_seconds: float = 5.0
    window: EventTimeWindow = EventTimeWindow()


Reference = Annotated[ReferenceData, Depends(app_state("reference"))]
AppClock = Annotated[Clock, Depends(app_state("clock"))]
Events = Annotated[Publisher, Depends(app_state("publisher"))]
Limits = Annotated[IntakeLimits, Depends(app_state("limits"))]
# () -> True once every read model has what was written before the call (False after a bounded wait): a page
# that confirms an action shows its effect, by reading its own write, never by hoping.
#: ``await shown(TOPIC, ...)``: the read models that follow what a route just wrote have it (read your own write).
CaughtUp = Annotated[Callable[..., Awaitable[bool]], Depends(app_state("caught_up"))]
