"""The system's flows, declared in one place: which service follows which topic, and which of its
handlers takes which event there.

Each worker declares its ``SUBSCRIPTIONS`` (``services.kernel.bus.Subscription``) and subscribes from
them; this module gathers them (it sits beside ``runtime.py``, the only other place that knows
every service) into the flow table and the AsyncAPI document. ``docs/asyncapi.json`` is generated
here (``python -m services.flows``) and a test fails when it differs from the code, so the event
catalogue cannot drift.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from services.cad_gateway.entrypoints import worker as gateway_worker
from services.handle_with_care.entrypoints import worker as hwc_worker
from services.kernel.bus import Subscription
from services.kernel.push import PushSubscribed, PushUnsubscribed
from services.kernel.topics import (
    AUDIT,
    CONSOLE_SESSIONS,
    DEAD_LETTER,
    DEAD_LETTER_KEYS,
    PUSH_SUBSCRIPTIONS,
    REFERENCE_DATA,
    SUBJECT_KEYS,
    TopicSpec,
    all_topics,
)
from services.messaging.contract import avro_schema_of
from services.messaging.events import (
    DeadLetterRecorded,
    DisclosureAudited,
    ErasureReceipted,
    ReferenceDataPublished,
    SubjectKeyDestroyed,
    SubjectKeyIssued,
)
from services.notifier.entrypoints import worker as notifier_worker
from services.platform.settings import REPO_ROOT
from services.quick_response.entrypoints import worker as qrt_worker
from services.quick_response.events import OverdoseReported
from services.quick_response.topics import OVERDOSE_REPORTS
from services.referral_intake.entrypoints import worker as intake_worker
from services.self_referral.entrypoints import worker as walk_in_worker
from services.web.events import AccessAudited, ConsoleSessionEnded

SERVICES: dict[str, tuple[Subscription, ...]] = {
    module.SERVICE: module.SUBSCRIPTIONS
    for module in (intake_worker, notifier_worker, hwc_worker, qrt_worker, walk_in_worker, gateway_worker)}
# Topics no worker follows: read by operators, auditors and every process's reference feed.
OTHER_READERS: dict[str, tuple[str, tuple[type, ...]]] = {
    AUDIT.name: ("auditors (handoff audit) and counsel (handoff erasure show)",
                 (AccessAudited, DisclosureAudited, ErasureReceipted)),
    SUBJECT_KEYS.name: ("every process that opens personal values (subject keys)", (SubjectKeyIssued, SubjectKeyDestroyed)),
    DEAD_LETTER_KEYS.name: ("operators (handoff dlq), to open the dead letters", (SubjectKeyIssued,)),
    CONSOLE_SESSIONS.name: ("the API (every replica refuses an ended session)", (ConsoleSessionEnded,)),
    DEAD_LETTER.name: ("operators (handoff dlq)", (DeadLetterRecorded,)),
    REFERENCE_DATA.name: ("every worker and the API (reference feed)", (ReferenceDataPublished,)),
    OVERDOSE_REPORTS.name: ("the API's de-identified feed (public-health maps)", (OverdoseReported,)),
    PUSH_SUBSCRIPTIONS.name: ("the notifier (whose devices a page is pushed to) and the API (a person's devices)",
                              (PushSubscribed, PushUnsubscribed)),
}
ASYNCAPI_FILE = REPO_ROOT / "docs" / "asyncapi.json"


@dataclass(frozen=True)
class Flow:
    topic: TopicSpec
    event: type
    service: str
    handler: str | None  # "owner.method", or None: accepted and passed over


def flows() -> list[Flow]:
    return [Flow(sub.topic, event, service, f"{sub.owner}.{handler}" if handler else None)
            for service, subscriptions in SERVICES.items() for sub in subscriptions
            for event, handler in sub.handlers.items()]


def events_on(topic: TopicSpec) -> list[type]:
    """Every event type the flows (or the other readers) know on ``topic``, in a stable order."""
    found = {flow.event for flow in flows() if flow.topic.name == topic.name}
    found |= set(OTHER_READERS.get(topic.name, ("", ()))[1])
    return sorted(found, key=lambda cls: cls.__name__)


def asyncapi() -> dict:
    """The AsyncAPI 3.0 document of Handoff's topics, their Avro messages and who receives them."""
    messages = {cls.__name__: {
        "name": cls.__name__, "title": cls.avro_name(),
        "contentType": "application/vnd.confluent.avro",
        "payload": {"schemaFormat": "application/vnd.apache.avro+json;version=1.9.0",
                    "schema": avro_schema_of(cls)}}
        for topic in all_topics() for cls in events_on(topic)}
    channels = {topic.name: {
        "address": topic.name, "description": topic.doc,
        "messages": {cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"} for cls in events_on(topic)}}
        for topic in all_topics()}
    operations = {}
    for service, subscriptions in SERVICES.items():
        for sub in subscriptions:
            handled = {event.__name__: handler for event, handler in sub.handlers.items()}
            operations[f"{service}.{sub.name or sub.topic.name}"] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{sub.topic.name}"},
                "summary": f"{service} follows {sub.topic.name}",
                "description": "; ".join(f"{event} -> {sub.owner}.{handler}" if handler else f"{event}: passed over"
                                         for event, handler in sorted(handled.items())),
                "messages": [{"$ref": f"#/channels/{sub.topic.name}/messages/{event}"} for event in sorted(handled)]}
    for topic_name, (reader, _events) in OTHER_READERS.items():
        operations[f"read.{topic_name}"] = {
            "action": "receive", "channel": {"$ref": f"#/channels/{topic_name}"}, "summary": f"read by {reader}"}
    return {"asyncapi": "3.0.0",
            "info": {"title": "Handoff", "version": "1.0.0",
                     "description": "LEAD referrals and Handle With Care notices: the topics, their Avro events "
                                    "(Confluent wire format) and the services that follow them. Generated by "
                                    "services/flows.py; do not edit."},
            "channels": channels, "operations": operations, "components": {"messages": messages}}


def render_asyncapi() -> str:
    return json.dumps(asyncapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m services.flows: write docs/asyncapi.json
    ASYNCAPI_FILE.write_text(render_asyncapi())
    sys.stdout.write(f"wrote {ASYNCAPI_FILE.relative_to(REPO_ROOT)}\n")
