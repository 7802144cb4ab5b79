"""A CAD file drop on the real broker: a landing folder with duplicate files, a bad file and a restart of
the watcher in the middle -> each call opens exactly one referral (one page to the on-call case
manager), the bad file waits in rejected/ with its reason, nothing valid is held up."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from services.cad_gateway.entrypoints.file_drop import FileDrop, reader_for
from services.messaging.avro import AvroCodec, registry_from_url
from services.messaging.kafka import KafkaPublisher
from services.platform.settings import REPO_ROOT
from tests.conftest import eventually
from tests.integration.test_lead_flow import NOW, on_call
from tests.unit.cad_gateway.test_file_drop import CSV

pytestmark = pytest.mark.integration
LAYOUT = REPO_ROOT / "config" / "local" / "layouts" / "apd.csv.toml"


async def watcher(system, folder):
    publisher = KafkaPublisher(system.settings, AvroCodec(registry_from_url(system.settings.schema_registry_url)))
    await publisher.start()
    return FileDrop(folder, "apd", reader_for("csv", LAYOUT), system.reference, publisher, system.clock,
                    system.settings.event_time_window, settle_seconds=0), publisher


def put(folder, name: str, text: str) -> None:
    path = folder / name
    path.write_text(text)
    then = path.stat().st_mtime - 5
    os.utime(path, (then, then))


async def test_a_folder_with_duplicates_and_a_restart_opens_each_referral_once(system_factory, tmp_path) -> None:
    # The calls were at 08:10: their file lands an hour later, inside the warm-handoff window (two hours).
    system = await system_factory("referral-intake", "notifier", now=NOW - timedelta(minutes=45))
    second_call = CSV.replace("P26-004411", "P26-004419").replace("Sam,Example", "Robin,Example")
    put(tmp_path, "0001.csv", CSV)
    put(tmp_path, "0001-again.csv", CSV)
    put(tmp_path, "0002-broken.csv", "IncidentNumber\nP26-1\n")
    drop, publisher = await watcher(system, tmp_path)
    assert [o.result for o in await drop.run_once()] == ["ingested", "duplicate", "rejected"]
    await publisher.stop()  # the watcher stops (a deploy, a crash) ...

    put(tmp_path, "0001.csv", CSV)  # ... the CAD uploads the first call again, and a new one
    put(tmp_path, "0003.csv", second_call)
    drop, publisher = await watcher(system, tmp_path)
    try:
        assert sorted(o.result for o in await drop.run_once()) == ["duplicate", "ingested"]
    finally:
        await publisher.stop()

    cm = on_call(system)
    await eventually(lambda: len([m for m in system.messages("sms") if m.to == cm.phone]) >= 2)
    await eventually(lambda: True, interval=1.0)  # a duplicate, had it been published, would page by now
    pages = [m for m in system.messages("sms") if m.to == cm.phone]
    assert len(pages) == 2 and all("600 Central Ave SW" in m.body for m in pages)  # one page per call
    assert sorted(p.name for p in (tmp_path / "rejected").iterdir()) == ["0002-broken.csv",
                                                                         "0002-broken.csv.reason.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []  # nothing left waiting
