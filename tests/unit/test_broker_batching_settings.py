"""The broker-traffic settings chosen by measurement (bench/findings.md, #29) reach the clients they set."""

from __future__ import annotations

from services.messaging.kafka import FOLLOWER_FETCH_MIN_BYTES, TopicFollower, follower_fetch_options
from services.messaging.streams import create_app
from services.platform.settings import Settings


def test_a_read_models_fetch_is_held_for_more_records_only_when_a_wait_is_set() -> None:
    assert follower_fetch_options(Settings(kafka_follower_fetch_wait_ms=0)) == {}
    held = follower_fetch_options(Settings(kafka_follower_fetch_wait_ms=250))
    assert held == {"fetch_max_wait_ms": 250, "fetch_min_bytes": FOLLOWER_FETCH_MIN_BYTES}


async def test_a_follower_a_record_waits_for_is_answered_at_once(monkeypatch) -> None:
    """The keys' follower fetches when a record needs a key: a held fetch would hold that record up."""
    made: list[dict] = []

    class Consumer:
        def __init__(self, **options) -> None:
            made.append(options)

        async def start(self) -> None:
            raise RuntimeError("enough: the options are known")

    monkeypatch.setattr("aiokafka.AIOKafkaConsumer", Consumer)
    settings = Settings(kafka_follower_fetch_wait_ms=250)
    for fetch_every in (None, 1.0):
        try:
            await TopicFollower(settings, codec=None, specs=(), on_event=print, fetch_every=fetch_every).start()
        except RuntimeError:
            pass
    read_model, keys = made
    assert read_model["fetch_max_wait_ms"] == 250 and "fetch_max_wait_ms" not in keys


def test_a_worker_commits_as_often_as_set(tmp_path) -> None:
    settings = Settings(kafka_commit_interval_seconds=5.0, data_dir=tmp_path)
    assert create_app("commit-check", settings).conf.broker_commit_interval == 5.0
