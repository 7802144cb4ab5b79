"""Handlers registered per event type (cosmicpython's message bus, on Kafka's topics).

A service declares, per topic it follows, which of its methods handles which event type
(``Handlers``); ``dispatch`` calls it. A worker subscribes with a ``Subscription``: the topic, the
service object and its handlers. The same declarations make the system's flow table and its
AsyncAPI document (``services/flows.py``), so "what happens when X" is one table per service, not
``isinstance`` chains, and the docs cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from services.kernel.topics import TopicSpec

# event type -> the name of the method that handles it ("part.method": a method of one of the owner's parts, a use
# case of its own); None: accepted on the topic, nothing to do
Handlers = Mapping[type, str | None]


async def dispatch(owner: Any, handlers: Handlers, event: Any) -> Any:
    name = handlers.get(type(event))
    return await attrgetter(name)(owner)(event) if name else None


def fold(owner: Any, handlers: Handlers, event: Any) -> Any:
    """``dispatch`` for a read model: its fold of each event type is a plain method, named in ``handlers``."""
    name = handlers.get(type(event))
    return attrgetter(name)(owner)(event) if name else None


@dataclass(frozen=True)
class Subscription:
    """A service's worker follows ``topic``: each event type there goes to ``owner``'s handler."""

    topic: TopicSpec
    owner: str  # the service object's name in its worker (e.g. "notifier", "tracker")
    handlers: Handlers
    name: str | None = None  # the agent's name, when one worker follows a topic twice

    @property
    def event_types(self) -> tuple[type, ...]:
        return tuple(self.handlers)
