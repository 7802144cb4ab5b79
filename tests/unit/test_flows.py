"""The declared flows are the system: every event has a topic and a reader, every handler exists,
and the AsyncAPI document and the architecture's flow table say what the code does."""

from __future__ import annotations

import re

from services.cad_gateway.service import FeedWatch
from services.flows import ASYNCAPI_FILE, SERVICES, events_on, flows, render_asyncapi
from services.handle_with_care.service import HandleWithCare
from services.handle_with_care.triage import TriageDesk
from services.kernel.topics import all_topics
from services.notifier.service import Notifier
from services.platform.settings import REPO_ROOT
from services.quick_response.service import QuickResponse
from services.referral_intake.service import EngagementTracker, ReferralIntake
from services.runtime import EVENTS as ALL_EVENTS
from services.self_referral.service import SelfReferrals

OWNERS = {"intake": ReferralIntake, "tracker": EngagementTracker, "notifier": Notifier, "hwc": HandleWithCare,
          "triage": TriageDesk, "qrt": QuickResponse, "walk_ins": SelfReferrals,
          "feeds": FeedWatch}


def test_every_handler_a_subscription_names_exists_on_its_owner() -> None:
    for subscriptions in SERVICES.values():
        for sub in subscriptions:
            for handler in sub.handlers.values():
                assert handler is None or callable(_method(OWNERS[sub.owner], handler)), (sub.owner, handler)


def test_every_event_travels_on_a_declared_topic_that_is_created() -> None:
    on_topics = {cls for topic in all_topics() for cls in events_on(topic)}
    assert set(ALL_EVENTS) <= on_topics
    assert {flow.topic.name for flow in flows()} <= {topic.name for topic in all_topics()}


def test_the_asyncapi_document_is_generated_from_the_code() -> None:
    assert ASYNCAPI_FILE.read_text() == render_asyncapi(), "run: python -m services.flows"


def test_the_architecture_flow_table_names_every_event_of_each_topic() -> None:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    for topic in all_topics():
        [row] = [line for line in text.splitlines() if line.startswith(f"| `{topic.name}` |")]
        listed = set(re.findall(r"\b[A-Z][A-Za-z]+\b", row.split("|")[2]))
        assert {cls.__name__ for cls in events_on(topic)} <= listed, topic.name


def _method(owner: type, dotted: str):
    """``owner``'s handler ``dotted``: a method, or ("part.method") a method of the part its annotations name."""
    from typing import get_type_hints

    *parts, name = dotted.split(".")
    for part in parts:
        owner = get_type_hints(owner)[part]
    return getattr(owner, name, None)
