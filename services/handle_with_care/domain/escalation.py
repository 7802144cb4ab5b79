"""Who a notice goes to as its deadline nears: primary at once; the backup contact when no one has
acknowledged by ``backup_lead`` before the deadline; the district coordinator at
``coordinator_lead`` before it; and a report when the deadline passes unacknowledged.

A notice opened late (its deadline already passed, or too near for those leads) still goes to the
primary contact first: each stage comes at the earliest ``late_step`` after the one before, never
all at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.handle_with_care.events import HwcNoticeRequested, RecipientRole

OVERDUE = "overdue"
STAGES = (RecipientRole.backup.value, RecipientRole.coordinator.value, OVERDUE)


@dataclass(frozen=True)
class EscalationLeads:
    backup: timedelta
    coordinator: timedelta
    late_step: timedelta = timedelta(minutes=30)

    def stage_time(self, stage: str, due_at: datetime, opened_at: datetime | None = None) -> datetime:
        by_deadline = {RecipientRole.backup.value: due_at - self.backup,
                       RecipientRole.coordinator.value: due_at - self.coordinator, OVERDUE: due_at}[stage]
        if opened_at is None:
            return by_deadline
        steps = {RecipientRole.backup.value: 1, RecipientRole.coordinator.value: 2, OVERDUE: 2}[stage]
        return max(by_deadline, opened_at + steps * self.late_step)


@dataclass(frozen=True)
class NoticeState:
    notice_id: str
    school_id: str
    due_at: datetime
    stages_done: tuple[str, ...] = ()
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    merged_encounters: int = 1
    opened_at: datetime | None = None  # None in notices opened before it was kept: stages by deadline only

    @property
    def late(self) -> bool:
        """Opened when the school day it was for had already started."""
        return self.opened_at is not None and self.opened_at >= self.due_at



@dataclass(frozen=True)
class NoticeRecord:
    """What the notice's owner keeps: its state, the request that opened it (the notice itself: a merged
    encounter's request adds nothing), and the correlation id of that request."""

    state: NoticeState
    request: HwcNoticeRequested
    correlation_id: str | None = None


def pending_stage(state: NoticeState) -> str | None:
    """The first stage not yet taken (None: acknowledged notices never escalate, or all are taken)."""
    if state.acknowledged_at is not None:
        return None
    return next((stage for stage in STAGES if stage not in state.stages_done), None)


def next_due_stage(state: NoticeState, leads: EscalationLeads, now: datetime) -> str | None:
    """The earliest stage not yet taken whose time has come, or None."""
    stage = pending_stage(state)
    return stage if stage is not None and now >= leads.stage_time(stage, state.due_at, state.opened_at) else None


def next_stage_at(state: NoticeState, leads: EscalationLeads) -> datetime | None:
    """When ``next_due_stage`` next returns a stage (None: never)."""
    stage = pending_stage(state)
    return leads.stage_time(stage, state.due_at, state.opened_at) if stage is not None else None


def retention_ends_at(state: NoticeState, retention: timedelta) -> datetime:
    """When the notice's state (the child's name and date of birth) must be gone: ``retention`` after
    its deadline, or after its acknowledgement when that came later."""
    return max(state.due_at, state.acknowledged_at or state.due_at) + retention


def take_stage(state: NoticeState, stage: str) -> NoticeState:
    return state if stage in state.stages_done else replace(state, stages_done=(*state.stages_done, stage))


def acknowledge(state: NoticeState, by: str, at: datetime) -> NoticeState:
    return state if state.acknowledged_at else replace(state, acknowledged_at=at, acknowledged_by=by)
