"""The self-referral pathway's own topic: walk-in cases, their volunteers and expenses."""

from __future__ import annotations

from services.kernel.topics import DAY_MS, topic

WALK_INS = topic(
    "handoff.self-referral.walk-ins", "WalkInOpened, WalkInAccepted, WalkInEscalated, WalkInMilestoneRecorded, "
    "VolunteerExpenseClaimed, WalkInMessageSent, WalkInExpired: self-referrals, their volunteers and expenses (a "
    "first name: settings.walk_in_data_retention_days, then WalkInExpired deletes them); key: case_id.",
    config={"retention.ms": str(90 * DAY_MS)})
