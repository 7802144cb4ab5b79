"""The CAD gateway's own topic: agencies' CAD feeds gone silent, and back."""

from __future__ import annotations

from services.kernel.topics import DAY_MS, topic

FEED_HEALTH = topic(
    "handoff.ops.feed-health", "CadFeedSilent, CadFeedResumed, FeedAlertSent: agencies' CAD feeds gone silent within "
    "their expected hours, and back; key: agency_id.", config={"retention.ms": str(90 * DAY_MS)})
