"""Reference data through Kafka: ``publish_reference`` (what ``handoff reference load`` and
``handoff hwc close`` do) and ``ReferenceFeed``, which keeps a ``LiveReference`` current from the
compacted reference topic in every worker and API process."""

from __future__ import annotations

from datetime import UTC, datetime

from services.kernel.reference import (
    LiveReference,
    ReferenceData,
    ReferenceDataError,
)
from services.kernel.topics import REFERENCE_DATA
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.events import ReferenceDataPublished
from services.messaging.kafka import KafkaPublisher, TopicFollower
from services.platform.logs import get_logger
from services.platform.reference_files import RawReference, build_reference_data
from services.platform.settings import Settings

log = get_logger(__name__)


async def publish_reference(settings: Settings, records: list[tuple[str, str, str | None]]) -> int:
    """Publish (section, key, body) records; body None removes the entry."""
    publisher = KafkaPublisher(settings, AvroCodec(registry_from_url(settings.schema_registry_url)))
    await publisher.start()
    try:
        now = datetime.now(UTC)
        for section, key, body in records:
            await publisher.publish(REFERENCE_DATA, f"{section}/{key}",
                                    ReferenceDataPublished(section=section, key=key, body=body, published_at=now))
    finally:
        await publisher.stop()
    return len(records)


async def read_reference(settings: Settings) -> RawReference:
    """What the reference topic holds now."""
    feed = ReferenceFeed(settings)
    await feed.start()
    await feed.stop()
    return feed.raw


class ReferenceFeed:
    """Follows the reference topic; after each change, a valid rebuild replaces ``live.current``.

    An update that does not validate is logged and ignored: the last good reference data stays.
    """

    def __init__(self, settings: Settings, live: LiveReference | None = None) -> None:
        self.raw = RawReference()
        self.live = live or LiveReference(ReferenceData())
        self._dirty = False
        self._follower = TopicFollower(settings, AvroCodec(registry_from_url(settings.schema_registry_url)),
                                       (REFERENCE_DATA,), self._on_record, on_idle=self._rebuild)

    def _on_record(self, event: ReferenceDataPublished) -> None:
        self.raw.put(event.section, event.key, event.body)
        self._dirty = True

    def _rebuild(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        try:
            self.live.replace(build_reference_data(self.raw))
            log.info("reference_data_updated", sites=len(self.live.sites), schools=len(self.live.schools))
        except ReferenceDataError as exc:
            log.error("reference_data_rejected", reason=str(exc))

    async def start(self) -> LiveReference:
        """Start following and return once everything already published is applied."""
        await self._follower.start()
        await self._follower.caught_up.wait()
        self._rebuild()
        if not self.live.sites and not self.live.schools:
            log.warning("reference_data_empty", hint="run: handoff reference load --config DIR")
        return self.live

    async def stop(self) -> None:
        await self._follower.stop()
