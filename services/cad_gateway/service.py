"""What a mapped call publishes: each event on its intake's CAD topic, keyed as that intake keys it,
so a call sent twice (by EIDO and again by a file, or by a retry) is dropped there as a copy."""

from __future__ import annotations

from services.cad_gateway.domain.calls import Mapped
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_OVERDOSES, CAD_REFERRALS, TopicSpec
from services.messaging.kafka import Publisher

TOPICS: dict[str, TopicSpec] = {"referral": CAD_REFERRALS, "overdose": CAD_OVERDOSES,
                                "child_encountered": CAD_CHILD_ENCOUNTERS}


async def publish_mapped(mapped: Mapped, publisher: Publisher) -> list[dict[str, str]]:
    """Publish every event; the list says what each became (kind and id), never who."""
    published = []
    for kind, key, event in mapped.events:
        await publisher.publish(TOPICS[kind], key, event)
        published.append({"kind": kind, "id": key})
    return published
