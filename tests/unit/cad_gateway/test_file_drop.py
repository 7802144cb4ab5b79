"""CAD file drops: the agency's CSV and XML layouts read through a mapping file, not code; each file
ingested exactly once (duplicates under another name, and a restart in the middle, publish nothing
twice); bad files go to rejected/ with a reason file and hold nothing up; a broker away leaves the
file for the next round."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from datetime import timedelta

import pytest

from services.cad_gateway.domain.calls import event_id_for, map_calls
from services.cad_gateway.domain.layouts import Layout
from services.cad_gateway.entrypoints.file_drop import FileDrop, reader_for
from services.cad_gateway.service import publish_mapped
from services.kernel.cad import CadOverdoseResponded, CadReferralMade
from services.kernel.clock import FakeClock
from services.kernel.errors import Rejected
from services.messaging.kafka import InMemoryPublisher
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from tests.eido_documents import call_transfer, eido
from tests.factories import NOW

REF = load_reference_data(REPO_ROOT / "config" / "local")
LAYOUTS = REPO_ROOT / "config" / "local" / "layouts"
CSV = ("IncidentNumber,ReceivedTime,CallType,Disposition,Address,Lat,Lon,PrimaryUnit,PersonSeq,FirstName,LastName,"
       "DOB,Sex,Role\n"
       "P26-004411,11/20/2026 08:10:00,415,LEAD,600 Central Ave SW,35.0844,-106.6504,Unit 12,1,Sam,Example,"
       "03/14/1987,M,Subject\n"
       "P26-004411,11/20/2026 08:10:00,415,LEAD,600 Central Ave SW,35.0844,-106.6504,Unit 12,2,Morgan,Neighbor,"
       ",F,Caller\n")
XML = ("<CadCall><Incident><Number>P26-004412</Number><Received>2026-11-20T08:12:00</Received><Type>OD</Type>"
       "<Disposition>NARCAN</Disposition><Location><Address>Alley behind 400 Gold Ave SW</Address>"
       "<Latitude>35.0838</Latitude><Longitude>-106.6520</Longitude></Location>"
       "<PrimaryOfficer>Unit 7</PrimaryOfficer></Incident><Persons><Person><Seq>1</Seq><Role>Patient</Role>"
       "<Name><First>Alex</First><Last>Sample</Last></Name><BirthDate>1990-05-01</BirthDate><Sex>F</Sex></Person>"
       "</Persons></CadCall>")


def layout(name: str) -> Layout:
    return Layout.model_validate(tomllib.loads((LAYOUTS / name).read_text()))


def test_a_csv_layout_reads_the_call_and_each_row_as_a_person() -> None:
    call = layout("apd.csv.toml").read(CSV.encode())
    assert call.call_id == "P26-004411" and call.incident_type == "415" and call.dispositions == ("LEAD",)
    assert call.occurred_at.isoformat() == "2026-11-20T15:10:00+00:00"  # 08:10 in Albuquerque
    assert [(p.first_name, p.roles, str(p.date_of_birth)) for p in call.persons] == [
        ("Sam", ("Subject",), "1987-03-14"), ("Morgan", ("Caller",), "None")]
    assert (call.latitude, call.longitude, call.location_text) == (35.0844, -106.6504, "600 Central Ave SW")


def test_an_xml_layout_reads_paths_and_refuses_what_xml_can_hide() -> None:
    call = layout("apd.xml.toml").read(XML.encode())
    assert (call.call_id, call.incident_type, call.dispositions, call.persons[0].last_name) == (
        "P26-004412", "OD", ("NARCAN",), "Sample")
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><CadCall>&a;</CadCall>'
    for bad in (bomb.encode(), b"<CadCall><Incident>", b"\xff\xfe"):
        with pytest.raises(Rejected, match="file"):
            layout("apd.xml.toml").read(bad)
    with pytest.raises(Rejected, match="missing columns"):
        layout("apd.csv.toml").read(b"Number,When\n1,2\n")


class Folder:
    def __init__(self, tmp_path, fmt: str = "csv", publisher: InMemoryPublisher | None = None) -> None:
        self.path = tmp_path
        self.publisher = publisher or InMemoryPublisher()
        lay = {"csv": LAYOUTS / "apd.csv.toml", "xml": LAYOUTS / "apd.xml.toml", "eido": None}[fmt]
        self.drop = FileDrop(tmp_path, "apd", reader_for(fmt, lay), REF, self.publisher,
                             FakeClock(NOW + timedelta(minutes=30)), settle_seconds=0)

    def put(self, name: str, content: str | bytes, age_seconds: float = 10) -> None:
        path = self.path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        then = path.stat().st_mtime - age_seconds
        os.utime(path, (then, then))

    def names(self, sub: str) -> list[str]:
        return sorted(p.name for p in (self.path / sub).iterdir())


async def test_each_call_is_ingested_once_through_duplicates_and_a_restart(tmp_path) -> None:
    folder = Folder(tmp_path)
    folder.put("call-1.csv", CSV, age_seconds=30)
    folder.put("call-1 (copy).csv", CSV, age_seconds=20)  # the same file uploaded twice
    folder.put("garbage.csv", "not,a,call\n1,2,3\n", age_seconds=10)
    outcomes = await folder.drop.run_once()
    assert [(o.file, o.result) for o in outcomes] == [("call-1.csv", "ingested"), ("call-1 (copy).csv", "duplicate"),
                                                      ("garbage.csv", "rejected")]
    [referral] = folder.publisher.events(CadReferralMade)
    assert referral.cad_event_id == event_id_for("P26-004411", "1") and referral.person.last_name == "Example"
    assert folder.names("rejected") == ["garbage.csv", "garbage.csv.reason.txt"]
    assert "missing columns" in (tmp_path / "rejected" / "garbage.csv.reason.txt").read_text()
    assert "already ingested" in (tmp_path / "done" / "call-1 (copy).csv.reason.txt").read_text()

    # The same file uploaded again under its own name, after it was moved: a duplicate of that upload.
    folder.put("call-1.csv", CSV)
    restarted = Folder(tmp_path, publisher=folder.publisher)
    assert [o.result for o in await restarted.drop.run_once()] == ["duplicate"]
    assert "an earlier upload of this name" in (tmp_path / "done" / "call-1.1.csv.reason.txt").read_text()
    assert len(folder.publisher.events(CadReferralMade)) == 1


async def test_a_file_published_before_a_crash_is_moved_as_ingested_not_as_its_own_duplicate(tmp_path) -> None:
    folder = Folder(tmp_path)
    folder.put("call-2.csv", CSV, age_seconds=30)
    published = await publish_mapped(map_calls(folder.drop.reader(CSV.encode()), folder.drop.agency, REF.sites, NOW),
                                      folder.publisher)
    folder.drop._remember(hashlib.sha256(CSV.encode()).hexdigest(), "call-2.csv", published)  # then the crash
    restarted = Folder(tmp_path, publisher=folder.publisher)
    [outcome] = await restarted.drop.run_once()
    assert outcome.result == "ingested" and "call-2.csv" not in outcome.reason
    assert "not published again" in (tmp_path / "done" / "call-2.csv.reason.txt").read_text()
    assert len(folder.publisher.events(CadReferralMade)) == 1


async def test_eido_files_and_nothing_to_map(tmp_path) -> None:
    folder = Folder(tmp_path, "eido")
    folder.put("a.json", json.dumps(eido(NOW)))
    folder.put("b.json", json.dumps(call_transfer(NOW)))
    folder.put("c.json", "{not json")
    results = {o.file: o.result for o in await folder.drop.run_once()}
    assert results == {"a.json": "ingested", "b.json": "nothing_to_map", "c.json": "rejected"}
    assert "no incidentComponent" in (tmp_path / "done" / "b.json.reason.txt").read_text()


async def test_a_file_being_written_waits_and_a_broker_away_keeps_the_file(tmp_path) -> None:
    class Away(InMemoryPublisher):
        async def publish(self, topic, key, event) -> None:
            raise ConnectionError("broker away")

    folder = Folder(tmp_path, "xml", publisher=Away())
    folder.drop.settle_seconds = 5
    folder.put("od.xml", XML, age_seconds=1)  # just written
    assert await folder.drop.run_once() == []
    folder.put("od.xml", XML, age_seconds=10)
    [outcome] = await folder.drop.run_once()
    assert outcome.result == "retry" and (tmp_path / "od.xml").exists()
    folder.drop.publisher = InMemoryPublisher()
    [outcome] = await folder.drop.run_once()
    assert outcome.result == "ingested" and folder.drop.publisher.events(CadOverdoseResponded)[0].naloxone_given
    lag = folder.drop.registry.get_sample_value("handoff_file_drop_lag_seconds", {"agency": "apd"})
    assert lag is not None and lag >= 10
    assert folder.drop.registry.get_sample_value("handoff_file_drop_files_total",
                                                 {"agency": "apd", "outcome": "retry"}) == 1
