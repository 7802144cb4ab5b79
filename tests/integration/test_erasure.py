"""Erasure by destroying keys, on a real broker (issue #26): after ``handoff erase`` of a referral, or the end of a
walk-in's retention on a fake clock, every topic read again from the start (dead letters included) opens nothing
of that subject, the console shows "erased", a copy kept from before (a backup) replayed is dead-lettered, and the
receipt is on the audit topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.kernel.topics import REFERRALS, all_topics
from services.messaging.events import ErasureReason, ErasureReceipted, SubjectKeyDestroyed
from services.messaging.kafka import KafkaPublisher, client_options, topic_partition_counts
from services.messaging.subject_keys import sealing_codec
from services.ops import read_dead_letters
from services.referral_intake.entrypoints.console import card
from services.runtime import build_http_app
from tests.conftest import eventually
from tests.factories import walk_in
from tests.integration.test_lead_flow import NOW, referral_body, submit
from tests.integration.test_subject_keys import handoff

pytestmark = pytest.mark.integration
APD = {"Authorization": "Bearer local-dev-token-apd"}


async def every_record(settings) -> list:
    """(topic, key, value) of every record on every topic of this test's prefix, from the start."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        counts = await topic_partition_counts(settings, [spec.qualified(settings.topic_prefix) for spec in all_topics()])
        partitions = [TopicPartition(name, p) for name, count in counts.items() for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                found += [(tp.topic, r.key.decode() if r.key else None, r.value) for r in records if r.value]
        return found
    finally:
        await consumer.stop()


async def opened_of(settings, subjects: set[str]) -> list:
    """Every record of ``subjects`` on every topic, decoded as a reader decodes it (erased values as None)."""
    records = await every_record(settings)
    async with sealing_codec(settings) as codec:
        return [await codec.decode(value, None, topic, key, erased_ok=True)
                for topic, key, value in records if key in subjects and not topic.endswith(("subject-keys",
                                                                                          "dead-letter-keys"))]


async def test_an_erased_referral_opens_nowhere_from_the_start_and_the_console_shows_erased(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    settings = system.settings
    referral_id = await submit(system, "CAD-ERASE-1")
    await eventually(lambda: system.messages("sms"))
    name = referral_body("CAD-ERASE-1")["person"]["last_name"]
    [backup] = [value for topic, key, value in await every_record(settings)
                if key == referral_id and topic == REFERRALS.qualified(settings.topic_prefix)][:1]

    result = await handoff(settings, ["erase", referral_id, "--reason", "order 2027-17", "--by", "admin-ana"])
    assert result.exit_code == 0, result.output
    covered = result.output
    assert "handoff.lead.referrals" in covered and "handoff.cad.referrals" in covered  # the CAD event's key too

    # Every running worker has the erasure within a second: it reads the key topic that often, and whenever a
    # record needs a key it does not know yet (SubjectKeys.REFRESH_SECONDS).
    def erased_in(worker) -> bool:
        records = worker.processor.codec.sealer.keys.keys_of(referral_id)
        return bool(records) and all(isinstance(r, SubjectKeyDestroyed) for r in records)

    await eventually(lambda: all(erased_in(w) for w in system.apps.values()), timeout=5)
    # A copy from before the erasure (a backup restored, a replay) is refused, not read: dead-lettered.
    system.expect_dead_letters = True
    replay = KafkaPublisher(settings, None)  # raw bytes: no codec needed
    await replay.start()
    try:
        await replay.send_raw(REFERRALS, backup, key=referral_id.encode())
    finally:
        await replay.stop()
    await eventually(lambda: any(w.processor.dead_letters.count for w in system.apps.values()))

    # Every topic read again from the start: the referral, its pages and its CAD event open to "erased".
    opened = await opened_of(settings, {referral_id, "CAD-ERASE-1"})
    assert len(opened) >= 3 and name not in repr(opened)
    assert all(getattr(e, "person", None) is None or e.person.last_name is None for e in opened)
    letters = [letter for letter in await read_dead_letters(settings) if letter.original_key == referral_id.encode()]
    assert letters and "erased" in letters[0].error
    async with sealing_codec(settings) as codec:
        again = await codec.decode(letters[0].original_value, None, letters[0].original_topic, referral_id,
                                   erased_ok=True)
    assert again.person.last_name is None

    # The console: the API that was running forgets what it held, and one started now reads "erased".
    details = system.app.state.handoff_details
    await eventually(lambda: details.people[referral_id][0].last_name is None)
    view = system.app.state.read_model.views[referral_id]
    assert card(system.reference, details, view, details.people[referral_id][0])["title"].startswith("erased erased")
    fresh = build_http_app(settings, system.reference, publisher=system.app.state.publisher, clock=system.clock)
    await fresh.state.keys.start()
    for follower in fresh.state.followers:
        await follower.start()
    try:
        await eventually(lambda: referral_id in fresh.state.handoff_details.people)
        assert fresh.state.handoff_details.people[referral_id][0].first_name is None
        assert fresh.state.read_model.views[referral_id].status  # the figures keep the referral itself
    finally:
        for follower in fresh.state.followers:
            await follower.stop()
        await fresh.state.keys.stop()

    receipt_id = covered.split("receipt ")[1].split()[0]
    shown = await handoff(settings, ["erasure", "show", receipt_id])
    assert shown.exit_code == 0 and '"reason": "erasure_requested"' in shown.output and name not in shown.output


async def test_a_walk_in_past_its_retention_is_erased_on_every_topic(system_factory) -> None:
    occurred = datetime(2027, 3, 2, 1, 47, 12, tzinfo=UTC)
    system = await system_factory("self-referral", now=occurred + timedelta(minutes=1))
    event = walk_in("STN-ERASE-1", occurred_at=occurred, first_name="Peregrin").model_dump(mode="json")
    answer = await system.http.post("/v1/walk-ins", json=event, headers=APD)
    assert answer.status_code == 202, answer.text
    case_id = answer.json()["case_id"]
    walk_ins = system.apps["self-referral"].services["walk_ins"].walk_ins
    await eventually(lambda: walk_ins.get(case_id))
    assert "Peregrin" in repr(await opened_of(system.settings, {case_id}))

    system.clock.set(occurred + timedelta(days=system.settings.walk_in_data_retention_days + 1))
    await eventually(lambda: walk_ins.get(case_id) is None)

    async def gone():
        opened = await opened_of(system.settings, {case_id, "STN-ERASE-1"})
        return opened if "Peregrin" not in repr(opened) and any(isinstance(e, ErasureReceipted) for e in opened) \
            else None
    opened = await eventually(gone)
    assert opened and all(getattr(e, "first_name", None) is None for e in opened)
    assert [e for e in opened if isinstance(e, ErasureReceipted) and e.reason is ErasureReason.retention_ended]


async def referral_erased(system, referral_id: str, cad_event_id: str, name: str, reason: ErasureReason) -> bool:
    """Every topic read from the start opens no ``name`` of the referral or its CAD event, and both keys have their
    receipt, for ``reason``."""
    def receipts(opened: list) -> set[str]:
        return {e.subject_id for e in opened if isinstance(e, ErasureReceipted) and e.reason is reason}

    async def erased():
        opened = await opened_of(system.settings, {referral_id, cad_event_id})
        return opened if name not in repr(opened) and receipts(opened) == {referral_id, cad_event_id} else None
    return bool(await eventually(erased))


async def test_a_revoked_consent_erases_what_it_covered_and_keeps_the_referral_in_the_figures(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    referral_id = await submit(system, "CAD-REVOKE-1")
    await eventually(lambda: system.messages("sms"))
    name = referral_body("CAD-REVOKE-1")["person"]["last_name"]
    assert name in repr(await opened_of(system.settings, {referral_id}))

    answer = await system.http.post(f"/v1/referrals/{referral_id}/consent/revoke", json={},
                                    headers={"Authorization": "Bearer local-dev-token-pm-abq"})
    assert answer.status_code == 202, answer.text

    # its key and its CAD event's, each with a receipt
    assert await referral_erased(system, referral_id, "CAD-REVOKE-1", name, ErasureReason.consent_revoked)
    assert system.app.state.read_model.views[referral_id].status  # the figures keep the referral


async def test_a_closed_referral_past_its_retention_is_erased_and_stays_in_the_figures(system_factory) -> None:
    system = await system_factory("referral-intake", now=NOW)
    referral_id = await submit(system, "CAD-CLOSED-1")
    name = referral_body("CAD-CLOSED-1")["person"]["last_name"]
    await eventually(lambda: system.app.state.read_model.views.get(referral_id))
    answer = await system.http.post(f"/v1/referrals/{referral_id}/status", json={"status": "rejected",
                                    "reason": "ineligible"}, headers={"Authorization": "Bearer local-dev-token-pm-abq"})
    assert answer.status_code == 202, answer.text
    lifecycle = system.apps["referral-intake"].services["tracker"].views
    await eventually(lambda: lifecycle.get(referral_id) and lifecycle[referral_id].view.closed_at)
    assert name in repr(await opened_of(system.settings, {referral_id}))

    system.clock.set(NOW + timedelta(days=system.settings.participant_data_retention_days, hours=1))
    await eventually(lambda: referral_id not in lifecycle)

    assert await referral_erased(system, referral_id, "CAD-CLOSED-1", name, ErasureReason.retention_ended)
    assert system.app.state.read_model.views[referral_id].status == "rejected"  # the figures keep it
