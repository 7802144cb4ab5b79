"""Faust worker: CAD referrals (and overdoses naming an inactive participant) -> ReferralIntake; referral and page events -> EngagementTracker; flag timer."""

from __future__ import annotations

from datetime import timedelta

from services.kernel.bus import Subscription
from services.kernel.clock import Clock, SystemClock
from services.kernel.reference import ReferenceData
from services.kernel.topics import CAD_OVERDOSES, CAD_REFERRALS, PAGES, REFERRALS
from services.messaging.events import ErasureReason
from services.messaging.kafka import TopicFollower
from services.messaging.streams import Worker, WorkerKit
from services.platform.settings import Settings
from services.referral_intake.domain.participants import InactiveParticipants
from services.referral_intake.service import EngagementTracker, ReferralIntake

SERVICE = "referral-intake"
SUBSCRIPTIONS = (
    Subscription(CAD_REFERRALS, "intake", ReferralIntake.CAD_EVENTS),
    # Any pathway's CAD event may name an inactive participant: overdose responses too.
    Subscription(CAD_OVERDOSES, "intake", ReferralIntake.OVERDOSE_EVENTS, name="participants-seen"),
    Subscription(REFERRALS, "tracker", EngagementTracker.REFERRAL_EVENTS, name="lifecycle"),
    Subscription(PAGES, "tracker", EngagementTracker.PAGE_EVENTS, name="lifecycle-pages"),
)
FOLLOWS = (REFERRALS,)  # inactive participants span every partition
WRITES = (REFERRALS,)


def build_worker(settings: Settings, reference: ReferenceData, clock: Clock | None = None) -> Worker:
    kit = WorkerKit.create(SERVICE, settings)
    clock = clock or SystemClock()
    # Keyed by referral id, written while processing the CAD record it came from: every record of
    # one CAD event id lands on one partition, so one worker owns each referral id.
    # Inactive participants span every partition: the intake follows the whole referral history.
    participants = InactiveParticipants()
    kit.follow(TopicFollower(settings, kit.codec, FOLLOWS, participants.apply, personal=participants.OPENS))
    intake = ReferralIntake(reference, kit.table("referrals"), kit.publisher, clock, settings.event_time_window,
                            participants.match)
    kit.keys.on_destroyed.append(participants.forget)  # an erased person is matched no more

    def erase(referral_id: str, reason: ErasureReason) -> None:
        kit.keys.erase_soon(referral_id, reason, requested_by=f"handoff ({reason.value.replace('_', ' ')})")

    # Lifecycle (states and times, no personal data: an erasure leaves the figures as they are): its own table,
    # written only from the referral and page topics (both keyed by referral id), so one worker owns each
    # referral's lifecycle, and the end of its retention once it is closed.
    tracker = EngagementTracker(reference, kit.table("lifecycle", personal=False), kit.publisher, clock,
                                timedelta(hours=settings.intake_warning_hours), erase=erase,
                                retention=timedelta(days=settings.participant_data_retention_days))
    kit.subscribe(SUBSCRIPTIONS, {"intake": intake, "tracker": tracker})
    kit.every(settings.escalation_tick_seconds, tracker.publish_due_flags)
    return kit.worker()
