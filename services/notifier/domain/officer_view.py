"""What the referring officer sees behind the link in their messages: their referral's warm handoff as it stands
(received, paged, who is tried now, taken by whom, missed, late), in words. Nothing about the person: the link
travels by SMS and may be forwarded, and the officer knows whom they met.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from services.kernel.clock import spoken_time


@dataclass(frozen=True)
class HandoffProgress:
    """A referral's warm handoff, as the API's read models have it (names already the people's display names)."""

    site_id: str  # whose time zone the times are said in
    received_at: datetime  # when the officer met the person (the CAD event)
    window_minutes: int  # the site's warm-handoff window (what "late" means there)
    paged_at: datetime | None = None
    tried_now: list[str] = field(default_factory=list)  # who the escalation's latest step paged
    escalated: bool = False  # the on-call did not answer: the escalation went on to the next step
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    missed_at: datetime | None = None  # every step went unanswered
    late: bool = False  # reached Handoff past the warm-handoff window: nobody paged


@dataclass(frozen=True)
class OfficerView:
    headline: str  # where it stands, one sentence
    done: bool  # nothing more will change for the officer (taken, missed, late): no need to look again
    timeline: list[tuple[str, str]]  # (when, what), oldest first


def officer_view(progress: HandoffProgress, zone: tzinfo, now: datetime) -> OfficerView:
    def at(when: datetime) -> str:
        return spoken_time(when, zone, now)

    timeline = [(at(progress.received_at), "You met the person and referred them")]
    if progress.paged_at:
        timeline.append((at(progress.paged_at), "The on-call case manager was paged"))
    if progress.escalated and progress.tried_now and not progress.acknowledged_at:
        timeline.append(("now", f"Paging {_names(progress.tried_now)} (the on-call has not answered)"))
    if progress.missed_at:
        timeline.append((at(progress.missed_at), "Nobody answered through every escalation step: program manager "
                                                 "and outreach told"))
    if progress.acknowledged_at:
        timeline.append((at(progress.acknowledged_at), f"{progress.acknowledged_by or 'A case manager'} took it"))

    if progress.acknowledged_at:
        who = progress.acknowledged_by or "A case manager"
        return OfficerView(f"{who} took your referral and is on the way or will call you.", True, timeline)
    if progress.late:
        return OfficerView(f"Your referral reached Handoff after the {progress.window_minutes}-minute warm-handoff "
                           "window, so nobody was paged to come. The outreach team will follow it up.", True, timeline)
    if progress.missed_at:
        return OfficerView("No case manager has taken your referral. Outreach will look for the person where you "
                           "reported; you may leave when you need to.", True, timeline)
    if progress.paged_at is None:
        return OfficerView("Handoff has your referral and is finding the on-call case manager.", False, timeline)
    if not progress.escalated:
        who = f" ({_names(progress.tried_now)})" if progress.tried_now else ""
        return OfficerView(f"The on-call case manager{who} has been paged and has not answered yet.", False, timeline)
    return OfficerView(f"The on-call has not answered. Now paging {_names(progress.tried_now) or 'the backup'}.",
                       False, timeline)


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""
