"""OneRoster for Handle With Care: a district's CSV bulk files (published layout) say which school a child
attends; only a keyed hash of name and date of birth and the school are kept; each import replaces the
last; a child whose school the officer did not know goes to the roster's school; an officer's school
the roster disagrees with goes to triage with both shown."""

from __future__ import annotations

from datetime import date, datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from services.cli import cli
from services.handle_with_care.domain.roster import read_roster
from services.handle_with_care.events import HwcNoticeRequested, HwcTriageOpened, HwcTriageResolved
from services.kernel.errors import Rejected
from services.kernel.events import (
    Child,
)
from services.kernel.identity import roster_key
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from tests.factories import cad_child
from tests.unit.hwc.test_notice_service import REF, Harness

FIXTURES = Path(__file__).parents[2] / "fixtures" / "oneroster"
SECRET = b"roster-test-key"
TODAY = date(2026, 11, 20)
OTTOLINE = Child(first_name="ottoline", last_name="QUILL", date_of_birth=date(2016, 9, 2))


def files(folder: Path = FIXTURES) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.glob("*.csv")}


def test_the_published_layout_reads_into_keyed_hashes_and_schools_only() -> None:
    schools = [s for s in REF.schools.values() if s.district_id == "abq-ps"]
    roster = read_roster(files(), schools, TODAY, partial(roster_key, SECRET))
    assert roster.entries == {roster_key(SECRET, "Ottoline", "Quill", date(2016, 9, 2)): "lincoln-es"}
    assert (roster.students, roster.at_unknown_schools, roster.ambiguous, roster.without_birth_date) == (4, 1, 1, 1)
    text = repr(roster)
    for private in ("Ottoline", "Quill", "2016-09-02", "S-1001"):
        assert private not in text
    assert roster_key(b"another key", "Ottoline", "Quill", date(2016, 9, 2)) not in roster.entries
    with pytest.raises(Rejected, match="demographics.csv"):
        read_roster({k: v for k, v in files().items() if k != "demographics.csv"}, schools, TODAY, str)


def with_roster(*pairs: tuple[Child, str]):
    return REF.model_copy(update={"rosters": {"abq-ps": {
        roster_key(SECRET, c.first_name, c.last_name, c.date_of_birth): school for c, school in pairs}}})


async def test_the_roster_places_a_child_the_officer_had_no_school_for_and_disputes_a_wrong_one() -> None:
    h = Harness()
    h.hwc.reference = with_roster((OTTOLINE, "lincoln-es"))
    h.hwc.roster_secret = SECRET
    night = datetime(2027, 1, 15, 22, 31, tzinfo=ZoneInfo("America/Denver"))
    await h.encounter(cad_child("cad-r1", school_id=None, child=OTTOLINE, encountered_at=night))
    [request] = h.publisher.events(HwcNoticeRequested)
    assert request.school_id == "lincoln-es"
    await h.encounter(cad_child("cad-r2", school_id="sunrise-dc", child=OTTOLINE, encountered_at=night))
    [triage] = h.publisher.events(HwcTriageOpened)
    assert (triage.school_id_given, triage.roster_school_id) == ("sunrise-dc", "lincoln-es")
    await h.encounter(cad_child("cad-r3", school_id="lincoln-es", child=OTTOLINE, encountered_at=night))
    assert len(h.publisher.events(HwcNoticeRequested)) == 2  # agreeing: the notice goes out as usual
    await h.encounter(cad_child("cad-r4", school_id=None, home_educated=True, child=OTTOLINE, encountered_at=night))
    assert h.publisher.events(HwcNoticeRequested)[-1].school_id == "abq-home-education"  # the roster does not override


def test_each_import_replaces_the_last(tmp_path, monkeypatch) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    for item in (REPO_ROOT / "config" / "local").iterdir():
        if item.is_file():
            (reference / item.name).write_text(item.read_text())
    (reference / "calendars").mkdir()
    for ics in (REPO_ROOT / "config" / "local" / "calendars").iterdir():
        (reference / "calendars" / ics.name).write_text(ics.read_text())
    monkeypatch.setenv("HANDOFF_ROSTER_KEY", SECRET.decode())
    monkeypatch.setenv("HANDOFF_REFERENCE_SOURCE", "files")
    runner = CliRunner()
    first = runner.invoke(cli, ["reference", "roster", str(FIXTURES), "--district", "abq-ps", "--config", str(reference),
                                 "--on", "2026-11-20"])  # in the fixtures' school year, whenever the suite runs
    assert first.exit_code == 0, first.output
    assert "1 students placed" in first.output and "1 at schools not in the directory" in first.output
    summer = runner.invoke(cli, ["reference", "roster", str(FIXTURES), "--district", "abq-ps", "--config",
                                 str(reference), "--on", "2026-07-01"])  # before the enrollments begin: nobody yet
    assert summer.exit_code == 0 and "0 students placed" in summer.output, summer.output
    first = runner.invoke(cli, ["reference", "roster", str(FIXTURES), "--district", "abq-ps", "--config",
                                str(reference), "--on", "2026-08-10"])  # the school year's first day
    assert "1 students placed" in first.output, first.output
    loaded = load_reference_data(reference)
    assert list(loaded.rosters["abq-ps"].values()) == ["lincoln-es"]
    later = tmp_path / "later"
    later.mkdir()
    for name, text in files().items():  # Ottoline has left the district
        (later / name).write_text("\n".join(line for line in text.splitlines() if "u-1," not in line
                                            and ",u-1," not in line) + "\n")
    second = runner.invoke(cli, ["reference", "roster", str(later), "--district", "abq-ps", "--config", str(reference),
                                  "--on", "2026-11-20"])
    assert second.exit_code == 0, second.output
    assert load_reference_data(reference).rosters.get("abq-ps", {}) == {}  # replaced, not accumulated
    assert "Ottoline" not in (reference / "rosters" / "abq-ps.json").read_text()


async def test_a_coordinator_placing_a_disputed_child_at_either_school_sends_the_notice_there() -> None:
    h = Harness()
    h.hwc.reference = with_roster((OTTOLINE, "lincoln-es"))
    h.hwc.roster_secret = SECRET
    night = datetime(2027, 1, 15, 22, 31, tzinfo=ZoneInfo("America/Denver"))
    await h.encounter(cad_child("cad-r5", school_id="sunrise-dc", child=OTTOLINE, encountered_at=night))
    [triage] = h.publisher.events(HwcTriageOpened)
    for school_id in ("sunrise-dc", "lincoln-es"):  # the officer's school, then the roster's
        request = await h.hwc.place(HwcTriageResolved(
            cad_event_id=triage.cad_event_id, school_id=school_id, resolved_by="coord-abq", resolved_at=night,
            agency_id=triage.agency_id, child=triage.child, encountered_at=triage.encountered_at))
        assert request.school_id == school_id
    assert [r.school_id for r in h.publisher.events(HwcNoticeRequested)] == ["sunrise-dc", "lincoln-es"]
    assert len(h.publisher.events(HwcTriageOpened)) == 1  # the roster sent neither placement back to triage
    gone = HwcTriageResolved(cad_event_id="cad-r5", school_id="closed-es", resolved_by="coord-abq", resolved_at=night,
                             agency_id="apd", child=OTTOLINE, encountered_at=night)
    with pytest.raises(Rejected, match="no longer in the directory"):
        await h.hwc.place(gone)
