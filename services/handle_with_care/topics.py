"""Handle With Care's own topics: the notices and the coordinator's triage queue (children's data)."""

from __future__ import annotations

from services.kernel.topics import DAY_MS, topic

HWC_NOTICES = topic(
    "handoff.hwc.notices", "HwcNotice* events (child data: shorter retention; HwcNoticeExpired ends a notice's state); key: notice_id.",
    config={"retention.ms": str(90 * DAY_MS)}, child_data=True)

HWC_TRIAGE = topic(
    "handoff.hwc.triage", "HwcTriageOpened, HwcTriageResolved, HwcTriageStillUnplaced, HwcTriageAlerted: encounters with no known "
    "school, and the coordinator's alerts; key: cad_event_id.",
    config={"retention.ms": str(30 * DAY_MS)}, child_data=True)
