"""No fetch stalls: a worker fetches only the partitions it reads.

Faust assigns each worker its tables' changelog partitions and stops reading them after recovery;
if aiokafka went on fetching them, a fetched record nobody reads would hold back every fetch from
the broker for up to 100 ms (its prefetch backoff). After recovery each worker pauses them in
aiokafka, and after a restart (a new assignment) recovery reads them again and pauses them again.
Faust's resume reaches aiokafka too: a pause carried out late never keeps a recovery from reading.
"""

from __future__ import annotations

import pytest

from services.messaging.streams import fetch_state, unread_changelogs
from tests.conftest import eventually
from tests.integration.test_lead_flow import NOW, submit

pytestmark = pytest.mark.integration


def _assert_fetches_only_what_it_reads(worker) -> None:
    unread = unread_changelogs(worker.app)
    assert unread, "the worker has changelog partitions assigned (else this checks nothing)"
    fetchable, held = fetch_state(worker.app)
    assert fetchable == set(), "unread changelog partitions that aiokafka may still fetch"
    assert held == set(), "fetched records of unread changelog partitions, holding back the next fetch"


async def test_workers_stop_fetching_their_changelogs_after_recovery(system_factory) -> None:
    system = await system_factory("referral-intake", "notifier", now=NOW)
    await submit(system, "CAD-FETCH-1")  # writes the referrals, lifecycle, pages and deliveries changelogs
    await eventually(lambda: system.messages("sms") and system.messages("email"))
    for worker in system.apps.values():
        _assert_fetches_only_what_it_reads(worker)

    notifier = await system.restart("notifier")  # a new assignment: recovery reads the changelogs again
    pages = notifier.services["notifier"].pages
    await eventually(lambda: len(list(pages.keys())) == 1)  # recovered from its changelog
    await submit(system, "CAD-FETCH-2")
    await eventually(lambda: len(system.messages("sms")) >= 2)
    _assert_fetches_only_what_it_reads(notifier)


async def test_a_pause_carried_out_late_is_undone_when_faust_resumes_the_partition_to_recover_it(system_factory) -> None:
    """A worker that took over a stopped worker's partitions waited minutes for its changelogs, and its timers
    with it: the pause asked for at the end of one recovery was carried out in aiokafka after the next rebalance
    had begun, and Faust's resume (to recover) never reached aiokafka. Here that late pause is made on purpose."""
    system = await system_factory("referral-intake", "notifier", now=NOW)
    await submit(system, "CAD-LATE-1")
    await eventually(lambda: system.messages("sms") and system.messages("email"))
    app = system.apps["notifier"].app
    await eventually(lambda: fetch_state(app) == (set(), set()) and unread_changelogs(app))
    thread = app.consumer._thread
    consumer = thread._ensure_consumer()
    changelog = next(iter(unread_changelogs(app)))
    aiokafka_tp = _aiokafka_tp(changelog)

    app.consumer.resume_partitions({changelog})  # as a recovery does, to read it again
    await eventually(lambda: aiokafka_tp not in consumer.paused())

    async def pause_late(consumer) -> None:
        consumer.pause(aiokafka_tp)

    await thread.call_thread(pause_late, consumer)  # the late pause: aiokafka stops fetching what Faust reads
    assert aiokafka_tp in consumer.paused()
    app.consumer.resume_partitions({changelog})  # the next recovery's resume
    await eventually(lambda: aiokafka_tp not in consumer.paused())

    app.consumer.pause_partitions({changelog})  # recovered: Faust stops reading it, and so does aiokafka
    await eventually(lambda: fetch_state(app) == (set(), set()))


async def test_five_idle_minutes_log_no_error_for_the_changelogs_paused_on_purpose(system_factory, caplog) -> None:
    """Faust's livelock detector, run as if the worker had started and last fetched its changelogs five minutes
    ago (a fake clock: the recovery's fetch times moved back), finds nothing that needs a person. Before, each
    paused changelog partition logged "Aiokafka has not sent fetch request" at ERROR on every check."""
    import logging

    system = await system_factory("referral-intake", "notifier", now=NOW)
    await submit(system, "CAD-IDLE-1")
    await eventually(lambda: system.messages("sms") and system.messages("email"))
    five_minutes = 301.0
    for worker in system.apps.values():
        await eventually(lambda worker=worker: fetch_state(worker.app) == (set(), set()) and unread_changelogs(worker.app))
        thread = worker.app.consumer._thread
        consumer = thread._ensure_consumer()
        assignment = consumer._fetcher._subscriptions.subscription.assignment
        thread.time_started -= five_minutes
        for tp in unread_changelogs(worker.app):
            state = assignment.state_value(_aiokafka_tp(tp))
            if state is not None and state.timestamp:
                state.timestamp -= five_minutes * 1000
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for worker in system.apps.values():
            await worker.app.consumer.verify_all_partitions_active()
    errors = [r.getMessage()[:120] for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


def _aiokafka_tp(tp):
    from aiokafka import TopicPartition

    return TopicPartition(tp.topic, tp.partition)
