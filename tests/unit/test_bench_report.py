"""The benchmark's report: figures rendered from a results file, with the before/after table."""

from __future__ import annotations

import copy
import json

from bench import run as bench


def full_report() -> dict:
    """The baseline run's results, grown to the current shape (it predates the two-worker run)."""
    report = json.loads(bench.BASELINE.read_text())
    report["results"]["throughput_two_workers"] = {"referrals": 5000, "encounters": 1250, "seconds": 125.0,
                                                  "messages_per_second": 50.0}
    report["verdicts"] = bench.verdicts(report["results"])
    return report


def test_throughput_verdict_takes_the_better_of_one_and_two_workers() -> None:
    report = full_report()
    floor = report["results"]["floor_throughput"]["messages_per_second"]
    assert report["verdicts"]["throughput_vs_floor"]["value"] == 50.0 / floor
    assert report["verdicts"]["throughput_vs_floor"]["met"] is False


def test_report_shows_both_worker_counts_and_compares_with_the_baseline() -> None:
    after = full_report()
    after["results"]["hwc_backlog"] = {"encounters": 100_000, "seconds": 1000.0, "peak_rss_mib": 300.0}
    text = bench.markdown(after)
    assert "| referrals + encounters to pages + notices, two workers per service | 6250 | 125.0 | 50 |" in text
    before = json.loads(bench.BASELINE.read_text())["results"]["hwc_backlog"]
    drain_before = before["encounters"] / before["seconds"]
    assert f"| HWC backlog drain rate (encounters/s) | {drain_before:,.1f} | 100.0 |" in text
    assert "## What the profiles showed" in text


def test_smoke_report_leaves_out_the_comparison() -> None:
    smoke = copy.deepcopy(full_report())
    smoke["smoke"] = True
    assert "Before and after" not in bench.markdown(smoke)


def test_render_rewrites_the_report_from_a_results_file(tmp_path) -> None:
    results = tmp_path / "run.json"
    results.write_text(json.dumps(full_report()))
    assert bench.main(["--render", str(results), "--report", str(tmp_path / "bench.md")]) == 0
    assert (tmp_path / "bench.md").read_text() == bench.markdown(full_report())
