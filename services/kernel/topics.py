"""Kafka topics: each one's name, partitions and configs, written once where it is defined. The kernel
defines the topics services share; a service defines its own (``services/<service>/topics.py``).
Declaring a topic (``topic``) registers it (``all_topics``), as defining an event does.

Topics are created explicitly (``handoff topics create``, the test fixtures, the local stack):
auto-created topics get the broker's partition count and Faust then fails with
PartitionsMismatch. Events of one subject (a referral, a page, a notice) share a topic and a key
so that they stay in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DAY_MS = 24 * 3600 * 1000

_REGISTRY: dict[str, TopicSpec] = {}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    doc: str
    partitions: int | None = None  # None: settings.topic_partitions
    config: dict[str, str] = field(default_factory=dict)
    # Its records leave the de-identified boundary (a public feed): no correlation id and no header, so that
    # nothing on them leads back to the event they came from (the publishers honour this).
    deidentified: bool = False
    # May hold children's data: kept no longer than settings.child_data_retention_days.
    child_data: bool = False
    # Written by agencies' systems too (CAD, EMS, a station's kiosk): their records hold personal values in plain
    # text for this topic's short retention (what Handoff writes here is sealed, as everywhere else).
    plain_from_outside: bool = False

    def qualified(self, prefix: str = "") -> str:
        """The name on the broker: ``prefix`` isolates an environment (or a test) on a shared cluster."""
        return f"{prefix}{self.name}"


def topic(name: str, doc: str, **options: Any) -> TopicSpec:
    """A topic Handoff writes and reads, registered so that every process creates and knows it."""
    spec = TopicSpec(name, doc, **options)
    if _REGISTRY.setdefault(name, spec) != spec:
        raise ValueError(f"two topics named {name}")
    return spec

CAD_REFERRALS = topic(
    "handoff.cad.referrals", "CadReferralMade from CAD integrations and the HTTP intake; key: cad_event_id.",
    config={"retention.ms": str(30 * DAY_MS)}, plain_from_outside=True)
CAD_CHILD_ENCOUNTERS = topic(
    "handoff.cad.child-encounters", "CadChildEncountered (holds incident details: short retention); key: cad_event_id.",
    config={"retention.ms": str(7 * DAY_MS)}, child_data=True, plain_from_outside=True)
REFERRALS = topic(
    "handoff.lead.referrals", "ReferralCreated, ReferralStatusChanged, EngagementRecorded, EngagementWithdrawn, "
    "ReferralNoteWritten, ReferralFlagged, ParticipantSeen, ReferralLocationUpdated, ConsentRevoked, ReferralRetentionEnded; "
    "key: referral_id.",
    config={"retention.ms": str(400 * DAY_MS)})
PAGES = topic(
    "handoff.paging.pages", "PageRequested, PageSent, PageAcknowledged, PageEscalated, PageExhausted; key: referral_id (co-partitioned with REFERRALS).",
    config={"retention.ms": str(400 * DAY_MS)})
CAD_OVERDOSES = topic(
    "handoff.cad.overdoses", "CadOverdoseResponded from CAD and EMS integrations and the HTTP intake; key: "
    "overdose_event_id.", config={"retention.ms": str(7 * DAY_MS)}, plain_from_outside=True)
CAD_WALK_INS = topic(
    "handoff.cad.walk-ins", "CadWalkInReported from CAD and station integrations and the HTTP intake; key: "
    "walk_in_event_id.", config={"retention.ms": str(7 * DAY_MS)}, plain_from_outside=True)
REFERENCE_DATA = topic(
    "handoff.reference.data", "ReferenceDataPublished: agencies, sites, staff, schools, calendars, closures; "
    "key: section/key (compacted: the latest record per key is the entry).",
    partitions=1, config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"})
AUDIT = topic(
    "handoff.ops.audit", "DisclosureAudited: every disclosure and attempt, without personal data; key: subject id. "
    "AccessAudited: every sign-in, refused sign-in, sign-out, expired session and denied access; key: user id. "
    "ErasureReceipted: each erasure's receipt (a data key destroyed); key: subject id. "
    "Retention: settings.audit_retention_days (CJIS asks for at least a year).",
    config={"retention.ms": str(400 * DAY_MS)})
CONSOLE_SESSIONS = topic(
    "handoff.ops.console-sessions", "ConsoleSessionEnded: console sessions ended before their time (signed out), which "
    "every API replica refuses from then on; key: session_key (a hash). Kept longer than a session can live.",
    config={"retention.ms": str(2 * DAY_MS)})
SUBJECT_KEYS = topic(
    "handoff.ops.subject-keys", "SubjectKeyIssued: each subject's data key, wrapped by a key-encryption key; "
    "SubjectKeyDestroyed: its erasure, which replaces it. Key: subject id (compacted, and compacted soon: a destroyed "
    "key's wrapped copy is gone from the log within the compaction lag).", partitions=1,
    config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "max.compaction.lag.ms": str(DAY_MS),
            "segment.ms": str(DAY_MS // 4), "delete.retention.ms": str(DAY_MS)})
DEAD_LETTER_KEYS = topic(
    "handoff.ops.dead-letter-keys", "SubjectKeyIssued: each dead letter's own data key, wrapped (it seals the letter's "
    "original bytes); key: topic/partition/offset of the record lettered. Kept as long as the dead letters, no longer: "
    "when a letter goes, so does the only key that opened it, in every copy.",
    partitions=1, config={"retention.ms": str(30 * DAY_MS)}, child_data=True)
DEAD_LETTER = topic(
    "handoff.ops.dead-letter", "DeadLetterRecorded: what could not be processed, with the original bytes (a child's "
    "encounter or notice among them: kept no longer than children's data).",
    partitions=1, config={"retention.ms": str(30 * DAY_MS)}, child_data=True)

PUSH_SUBSCRIPTIONS = topic(
    "handoff.paging.push-subscriptions", "PushSubscribed, PushUnsubscribed: the devices where each person allowed push "
    "in the console (a browser's PushSubscription: endpoint and keys, sealed); key: person_id/subscription_id "
    "(compacted: the latest record per device is its state). Written by the API and, for a device its push service "
    "no longer knows, by the notifier.",
    config={"cleanup.policy": "compact"})
FHIR_SUBSCRIPTIONS = topic(
    "handoff.fhir.subscriptions", "FhirSubscriptionCreated, FhirSubscriptionDeleted: the Subscriptions case-management "
    "systems create through the FHIR API; key: subscription_id (compacted: the latest record per subscription is its "
    "state; the notifier worker owning its partition sends its heartbeats). No personal data.",
    config={"cleanup.policy": "compact"})


def all_topics() -> tuple[TopicSpec, ...]:
    """Every topic defined so far: the kernel's, and those of the services imported (the composition root,
    ``services.runtime``, imports them all)."""
    return tuple(_REGISTRY.values())


def retention_overrides(audit_days: int, child_data_days: int) -> dict[str, dict[str, str]]:
    """Per-topic config overrides for the configurable retentions."""
    overrides = {AUDIT.name: {"retention.ms": str(audit_days * DAY_MS)}}
    for spec in all_topics():
        if spec.child_data:  # its own retention, or the children's data retention when that is shorter
            own = int(spec.config.get("retention.ms", child_data_days * DAY_MS))
            overrides[spec.name] = {"retention.ms": str(min(own, child_data_days * DAY_MS))}
    return overrides


def by_name(name: str, prefix: str = "") -> TopicSpec:
    for spec in all_topics():
        if spec.qualified(prefix) == name or spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}")
