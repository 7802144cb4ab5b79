"""Quick Response's own topics: the team's follow-ups, and the de-identified public feed."""

from __future__ import annotations

from services.kernel.topics import DAY_MS, topic

QRT_FOLLOW_UPS = topic(
    "handoff.qrt.follow-ups", "FollowUpOpened, FollowUpAttempted, FollowUpEscalated, FollowUpAlertSent, FollowUpExpired: Quick Response "
    "Team follow-ups after an overdose (who to visit and where: settings.qrt_data_retention_days after the window, "
    "then FollowUpExpired deletes them); key: task_id.", config={"retention.ms": str(90 * DAY_MS)})

OVERDOSE_REPORTS = topic(
    "handoff.public.overdose-reports", "OverdoseReported: overdose responses de-identified for public-health "
    "mapping, with no header; key: report_id (keyed, unlinkable to the event).",
    config={"retention.ms": str(400 * DAY_MS)}, deidentified=True)
