"""The benchmark's report: figures rendered from a results file, with the before/after table."""

from __future__ import annotations

import copy
import json

from bench import run as bench


def full_report() -> dict:
    """The baseline run's results, grown to the current shape (it predates the two-worker run and the floors)."""
    report = json.loads(bench.BASELINE.read_text())
    report["results"]["throughput_two_workers"] = {"referrals": 5000, "encounters": 1250, "seconds": 125.0,
                                                  "messages_per_second": 50.0}
    report["results"]["fair_floor"] = {"referrals": 5000, "encounters": 1250, "items": 6250, "seconds": 20.0,
                                       "items_per_second": 312.5}
    report["results"]["fair_floor_encounters"] = {"referrals": 0, "encounters": 10000, "items": 10000,
                                                  "seconds": 25.0, "items_per_second": 400.0}
    report["results"]["http_latency_floor"] = {**report["results"]["floor_steady"], "p99_ms": 20.0}
    report["results"]["receivers_ceiling"] = {"sends_per_channel": 2000, "per_second": {"sms": 900.0, "email": 1000.0,
                                              "webhook": 520.0}, "pages_per_second": 473.7, "notices_per_second": 520.0}
    on = report["results"]["throughput"]
    rounds = [{**on, "sealed": sealed, "machine_cpu_ms_per_item": cpu,
               "messages_per_second": on["messages_per_second"] * (1.0 if sealed else 1.25),
               "seconds": on["seconds"] / (1.0 if sealed else 1.25)}
              for sealed, cpu in ((False, 20.0), (True, 24.0), (True, 26.0), (False, 20.0))]
    report["results"]["sealing_off"] = {
        "referral_to_page_steady": {**report["results"]["referral_to_page_steady"], "p99_ms": 30.0},
        "rounds": rounds, "sealed": bench._rounds_summary([r for r in rounds if r["sealed"]]),
        "plain": bench._rounds_summary([r for r in rounds if not r["sealed"]])}
    report["verdicts"] = bench.verdicts(report["results"])
    return report


def test_throughput_verdict_takes_the_better_of_one_and_two_workers_against_the_fair_floor() -> None:
    report = full_report()
    best = max(50.0, report["results"]["throughput"]["messages_per_second"])
    assert report["verdicts"]["throughput_vs_fair_floor"]["value"] == best / 312.5
    assert report["verdicts"]["throughput_vs_fair_floor"]["met"] is False


def test_every_goal_is_a_ratio_to_the_floor_of_the_same_run() -> None:
    report = full_report()
    results, v = report["results"], report["verdicts"]
    steady_p99 = results["referral_to_page_steady"]["p99_ms"]
    assert v["p99_vs_http_floor"]["value"] == steady_p99 / 20.0
    assert v["p99_vs_bare_floor"]["value"] == steady_p99 / results["floor_steady"]["p99_ms"]
    backlog = results["hwc_backlog"]
    assert v["backlog_vs_fair_floor"]["value"] == backlog["encounters"] / backlog["seconds"] / 400.0
    assert set(v) == set(bench.TARGETS)
    assert round(v["throughput_sealed_vs_plain"]["value"], 6) == 0.8 and v["throughput_sealed_vs_plain"]["met"] is False
    assert v["throughput_sealed_vs_plain"]["target"].startswith(">= 90% of the throughput with sealing off")
    assert "alternating rounds" in v["throughput_sealed_vs_plain"]["target"]


def test_report_shows_what_sealing_costs_beside_the_same_run_without_it() -> None:
    report = full_report()
    text = bench.markdown(report)
    on = report["results"]["throughput"]["messages_per_second"]
    assert "## What sealing personal values costs" in text
    assert f"| not sealed | 30.0 | {on * 1.25:.0f} | 20.0 |" in text and f"| {on:.0f} | 25.0 |" in text
    assert f"Rounds in order: plain {on * 1.25:.0f}/s (20.0 ms), sealed {on:.0f}/s (24.0 ms)" in text


def test_report_shows_both_worker_counts_and_compares_with_the_baseline() -> None:
    after = full_report()
    after["results"]["hwc_backlog"] = {"encounters": 100_000, "seconds": 1000.0, "peak_rss_mib": 300.0}
    after["results"]["throughput_two_workers"]["machine_cpu_ms_per_item"] = 14.25
    text = bench.markdown(after)
    assert ("| referrals + encounters to pages + notices, two workers per service | 6250 | 125.0 | 50 | 0.16x | 14.2 |"
            in text)  # what an item cost the whole machine, beside the rate
    assert "| fair floor (the same work per item, no Faust) | 6250 | 20.0 | 312 | 1.00x |" in text
    assert "a page (its SMS and email sent together) 474/s, a notice 520/s" in text
    assert "100.0 encounters/s" not in text and "100 encounters/s, 0.25x of the fair floor's 400/s" in text
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


def with_cpu(report: dict) -> dict:
    """The report with the CPU figures every scenario now carries (#29)."""
    r = report["results"]
    r["fair_floor"] |= {"machine_cpu_ms_per_item": 5.0, "own_cpu_ms_per_item": 3.0}
    r["fair_floor_encounters"] |= {"machine_cpu_ms_per_item": 4.0}
    r["throughput"] |= {"machine_cpu_ms_per_item": 16.0,
                        "cpu_ms_per_item_by_process": {"notifier": 5.1, "referral-intake": 3.65, "broker 1": 2.5}}
    r["throughput_two_workers"]["machine_cpu_ms_per_item"] = 18.0
    r["one_process"] = {"start_seconds": 17.5, "referral_to_page_steady": {"p99_ms": 120.0},
                        "separate": {"messages_per_second": 110.0, "machine_cpu_ms_per_item": 16.5},
                        "one": {"messages_per_second": 86.0, "machine_cpu_ms_per_item": 12.0}}
    r["referral_to_page_steady"]["machine_cpu_ms_per_item"] = 21.5
    r["idle"] = {"seconds": 10.0, "machine_cpu_ms_per_second": 212.0,
                 "cpu_ms_per_second_by_process": {"api": 20.0, "broker 1": 150.0}}
    r["hwc_backlog"] = {"encounters": 100_000, "seconds": 1000.0, "peak_rss_mib": 300.0,
                        "machine_cpu_ms_per_item": 10.0}
    report["verdicts"] = bench.verdicts(r)
    return report


def test_cpu_per_item_is_judged_against_the_fair_floor_in_the_cheapest_layout() -> None:
    v = with_cpu(full_report())["verdicts"]["cpu_per_item_vs_fair_floor"]
    assert v["value"] == 12.0 / 5.0 and v["met"] is False  # one process's 12 ms, not one worker's 16
    assert v["target"].startswith("<= 2 x the fair floor's machine CPU per item")


def test_report_gives_every_scenario_its_cpu_per_item_and_where_it_went() -> None:
    report = with_cpu(full_report())
    text = bench.markdown(report)
    assert "| fair floor (the same work per item, no Faust) | 6250 | 20.0 | 312 | 1.00x | 5.0 | 1.00x |" in text
    assert "| 16.0 | 3.20x |" in text  # one worker per service: 16 ms an item against the floor's 5
    steady = report["results"]["referral_to_page_steady"]
    assert f"| referral to page, steady rate | {steady['n']} |" in text and text.count("| 21.5 |") == 1
    assert ("by process; the rest of the machine's is the kernel's and other processes'): notifier 5.10, "
            "referral-intake 3.65, broker 1 2.50; the fair floor's own process 3.00.") in text
    assert "machine CPU 10.0 ms an encounter (2.50x the fair floor's 4.0)" in text
    assert "What the fair floor still leaves out: one process and no hops" in text
    assert "Idle (10 s, everything started and nothing written): the machine busy 212 ms a second; broker 1 150, api 20." in text


def test_a_report_from_before_the_cpu_figures_still_renders() -> None:
    text = bench.markdown(full_report())  # the baseline run has no CPU per item for its floors or latencies
    assert "What the fair floor still leaves out" in text and "the fair floor's own process" not in text


def test_a_scenario_that_could_not_run_is_reported_as_not_measured_with_why() -> None:
    report = full_report()
    report["results"]["throughput_two_workers"] = {"not_measured": "('notifier#2',) not ready after 300.0s"}
    report["verdicts"] = bench.verdicts(report["results"])  # judged on the layouts that were measured
    assert report["verdicts"]["throughput_vs_fair_floor"]["value"] == (
        report["results"]["throughput"]["messages_per_second"] / 312.5)
    text = bench.markdown(report)
    assert "two workers per service | not measured: ('notifier#2',) not ready after 300.0s |" in text


def test_the_second_workers_row_says_how_long_they_took_to_be_ready() -> None:
    report = full_report()
    report["results"]["throughput_two_workers"]["ready_seconds"] = 41.6
    assert "two workers per service (the second ready in 42 s) |" in bench.markdown(report)
