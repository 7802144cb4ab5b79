"""Every Kafka topic Handoff uses: the single source of truth for names, partitions and configs.

Topics are created explicitly (``handoff topics create``, the test fixtures, the local stack):
auto-created topics get the broker's partition count and Faust then fails with
PartitionsMismatch. Events of one subject (a referral, a page, a notice) share a topic and a key
so that they stay in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    doc: str
    partitions: int | None = None  # None: settings.topic_partitions
    config: dict[str, str] = field(default_factory=dict)
    # Its records leave the de-identified boundary (a public feed): no correlation id and no header, so that
    # nothing on them leads back to the event they came from (the publishers honour this).
    deidentified: bool = False

    def qualified(self, prefix: str = "") -> str:
        """The name on the broker: ``prefix`` isolates an environment (or a test) on a shared cluster."""
        return f"{prefix}{self.name}"


CAD_REFERRALS = TopicSpec(
    "handoff.cad.referrals", "CadReferralMade from CAD integrations and the HTTP intake; key: cad_event_id.",
    config={"retention.ms": str(30 * DAY_MS)})
CAD_CHILD_ENCOUNTERS = TopicSpec(
    "handoff.cad.child-encounters", "CadChildEncountered (holds incident details: short retention); key: cad_event_id.",
    config={"retention.ms": str(7 * DAY_MS)})
REFERRALS = TopicSpec(
    "handoff.lead.referrals", "ReferralCreated, ReferralStatusChanged, EngagementRecorded, ReferralFlagged, ParticipantSeen, "
    "ReferralLocationUpdated; key: referral_id.",
    config={"retention.ms": str(400 * DAY_MS)})
PAGES = TopicSpec(
    "handoff.paging.pages", "PageRequested, PageSent, PageAcknowledged, PageEscalated, PageExhausted; key: referral_id (co-partitioned with REFERRALS).",
    config={"retention.ms": str(400 * DAY_MS)})
HWC_NOTICES = TopicSpec(
    "handoff.hwc.notices", "HwcNotice* events (child data: shorter retention; HwcNoticeExpired ends a notice's state); key: notice_id.",
    config={"retention.ms": str(90 * DAY_MS)})
HWC_TRIAGE = TopicSpec(
    "handoff.hwc.triage", "HwcTriageOpened, HwcTriageResolved, HwcTriageStillUnplaced, HwcTriageAlerted: encounters with no known "
    "school, and the coordinator's alerts; key: cad_event_id.",
    config={"retention.ms": str(30 * DAY_MS)})
CAD_OVERDOSES = TopicSpec(
    "handoff.cad.overdoses", "CadOverdoseResponded from CAD and EMS integrations and the HTTP intake; key: "
    "overdose_event_id.", config={"retention.ms": str(7 * DAY_MS)})
QRT_FOLLOW_UPS = TopicSpec(
    "handoff.qrt.follow-ups", "FollowUpOpened, FollowUpAttempted, FollowUpEscalated, FollowUpAlertSent, FollowUpExpired: Quick Response "
    "Team follow-ups after an overdose (who to visit and where: settings.qrt_data_retention_days after the window, "
    "then FollowUpExpired deletes them); key: task_id.", config={"retention.ms": str(90 * DAY_MS)})
OVERDOSE_REPORTS = TopicSpec(
    "handoff.public.overdose-reports", "OverdoseReported: overdose responses de-identified for public-health "
    "mapping, with no header; key: report_id (keyed, unlinkable to the event).",
    config={"retention.ms": str(400 * DAY_MS)}, deidentified=True)
CAD_WALK_INS = TopicSpec(
    "handoff.cad.walk-ins", "CadWalkInReported from CAD and station integrations and the HTTP intake; key: "
    "walk_in_event_id.", config={"retention.ms": str(7 * DAY_MS)})
WALK_INS = TopicSpec(
    "handoff.self-referral.walk-ins", "WalkInOpened, WalkInAccepted, WalkInEscalated, WalkInMilestoneRecorded, "
    "VolunteerExpenseClaimed, WalkInMessageSent, WalkInExpired: self-referrals, their volunteers and expenses (a "
    "first name: settings.walk_in_data_retention_days, then WalkInExpired deletes them); key: case_id.",
    config={"retention.ms": str(90 * DAY_MS)})
FEED_HEALTH = TopicSpec(
    "handoff.ops.feed-health", "CadFeedSilent, CadFeedResumed, FeedAlertSent: agencies' CAD feeds gone silent within "
    "their expected hours, and back; key: agency_id.", config={"retention.ms": str(90 * DAY_MS)})
REFERENCE_DATA = TopicSpec(
    "handoff.reference.data", "ReferenceDataPublished: agencies, sites, staff, schools, calendars, closures; "
    "key: section/key (compacted: the latest record per key is the entry).",
    partitions=1, config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"})
AUDIT = TopicSpec(
    "handoff.ops.audit", "DisclosureAudited: every disclosure and attempt, without personal data; key: subject id. "
    "AccessAudited: every sign-in, refused sign-in, sign-out, expired session and denied access; key: user id. "
    "Retention: settings.audit_retention_days (CJIS asks for at least a year).",
    config={"retention.ms": str(400 * DAY_MS)})
CONSOLE_SESSIONS = TopicSpec(
    "handoff.ops.console-sessions", "ConsoleSessionEnded: console sessions ended before their time (signed out), which "
    "every API replica refuses from then on; key: session_key (a hash). Kept longer than a session can live.",
    config={"retention.ms": str(2 * DAY_MS)})
DEAD_LETTER = TopicSpec(
    "handoff.ops.dead-letter", "DeadLetterRecorded: what could not be processed, with the original bytes.",
    partitions=1, config={"retention.ms": str(30 * DAY_MS)})

ALL_TOPICS: tuple[TopicSpec, ...] = (CAD_REFERRALS, CAD_CHILD_ENCOUNTERS, REFERRALS, PAGES, HWC_NOTICES, HWC_TRIAGE,
                                     CAD_OVERDOSES, QRT_FOLLOW_UPS, OVERDOSE_REPORTS, CAD_WALK_INS, WALK_INS,
                                     FEED_HEALTH, REFERENCE_DATA, AUDIT, CONSOLE_SESSIONS, DEAD_LETTER)

# Topics holding children's data; their retention follows settings.child_data_retention_days.
# (CAD_CHILD_ENCOUNTERS keeps its own 7 days: it still holds the incident details CAD sent.)
CHILD_DATA_TOPICS: tuple[TopicSpec, ...] = (HWC_NOTICES, HWC_TRIAGE)


def retention_overrides(audit_days: int, child_data_days: int) -> dict[str, dict[str, str]]:
    """Per-topic config overrides for the configurable retentions."""
    overrides = {AUDIT.name: {"retention.ms": str(audit_days * DAY_MS)}}
    for spec in CHILD_DATA_TOPICS:
        overrides[spec.name] = {"retention.ms": str(child_data_days * DAY_MS)}
    return overrides


def by_name(name: str, prefix: str = "") -> TopicSpec:
    for spec in ALL_TOPICS:
        if spec.qualified(prefix) == name or spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}")
