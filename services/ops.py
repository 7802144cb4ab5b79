"""Operator tasks on the dead-letter topic: list what failed, show one (fetching the original from
its topic when the letter is reduced), and re-submit a record (as it was, or corrected) to the
topic it came from."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from services.kernel.cad import CadChildEncountered, CadReferralMade
from services.kernel.errors import describe_validation_error
from services.kernel.lead import EngagementRecorded
from services.kernel.topics import (
    AUDIT,
    CAD_CHILD_ENCOUNTERS,
    CAD_REFERRALS,
    DEAD_LETTER,
    DEAD_LETTER_KEYS,
    REFERRALS,
    TopicSpec,
    by_name,
)
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.events import DeadLetterRecorded, DisclosureAudited, ErasureReceipted
from services.messaging.kafka import KafkaPublisher, client_options, topic_partition_counts
from services.messaging.sealing import personal_leaves, subject_of
from services.messaging.subject_keys import SubjectKeys, opened_letter, sealing_codec
from services.platform.crypto import key_provider
from services.platform.settings import Settings
from services.web.events import AccessAudited


async def read_dead_letters(settings: Settings, limit: int = 100) -> list[DeadLetterRecorded]:
    """The latest ``limit`` dead letters, oldest first."""
    return [letter for _offset, letter in await read_dead_letters_with_offsets(settings, limit)]


async def read_dead_letters_with_offsets(settings: Settings, limit: int = 100) -> list[tuple[int, DeadLetterRecorded]]:
    """(offset on the dead-letter topic, letter) for the latest ``limit`` dead letters, oldest first, their original
    bytes opened (``original_value`` None when the letter's key is gone)."""
    async def last_ones(_consumer, partitions, ends) -> dict:
        return {tp: max(0, ends[tp] - limit) for tp in partitions}

    letters = sorted(await read_topic(settings, DEAD_LETTER, (DeadLetterRecorded,), last_ones),
                     key=lambda pair: pair[1].failed_at)[-limit:]
    if not any(letter.sealed_under for _offset, letter in letters):
        return letters
    keys = SubjectKeys(settings, key_provider(settings), topic=DEAD_LETTER_KEYS)
    await keys.start()
    try:
        return [(offset, opened_letter(keys, letter)) for offset, letter in letters]
    finally:
        await keys.stop()


async def read_topic(settings: Settings, spec: TopicSpec, expected: tuple[type, ...], starts) -> list[tuple[int, Any]]:
    """(offset, event) of every record of ``spec``'s partitions from ``await starts(consumer, partitions, ends)``
    (partition -> offset) to the end each partition has when called: what an operator's command reads."""
    if any(personal_leaves(cls) for cls in expected):  # sealed values: opened, or "erased" (None) once erased
        async with sealing_codec(settings) as codec:
            return await _read_topic(settings, spec, expected, starts, codec)
    return await _read_topic(settings, spec, expected, starts, AvroCodec(registry_from_url(settings.schema_registry_url)))


async def _read_topic(settings: Settings, spec: TopicSpec, expected: tuple[type, ...], starts,
                      codec: AvroCodec) -> list[tuple[int, Any]]:
    topic = spec.qualified(settings.topic_prefix)
    counts = await topic_partition_counts(settings, [topic])
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(counts[topic])]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp, offset in (await starts(consumer, partitions, ends)).items():
            consumer.seek(tp, offset)
        found: list[tuple[int, Any]] = []
        while await _behind(consumer, partitions, ends):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    found.append((record.offset, await codec.decode(
                        record.value, expected, topic, subject_of(record.key),
                        erased_ok=True)))
        return found
    finally:
        await consumer.stop()
        await codec.registry.close()


async def _behind(consumer, partitions, ends) -> bool:
    for tp in partitions:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


AUDIT_COLUMNS = ("when", "component", "event", "user", "user_kind", "outcome", "reason", "where_from", "record",
                 "subject", "audit_id")


async def read_audit(settings: Settings, since: datetime, until: datetime) -> list[dict[str, str]]:
    """Every audit record (sign-ins, sign-outs, expiries, denials and disclosures) that happened in
    [``since``, ``until``), oldest first, as CJIS 5.4.1.1 reads them: when, which component, what event,
    which user, the outcome and why, where from. Reads from the records written since an hour before
    ``since`` (a record is written as it happens), to the topic's end as it is when called."""
    async def from_since(consumer, partitions, ends) -> dict:
        found = await consumer.offsets_for_times(
            {tp: int((since - timedelta(hours=1)).timestamp() * 1000) for tp in partitions})
        return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in partitions}

    rows = [_audit_row(event) for _offset, event in
            await read_topic(settings, AUDIT, (AccessAudited, DisclosureAudited, ErasureReceipted), from_since)]
    return sorted((row for row in rows if since <= datetime.fromisoformat(row["when"]) < until), key=lambda r: r["when"])


async def erasure_receipt(settings: Settings, receipt_id: str) -> ErasureReceipted | None:
    """The receipt ``receipt_id`` from the audit topic (read from its start: erasures are rare, receipts kept)."""
    async def from_start(_consumer, partitions, _ends) -> dict:
        return dict.fromkeys(partitions, 0)

    for _offset, event in await read_topic(settings, AUDIT, (AccessAudited, DisclosureAudited, ErasureReceipted),
                                           from_start):
        if isinstance(event, ErasureReceipted) and event.receipt_id == receipt_id:
            return event
    return None


def _audit_row(event: AccessAudited | DisclosureAudited | ErasureReceipted) -> dict[str, str]:
    if isinstance(event, ErasureReceipted):
        return {"when": event.erased_at.isoformat(), "component": "keys", "event": "erasure",
                "user": event.requested_by, "user_kind": "", "outcome": "success", "reason": event.reason.value,
                "where_from": "", "record": event.covers, "subject": event.subject_id, "audit_id": event.receipt_id}
    if isinstance(event, AccessAudited):
        return {"when": event.occurred_at.isoformat(), "component": event.component, "event": event.event_type.value,
                "user": event.user_id or "", "user_kind": event.user_kind or "",
                "outcome": "success" if event.success else "failure", "reason": event.reason or "",
                "where_from": event.client_address or "", "record": "", "subject": "", "audit_id": event.audit_id}
    return {"when": event.disclosed_at.isoformat(), "component": event.service, "event": "disclosure",
            "user": event.recipient_id, "user_kind": event.recipient_role, "outcome": event.outcome.value,
            "reason": event.channel.value, "where_from": "", "record": event.record_kind.value,
            "subject": event.subject_id, "audit_id": event.audit_id}


class ResubmitError(ValueError):
    pass


class OriginalUnavailable(LookupError):
    """A reduced letter's original is no longer on its topic (retention passed), or does not match its hash."""


async def dead_letter_at(settings: Settings, dlq_offset: int) -> DeadLetterRecorded:
    letters = dict(await read_dead_letters_with_offsets(settings, limit=100_000))
    letter = letters.get(dlq_offset)
    if letter is None:
        raise ResubmitError(f"no dead letter at offset {dlq_offset}")
    return letter


async def original_value(settings: Settings, letter: DeadLetterRecorded, timeout_ms: int = 10_000) -> bytes | None:
    """The dead-lettered record's value: from the letter itself, or, for a reduced letter, read back
    from its topic at its partition and offset and checked against the letter's SHA-256."""
    if not letter.original_truncated:
        return letter.original_value
    tp = TopicPartition(letter.original_topic, letter.partition)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_bytes=64 * 1024 * 1024,
                                max_partition_fetch_bytes=64 * 1024 * 1024, **client_options(settings))
    await consumer.start()
    try:
        consumer.assign([tp])
        if (await consumer.beginning_offsets([tp]))[tp] > letter.offset:
            raise OriginalUnavailable(f"{letter.original_topic}[{letter.partition}]@{letter.offset} is past its "
                                      "topic's retention")
        consumer.seek(tp, letter.offset)
        records = (await consumer.getmany(tp, timeout_ms=timeout_ms, max_records=1)).get(tp, [])
    finally:
        await consumer.stop()
    if not records or records[0].offset != letter.offset:
        raise OriginalUnavailable(f"{letter.original_topic}[{letter.partition}]@{letter.offset} could not be read")
    value = records[0].value
    if value is not None and letter.original_sha256 and hashlib.sha256(value).hexdigest() != letter.original_sha256:
        raise OriginalUnavailable("the record at that offset does not match the letter's SHA-256")
    return value


RESUBMITTABLE = {CAD_REFERRALS.name: CadReferralMade, CAD_CHILD_ENCOUNTERS.name: CadChildEncountered,
                 REFERRALS.name: EngagementRecorded}
RESUBMITTED_HEADER = "resubmitted_from"


async def resubmit_dead_letter(settings: Settings, dlq_offset: int, corrected_json: str | None = None) -> str:
    """Publish the dead letter at ``dlq_offset`` back to its original topic with its original key and
    correlation id: its original bytes, or ``corrected_json`` validated as the topic's event type.
    Returns the topic it went to."""
    letter = await dead_letter_at(settings, dlq_offset)
    spec = by_name(letter.original_topic, settings.topic_prefix)
    async with sealing_codec(settings) as codec:
        return await _resubmit(settings, letter, dlq_offset, spec, codec, corrected_json)


async def _resubmit(settings: Settings, letter: DeadLetterRecorded, dlq_offset: int, spec: TopicSpec,
                    codec: AvroCodec, corrected_json: str | None) -> str:
    if corrected_json is None:
        try:
            value = await original_value(settings, letter)
        except OriginalUnavailable as exc:
            raise ResubmitError(str(exc)) from None
    else:
        model = RESUBMITTABLE.get(spec.name)
        if model is None:
            raise ResubmitError(f"records of {spec.name} cannot be corrected by hand; re-submit them as they were")
        try:
            value = await codec.encode(model.model_validate_json(corrected_json), spec.qualified(settings.topic_prefix),
                                       subject_of(letter.original_key))
        except ValidationError as exc:
            raise ResubmitError(describe_validation_error(exc)) from None
    headers = [(h.key, h.value) for h in letter.original_headers if h.key != RESUBMITTED_HEADER and h.value is not None]
    headers.append((RESUBMITTED_HEADER, f"{DEAD_LETTER.name}@{dlq_offset}".encode()))
    publisher = KafkaPublisher(settings, codec)
    await publisher.start()
    try:
        await publisher.send_raw(spec, value, key=letter.original_key, headers=headers)
    finally:
        await publisher.stop()
    return spec.qualified(settings.topic_prefix)
