"""Data keys on the compacted key topic, on a real broker: a key one worker issues opens in another; an erasure
destroys it in every worker, for good, with a receipt on the audit topic; rotating the key-encryption key re-wraps
the data keys without touching a value sealed under them; and no data key is ever on the broker in the clear."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from services.cli import cli
from services.kernel.topics import SUBJECT_KEYS
from services.messaging.kafka import ensure_topics
from services.messaging.subject_keys import SubjectKeys
from services.platform.crypto import KeyUnavailable, binding, key_provider, open_sealed, seal
from services.runtime import TOPICS
from tests.conftest import broker_env, eventually
from tests.integration.conftest import raw_values

pytestmark = pytest.mark.integration

WHERE = binding("handoff.lead.referrals", "person.first_name", "REF-1")


def cli_env(settings) -> dict[str, str]:
    return {**broker_env(settings),
            "HANDOFF_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
            "HANDOFF_TOPIC_PREFIX": settings.topic_prefix, "HANDOFF_DATA_DIR": str(settings.data_dir)}


async def handoff(settings, args: list[str]):
    """The CLI, in a thread of its own: it runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, cli, args, env=cli_env(settings))


async def started(settings) -> SubjectKeys:
    keys = SubjectKeys(settings, key_provider(settings))
    await keys.start()
    return keys


async def test_a_key_issued_by_one_worker_opens_in_another_and_an_erasure_closes_it_everywhere(kafka_settings) -> None:
    await ensure_topics(kafka_settings, TOPICS)
    worker_a = await started(kafka_settings)
    worker_b = await started(kafka_settings)
    try:
        issued = await worker_a.issue("REF-1", "lead_referral")
        assert (await worker_a.issue("REF-1", "lead_referral")).key_id == issued.key_id  # one live key per subject
        sealed = seal(issued.key, b"Dana", WHERE)
        await eventually(lambda: worker_b.keys_of("REF-1"))
        assert open_sealed(worker_b.open("REF-1", issued.key_id), sealed, WHERE) == b"Dana"
        other = await worker_a.issue("REF-2", "lead_referral")
        # worker_b reads the key topic when asked (and once a second): a record sealed under a key just written
        # finds it at once, by one read to the topic's end.
        assert await worker_b.known("REF-2", other.key_id)

        result = await handoff(kafka_settings, ["erase", "REF-1", "--reason", "ticket 4711", "--by", "admin-ana"])
        assert result.exit_code == 0, result.output
        receipt_id = result.output.split("receipt ")[1].split()[0]

        def closed(worker) -> bool:
            try:
                worker.open("REF-1", issued.key_id)
            except KeyUnavailable:
                return True
            return False

        await eventually(lambda: closed(worker_a) and closed(worker_b))  # the cached key is dropped too
        assert worker_b.open("REF-2", other.key_id) == other.key  # nobody else's key
        again = await handoff(kafka_settings, ["erase", "REF-1", "--reason", "twice", "--by", "admin-ana"])
        assert again.exit_code == 1 and "no live data key" in again.output
    finally:
        await worker_a.stop()
        await worker_b.stop()

    later = await started(kafka_settings)  # a worker started after: read from the start, the key never comes back
    try:
        with pytest.raises(KeyUnavailable, match="destroyed"):
            later.open("REF-1", issued.key_id)
        with pytest.raises(KeyUnavailable, match="erased"):
            await later.issue("REF-1", "lead_referral")  # a replay of the subject's intake seals nothing anew
    finally:
        await later.stop()

    shown = await handoff(kafka_settings, ["erasure", "show", receipt_id])
    assert shown.exit_code == 0, shown.output
    for expected in (receipt_id, '"subject_id": "REF-1"', issued.key_id, '"covers": "lead_referral"',
                     '"reason": "erasure_requested"', '"requested_by": "admin-ana"', "ticket 4711"):
        assert expected in shown.output
    raw = b"".join(v or b"" for v in await raw_values(kafka_settings, SUBJECT_KEYS))
    assert issued.key not in raw and other.key not in raw


async def test_rotation_rewraps_the_data_keys_and_the_old_key_encryption_key_can_then_be_retired(kafka_settings) -> None:
    await ensure_topics(kafka_settings, TOPICS)
    worker = await started(kafka_settings)
    try:
        issued = await worker.issue("WALK-1", "walk_in")
        sealed = seal(issued.key, b"Sam", binding("handoff.self-referral.walk-ins", "first_name", "WALK-1"))
        first_kek = worker.provider.current
        refused = await handoff(kafka_settings, ["keys", "retire", first_kek])
        assert refused.exit_code == 1 and "still wrapped" in refused.output

        rotated = await handoff(kafka_settings, ["keys", "rotate"])
        assert rotated.exit_code == 0 and "1 data key(s) re-wrapped" in rotated.output, rotated.output
        retired = await handoff(kafka_settings, ["keys", "retire", first_kek])
        assert retired.exit_code == 0, retired.output
    finally:
        await worker.stop()

    fresh = await started(kafka_settings)  # nothing cached: it must unwrap under the new key-encryption key
    try:
        assert fresh.keys_of("WALK-1")[0].kek_id != first_kek
        key = fresh.open("WALK-1", issued.key_id)
        assert open_sealed(key, sealed, binding("handoff.self-referral.walk-ins", "first_name", "WALK-1")) == b"Sam"
    finally:
        await fresh.stop()
