"""Every part of faust-streaming that Handoff relies on beyond its documented API, in one list.

faust-streaming is thinly maintained, and ``services/messaging/streams.py`` (the one module that touches
it) uses some of its internals: the OffsetGuard marks recovered offsets through the consumer's gap
bookkeeping and seeks a stalled partition, the outbox asks the assignor what this worker owns,
topic creation names the tables' changelogs, an agent acknowledges its records itself (in order, after their writes), an outbox's table hands out the future of each
changelog write (so a delivery waits for its pending record to be on the broker) and is written off the stream on the partition a
delivery carries (its outcome, once the final try is published), and Faust's pause and resume of its changelog partitions are
carried into the aiokafka consumer under Faust's consumer thread (and its livelock check passes over the paused ones). The version is pinned exactly in pyproject.toml; a
new one must pass this test first, which fails naming the internal that moved.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from faust.assignor import PartitionAssignor
from faust.streams import Stream
from faust.tables.base import Collection
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from services.platform.settings import REPO_ROOT


def test_the_installed_faust_is_the_pinned_one() -> None:
    pinned = next(line for line in (REPO_ROOT / "pyproject.toml").read_text().splitlines()
                  if line.strip().startswith('"faust-streaming=='))
    assert pinned.split("==")[1].split('"')[0] == version("faust-streaming")


@pytest.mark.parametrize("owner, name, parameters", [
    (Consumer, "_add_gap", ["self", "tp", "offset_from", "offset_to"]),   # acknowledge_recovered
    (Consumer, "highwater", ["self", "tp"]),                               # the OffsetGuard's tail check
    (Consumer, "seek", ["self", "partition", "offset"]),                   # ... seeking a stalled partition back
    (PartitionAssignor, "assigned_actives", ["self"]),                     # the outbox resumes what this worker owns
    (Collection, "on_recover", ["self", "fun"]),                           # resume and re-index after recovery
    (Recovery, "_is_changelog_tp", ["self", "tp"]),                        # unread_changelogs
    (AIOKafkaConsumerThread, "_ensure_consumer", ["self"]),                # ... reaching aiokafka's consumer
    (AIOKafkaConsumerThread, "call_thread", ["self", "fun", "args", "kwargs"]),  # ... and pausing in its thread
    (AIOKafkaConsumer, "pause", ["self", "partitions"]),
    (AIOKafkaConsumer, "resume", ["self", "partitions"]),
    (Consumer, "pause_partitions", ["self", "tps"]),                       # ... wrapped, so each change reaches aiokafka
    (Consumer, "resume_partitions", ["self", "tps"]),
    (faust.Table, "send_changelog", ["self", "partition", "key", "value", "key_serializer", "value_serializer"]),
    (AIOKafkaConsumer, "paused", ["self"]),
    (Stream, "ack", ["self", "event"]),                                    # RecordsInFlight acknowledges in order
    (AIOKafkaConsumerThread, "verify_event_path", ["self", "now", "tp"]),  # the liveness check skips paused changelogs
], ids=lambda value: value if isinstance(value, str) else "")
def test_an_internal_handoff_uses_is_where_it_was(owner, name, parameters) -> None:
    member = getattr(owner, name, None)
    assert member is not None, f"faust moved {owner.__name__}.{name}"
    assert list(inspect.signature(member).parameters) == parameters, f"faust changed {owner.__name__}.{name}"


def test_a_table_write_asks_partition_for_key_and_off_a_stream_there_is_no_current_event() -> None:
    from faust.streams import current_event

    assert "self.partition_for_key(key)" in inspect.getsource(faust.Table.on_key_set)
    assert current_event() is None


def test_a_tables_changelog_topic_is_named_as_topic_creation_expects() -> None:
    app = faust.App("internals-check", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("notices", default=None)
    assert table.changelog_topic.get_topic_name() == "internals-check-notices-changelog"


def test_what_stop_fetching_unread_changelogs_reaches_is_there() -> None:
    app = faust.App("internals-check-fetch", broker="kafka://127.0.0.1:1", store="memory://")
    assert hasattr(app, "on_rebalance_complete")  # sent when recovery ends, before streams resume
    assert isinstance(app.consumer, ThreadDelegateConsumer) and isinstance(app.consumer._thread, AIOKafkaConsumerThread)
    assert isinstance(app.tables.recovery.standby_tps, set)
    assert isinstance(app.consumer._paused_partitions, set)  # Faust's own record of what it has paused
    assert "_records" in inspect.getsource(Fetcher.__init__)  # the fetched, not yet consumed records per partition


def test_a_stream_reads_enable_acks_for_each_event() -> None:
    # consume() sets it to False on its stream: RecordsInFlight acknowledges after the record's writes.
    for iterate in (Stream._py_aiter, Stream._c_aiter):
        assert "do_ack = self.enable_acks" in inspect.getsource(iterate)


def test_a_tables_value_serializer_set_after_it_is_made_is_the_one_its_changelog_uses() -> None:
    from services.messaging.streams import WorkerKit
    from services.platform.settings import Settings

    kit = WorkerKit.create("internals-check-values", Settings(kafka_bootstrap_servers="127.0.0.1:1"))
    for table in (kit.table("notices").raw, kit.outbox_table("deliveries").raw):
        assert table.changelog_topic.value_serializer == "raw"  # CompactValues writes the JSON bytes itself
        assert table._to_value(b'{"a":1}') == b'{"a":1}'  # recovery hands the store the bytes as written


def test_faust_keeps_the_current_event_as_a_weak_reference_in_a_context_variable() -> None:
    """A record handled again after its sends failed runs in the acknowledging task; ``consume`` sets Faust's
    current event to that record's (``faust.streams._current_event``), so its table writes take its partition."""
    import weakref

    from faust.streams import _current_event, current_event

    class Event:  # Faust asks nothing of it but to be weakly referenced
        pass

    event = Event()
    token = _current_event.set(weakref.ref(event))
    try:
        assert current_event() is event
    finally:
        _current_event.reset(token)
    assert current_event() is None
