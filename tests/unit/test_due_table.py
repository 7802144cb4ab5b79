"""DueTable: a timer sees what a full scan would, at the cost of what is due; and each service's
next-due function agrees with its due predicate, so the index never hides a due record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.handle_with_care.domain.escalation import (
    STAGES,
    EscalationLeads,
    NoticeState,
    next_due_stage,
    next_stage_at,
)
from services.kernel.reference import EscalationPolicyConfig, EscalationStepConfig
from services.messaging.due import DueTable
from services.notifier.domain.escalation import due_escalation, escalate, next_escalation_at, open_page
from services.referral_intake.domain.views import INTAKE_MILESTONES, ReferralView

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


class Seconds:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def at_minutes(record: dict) -> datetime | None:
    return None if record.get("done") else T0 + timedelta(minutes=record["due"])


def test_due_returns_what_a_scan_would_and_keeps_it_until_a_write_moves_it() -> None:
    table = DueTable({}, at_minutes)
    table["a"], table["b"], table["c"] = {"due": 5}, {"due": 10}, {"due": 1, "done": True}
    assert table.due(T0 + timedelta(minutes=4)) == []
    assert table.due(T0 + timedelta(minutes=5)) == [("a", {"due": 5})]
    assert table.due(T0 + timedelta(minutes=6)) == [("a", {"due": 5})]  # not acted on: still due
    table["a"] = {"due": 5, "done": True}  # acted on: the write takes it out
    table["b"] = {"due": 20}  # moved later
    assert table.due(T0 + timedelta(minutes=15)) == []
    assert [k for k, _ in table.due(T0 + timedelta(minutes=20))] == ["b"]
    assert table.scheduled == 1


def test_records_that_did_not_come_through_it_are_found_by_the_reindex() -> None:
    inner, clock = {"a": {"due": 1}}, Seconds()
    table = DueTable(inner, at_minutes, reindex_seconds=60, monotonic=clock)
    assert [k for k, _ in table.due(T0 + timedelta(minutes=2))] == ["a"]  # the first call indexes all
    inner["b"] = {"due": 1}  # e.g. a policy change or a standby's changelog: no write through the table
    assert [k for k, _ in table.due(T0 + timedelta(minutes=2))] == ["a"]
    clock.now = 60
    assert sorted(k for k, _ in table.due(T0 + timedelta(minutes=2))) == ["a", "b"]


def test_without_a_period_only_a_recovery_or_a_change_of_what_it_follows_reindexes() -> None:
    inner, clock = {"a": {"due": 1}}, Seconds()
    table = DueTable(inner, at_minutes, monotonic=clock)
    assert [k for k, _ in table.due(T0 + timedelta(minutes=2))] == ["a"]
    inner["b"] = {"due": 1}
    clock.now = 24 * 3600.0  # no sweep of the whole table, however long it has been
    assert [k for k, _ in table.due(T0 + timedelta(minutes=2))] == ["a"]
    table.invalidate()  # what the reference data's change does
    assert sorted(k for k, _ in table.due(T0 + timedelta(minutes=2))) == ["a", "b"]


async def test_a_reindex_hands_the_event_loop_back_as_it_goes(monkeypatch) -> None:
    """A year's records take seconds to decode: records and timers go on between turns, and what it finds
    is what a re-index at once finds."""
    import asyncio

    import services.messaging.due as due

    monkeypatch.setattr(due, "REINDEX_TURN", 2)
    inner = {key: {"due": n} for n, key in enumerate("abcdefg")}
    table = DueTable(inner, at_minutes)
    turns: list[int] = []

    async def meanwhile() -> None:
        while True:
            turns.append(table.scheduled)
            await asyncio.sleep(0)

    other = asyncio.create_task(meanwhile())
    await asyncio.sleep(0)
    await table.reindex_in_turns()
    other.cancel()
    assert any(0 < n < 7 for n in turns)  # it ran while the index was half built
    assert [k for k, _ in table.due(T0 + timedelta(minutes=10))] == list("abcdefg")


async def test_a_newer_reindex_takes_over_from_one_under_way(monkeypatch) -> None:
    import services.messaging.due as due

    monkeypatch.setattr(due, "REINDEX_TURN", 1)
    inner = {key: {"due": 1} for key in "abcd"}
    table = DueTable(inner, at_minutes)
    older = table._reindexing()
    next(older)  # one record in, then the loop turns
    inner["e"] = {"due": 1}  # arrived with the recovery that starts the newer one
    table.reindex()
    assert list(older) == []  # the older one stops at its next record
    assert sorted(k for k, _ in table.due(T0 + timedelta(minutes=1))) == list("abcde")


def test_deleted_records_leave_the_index() -> None:
    table = DueTable({}, at_minutes)
    table["a"] = {"due": 1}
    del table["a"]
    assert table.due(T0 + timedelta(hours=1)) == []
    assert "a" not in table and len(table) == 0


def test_a_faust_style_table_reindexes_on_recovery() -> None:
    class Recovering(dict):
        def on_recover(self, fn):
            self.recovered = fn
            return fn

    inner = Recovering()
    table = DueTable(inner, at_minutes, reindex_seconds=3600, monotonic=Seconds())
    table.due(T0)
    inner["r"] = {"due": 0}  # arrived from the changelog
    import asyncio
    asyncio.run(inner.recovered())
    assert [k for k, _ in table.due(T0)] == ["r"]


times = st.integers(min_value=-3 * 24 * 60, max_value=60 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m))


@given(stages=st.sets(st.sampled_from(STAGES)), acked=st.booleans(), now=times)
def test_notice_next_stage_at_agrees_with_next_due_stage(stages, acked, now) -> None:
    leads = EscalationLeads(timedelta(minutes=60), timedelta(minutes=30))
    state = NoticeState("n", "s", T0 + timedelta(days=1), tuple(s for s in STAGES if s in stages),
                        acknowledged_at=T0 if acked else None)
    at = next_stage_at(state, leads)
    assert (next_due_stage(state, leads, now) is not None) == (at is not None and now >= at)


POLICY = EscalationPolicyConfig(loops=2, steps=(EscalationStepConfig(targets=("on_call",), escalate_after_minutes=5),
                                                EscalationStepConfig(targets=("on_call",), escalate_after_minutes=10)))


@given(steps=st.integers(min_value=0, max_value=5), now=times)
def test_page_next_escalation_at_agrees_with_due_escalation(steps, now) -> None:
    page = open_page("p", "r", "abq", T0)
    for _ in range(steps):
        page = escalate(page, POLICY, T0)
    at = next_escalation_at(page, POLICY)
    assert due_escalation(page, POLICY, now) == (at is not None and now >= at)


@given(flags=st.sets(st.sampled_from(["intake_deadline_near", "intake_deadline_missed", "no_contact"])),
       milestones=st.sets(st.sampled_from(sorted(INTAKE_MILESTONES))), contact=st.none() | times,
       status=st.sampled_from(["requested", "accepted", "closed"]), now=times)
def test_referral_next_flag_at_agrees_with_due_flags(flags, milestones, contact, status, now) -> None:
    view = ReferralView("r", "abq", "social_contact", T0, T0 + timedelta(days=30), status=status,
                        milestones={m: T0 for m in milestones}, last_contact_at=contact, flags=sorted(flags))
    warn, quiet = timedelta(days=2), timedelta(days=7)
    at = view.next_flag_at(warn, quiet)
    assert bool(view.due_flags(now, warn, quiet)) == (at is not None and now >= at)


def test_a_change_of_the_live_reference_data_it_follows_moves_due_times_at_the_next_tick() -> None:
    """A due time that reads the reference data (a policy's lead time) follows it at once, not a re-index later."""
    from services.kernel.reference import LiveReference, ReferenceData

    live = LiveReference(ReferenceData())
    lead = {"minutes": 30}
    table = DueTable({}, lambda record: record["at"] + timedelta(minutes=lead["minutes"]), reindex_seconds=3600,
                     monotonic=Seconds(), follows=live)
    table["a"] = {"at": T0}
    assert table.due(T0 + timedelta(minutes=10)) == []
    lead["minutes"] = 5  # what a reference change does to the due time
    assert table.due(T0 + timedelta(minutes=10)) == []  # unseen: the index was made before the change
    live.replace(ReferenceData())
    assert [key for key, _ in table.due(T0 + timedelta(minutes=10))] == ["a"]


async def test_the_timer_publishes_what_is_due_once_until_its_owner_applies_it() -> None:
    """ScheduledRecords: each (key, marker) once, under the record's correlation id, again only after ``applied``;
    a record that is not due is not asked."""
    from services.handle_with_care.events import HwcNoticeExpired
    from services.handle_with_care.topics import HWC_NOTICES
    from services.kernel.store import Owned
    from services.messaging.due import Due, ScheduledRecords
    from services.messaging.kafka import InMemoryPublisher
    from services.platform.logs import current_correlation_id

    asked, seen_ids = [], []

    class Publisher(InMemoryPublisher):
        async def publish(self, topic, key, event):
            seen_ids.append(current_correlation_id())
            await super().publish(topic, key, event)

    def decide(key, record, now):
        asked.append(key)
        return [Due(HWC_NOTICES, "expired", HwcNoticeExpired(notice_id=key, expired_at=now))]

    publisher = Publisher()
    records = ScheduledRecords({}, Owned[datetime], lambda record: record.state, decide, publisher, monotonic=Seconds())
    assert records.keep("n-1", T0) and records.keep("n-2", T0 + timedelta(hours=1))  # no correlation id yet
    records["n-1"], records["n-2"] = Owned(T0, "corr-0001"), Owned(T0 + timedelta(hours=1), "corr-0002")
    assert records.state("n-1") == T0 and records.state("missing") is None
    assert await records.tick(T0) == 1 and asked == ["n-1"] and seen_ids == ["corr-0001"]
    assert await records.tick(T0 + timedelta(minutes=1)) == 0  # published, not yet applied
    records.applied("n-1", "expired")
    assert await records.tick(T0 + timedelta(minutes=2)) == 1  # still due after its owner applied it: again
    assert [e.notice_id for e in publisher.events(HwcNoticeExpired)] == ["n-1", "n-1"]


async def test_a_retention_end_is_published_before_anything_else_and_expire_deletes_only_a_record_still_due() -> None:
    from services.handle_with_care.events import HwcNoticeEscalated, HwcNoticeExpired, RecipientRole
    from services.handle_with_care.topics import HWC_NOTICES
    from services.kernel.store import Owned
    from services.messaging.due import Due, Retention, ScheduledRecords
    from services.messaging.kafka import InMemoryPublisher

    kept = {"n-1": timedelta(days=30)}  # how long after its time the record is kept (an acknowledgement moves it)

    def escalate(key, record, now):
        return [Due(HWC_NOTICES, "backup", HwcNoticeEscalated(notice_id=key, to_role=RecipientRole.backup,
                                                              escalated_at=now))]

    publisher = InMemoryPublisher()
    records = ScheduledRecords({}, Owned[datetime], lambda record: record.state, escalate, publisher,
                               retention=Retention(HWC_NOTICES, lambda record: record.state + kept["n-1"],
                                                   lambda key, now: HwcNoticeExpired(notice_id=key, expired_at=now)),
                               monotonic=Seconds())
    records["n-1"] = Owned(T0)
    assert await records.tick(T0) == 1 and publisher.events(HwcNoticeExpired) == []
    end = T0 + timedelta(days=30)
    assert await records.tick(end) == 1  # the stage still pending is not published again: the end is
    [expired] = publisher.events(HwcNoticeExpired)
    kept["n-1"] = timedelta(days=31)  # acknowledged meanwhile: its retention moved
    assert records.expire("n-1", expired.expired_at) is None and "n-1" in records
    records["n-1"] = Owned(T0)  # a write re-indexes it at its new end
    assert await records.tick(end + timedelta(days=1)) == 1
    [_, again] = publisher.events(HwcNoticeExpired)
    assert records.expire("n-1", again.expired_at) == Owned(T0) and "n-1" not in records
    assert records.expire("n-1", again.expired_at) is None  # a replay: gone already
