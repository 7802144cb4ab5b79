"""The CAD gateway's use cases.

- ``publish_mapped``: each event of a mapped call on its intake's CAD topic, keyed as that intake
  keys it, so a call sent twice (by EIDO and again by a file, or by a retry) is dropped there.
- ``FeedWatch``: feed heartbeats; its timer owns every agency feed that would otherwise go silent
  unnoticed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from services.cad_gateway.domain.calls import Mapped
from services.cad_gateway.domain.feeds import FeedSilence, event_time, is_silent
from services.cad_gateway.events import CadFeedResumed, CadFeedSilent, FeedAlertSent
from services.cad_gateway.topics import FEED_HEALTH
from services.kernel.bus import Handlers
from services.kernel.clock import Clock, spoken_time
from services.kernel.reference import Agency, ReferenceData
from services.kernel.store import KeyValueStore, TypedRecords
from services.kernel.topics import CAD_CHILD_ENCOUNTERS, CAD_OVERDOSES, CAD_REFERRALS, TopicSpec
from services.messaging.events import DisclosedRecord
from services.messaging.kafka import Publisher
from services.messaging.outbox import IdempotentDelivery, MessageAttempts, message_each
from services.platform.logs import get_logger

log = get_logger(__name__)

TOPICS: dict[str, TopicSpec] = {"referral": CAD_REFERRALS, "overdose": CAD_OVERDOSES,
                                "child_encountered": CAD_CHILD_ENCOUNTERS}


async def publish_mapped(mapped: Mapped, publisher: Publisher) -> list[dict[str, str]]:
    """Publish every event; the list says what each became (kind and id), never who."""
    published = []
    for kind, key, event in mapped.events:
        await publisher.publish(TOPICS[kind], key, event)
        published.append({"kind": kind, "id": key})
    return published


def feed_alerts(publisher: Publisher, clock: Clock) -> MessageAttempts:
    """Each try of a feed alert, as ``FeedAlertSent`` (the outbox's report)."""
    return MessageAttempts(publisher, clock, FEED_HEALTH, FeedAlertSent, "agency_id")


class FeedWatch:
    """Feed heartbeats. ``seen`` follows every CAD topic in full (each worker sees every agency's events);
    the timer (``check``) publishes ``CadFeedSilent`` when an agency with an expectation has been silent
    for longer than it allows in its active hours, and ``CadFeedResumed`` when its events arrive again.
    The owner of the agency's partition on the feed-health topic tells its program staff, once per
    silence (its table keeps the silence it told of), and once when the feed is back."""

    delivery: IdempotentDelivery  # its channels: attempt events read back settle through it ("delivery.apply_attempt")

    def __init__(self, reference: ReferenceData, feeds: KeyValueStore, delivery: IdempotentDelivery,
                 publisher: Publisher, clock: Clock) -> None:
        self.reference = reference
        self.feeds = TypedRecords(feeds, FeedSilence)  # agency id -> the silence told of
        self.delivery = delivery
        self.publisher = publisher
        self.clock = clock
        self.started_at = clock.now()
        self.last_event: dict[str, datetime] = {}
        self._requested: set[tuple[str, str]] = set()

    EVENTS: ClassVar[Handlers] = {CadFeedSilent: "tell_silent", CadFeedResumed: "tell_resumed",
                                  FeedAlertSent: "delivery.apply_attempt"}

    def seen(self, event) -> None:
        found = event_time(event)
        if found is not None:
            agency_id, at = found
            if at > self.last_event.get(agency_id, at - timedelta(seconds=1)):
                self.last_event[agency_id] = at

    # --- timer (every worker; the owner drops the copies) ---------------------------------------------------
    async def check(self) -> int:
        now, published = self.clock.now(), 0
        for agency in self.reference.agencies.values():
            if agency.feed is None:
                continue
            last = self.last_event.get(agency.agency_id)
            since = last or self.started_at  # never heard from since the start: measured from the start
            told = self.feeds.get(agency.agency_id)
            if told is not None and told.resumed_at is None and last and last > told.silent_since:
                if (agency.agency_id, f"resumed/{told.silent_since.isoformat()}") not in self._requested:
                    self._requested.add((agency.agency_id, f"resumed/{told.silent_since.isoformat()}"))
                    await self.publisher.publish(FEED_HEALTH, agency.agency_id, CadFeedResumed(
                        agency_id=agency.agency_id, silent_since=told.silent_since, resumed_at=last))
                    published += 1
            elif is_silent(since, now, agency.feed) and (agency.agency_id, since.isoformat()) not in self._requested:
                self._requested.add((agency.agency_id, since.isoformat()))
                await self.publisher.publish(FEED_HEALTH, agency.agency_id, CadFeedSilent(
                    agency_id=agency.agency_id, last_event_at=last, silent_since=since, detected_at=now))
                published += 1
        return published

    # --- on the agency's partition --------------------------------------------------------------------------
    async def tell_silent(self, event: CadFeedSilent) -> None:
        record = self.feeds.get(event.agency_id)
        since = event.silent_since.isoformat()
        if record is not None and record.silent_since == event.silent_since:
            return  # told of this silence already (another worker's timer, or a replay)
        self.feeds[event.agency_id] = FeedSilence(event.silent_since)
        agency = self.reference.agencies.get(event.agency_id)
        if agency is None or agency.feed is None:
            return
        zone = ZoneInfo(agency.feed.timezone)
        now = self.clock.now()
        last = (f"its last event was at {spoken_time(event.last_event_at, zone, now)}" if event.last_event_at
                else f"nothing since Handoff started at {spoken_time(event.silent_since, zone, now)}")
        text = (f"Handoff: no CAD events from {agency.name} for more than {agency.feed.every_hours:g} hours of its "
                f"{agency.feed.from_hour:02d}:00-{agency.feed.until_hour:02d}:00 window ({last}). A broken CAD "
                "integration must not look like a quiet night: please check the connection.")
        await self._tell(agency, f"feed/{event.agency_id}/{since}/silent", "CAD feed silent", text,
                         {"type": "feed.silent", "agency_id": event.agency_id, "silent_since": since})
        log.warning("cad_feed_silent", agency_id=event.agency_id, silent_since=since)

    async def tell_resumed(self, event: CadFeedResumed) -> None:
        record = self.feeds.get(event.agency_id)
        since = event.silent_since.isoformat()
        if record is None or record.silent_since != event.silent_since or record.resumed_at is not None:
            return
        self.feeds[event.agency_id] = replace(record, resumed_at=event.resumed_at)
        agency = self.reference.agencies.get(event.agency_id)
        if agency is None or agency.feed is None:
            return
        zone = ZoneInfo(agency.feed.timezone)
        text = (f"Handoff: CAD events from {agency.name} are arriving again (the first at "
                f"{spoken_time(event.resumed_at, zone, self.clock.now())}).")
        await self._tell(agency, f"feed/{event.agency_id}/{since}/resumed", "CAD feed back", text,
                         {"type": "feed.resumed", "agency_id": event.agency_id, "silent_since": since})
        log.info("cad_feed_resumed", agency_id=event.agency_id)


    async def _tell(self, agency: Agency, key: str, subject: str, text: str, payload: dict) -> None:
        ids = agency.feed.tell if agency.feed and agency.feed.tell else tuple(dict.fromkeys(
            pm for site_id in sorted(agency.sites) if (site := self.reference.site(site_id))
            for pm in site.program_manager_ids))
        people = [(i, p) for i in ids if (p := self.reference.case_managers.get(i)) is not None]
        await message_each(self.delivery, people, key, subject, text, payload, DisclosedRecord.cad_feed_alert,
                           agency.agency_id, {"agency_id": agency.agency_id})
