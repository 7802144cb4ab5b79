"""The benchmark with tiny counts, so that it cannot rot: every scenario runs end to end against
the real broker and the services as processes, and the report is written. It times nothing."""

from __future__ import annotations

import json

import pytest

from bench import run as bench
from tests.conftest import broker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_benchmark_smoke_run_reports_every_scenario(kafka_settings, schema_registry_url, tmp_path, monkeypatch) -> None:
    for name, value in broker_env(kafka_settings).items():  # the shared broker, as its administrator
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_settings.kafka_bootstrap_servers)
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", schema_registry_url)
    assert bench.main(["--smoke", "--out", str(tmp_path / "results"), "--report", str(tmp_path / "bench.md")]) == 0
    [result_file] = (tmp_path / "results").glob("*-smoke.json")
    report = json.loads(result_file.read_text())
    results = report["results"]
    assert results["referral_to_page_steady"]["n"] == bench.Counts.smoke().steady
    assert results["referral_to_page_burst"]["n"] == bench.Counts.smoke().burst
    assert results["throughput"]["messages_per_second"] > 0 and results["floor_throughput"]["messages_per_second"] > 0
    two = results["throughput_two_workers"]
    assert "not_measured" not in two and two["ready_seconds"] > 0
    assert (two["referrals"], two["encounters"]) == (bench.Counts.smoke().throughput, bench.Counts.smoke().throughput // 4)
    assert results["hwc_backlog"]["encounters"] == bench.Counts.smoke().backlog and results["hwc_backlog"]["peak_rss_mib"] > 0
    assert set(results["cold_start_seconds"]) == {"api", "referral-intake", "notifier", "handle-with-care"}
    assert results["fair_floor"]["items"] == bench.Counts.smoke().throughput * 5 // 4
    assert results["fair_floor_encounters"]["items"] == bench.Counts.smoke().backlog_floor
    assert results["http_latency_floor"]["n"] == bench.Counts.smoke().steady
    assert set(results["receivers_ceiling"]["per_second"]) == {"sms", "email", "webhook"}
    assert "unwritten" not in results["warm_up"]  # every changelog partition written before anything is timed
    assert results["hwc_backlog"]["seconds"] >= results["hwc_backlog"]["last_notice_seconds"]
    cost = results["sealing_off"]  # a system that seals nothing beside the sealed one, rounds alternating
    assert [r["sealed"] for r in cost["rounds"]] == list(bench.SEALING_ROUNDS)
    assert cost["plain"]["messages_per_second"] > 0 and cost["sealed"]["machine_cpu_ms_per_item"] > 0
    assert cost["referral_to_page_steady"]["n"] == bench.Counts.smoke().steady
    layouts = results["one_process"]  # every service in one process (handoff run all) beside a process each
    assert [r["layout"] for r in layouts["rounds"]] == list(bench.LAYOUT_ROUNDS)
    assert layouts["one"]["messages_per_second"] > 0 and layouts["separate"]["machine_cpu_ms_per_item"] > 0
    # What every scenario cost the machine, beside its speed (#29), and the idle system's cost
    # (a smoke floor of 20 items may take less than one of the kernel's CPU ticks: 0 is a figure there)
    for figures in (results["referral_to_page_steady"], results["throughput"], results["fair_floor"],
                    results["fair_floor_encounters"], results["hwc_backlog"]):
        assert figures["machine_cpu_ms_per_item"] >= 0
    assert {"api", "notifier", "benchmark and receivers"} <= set(results["throughput"]["cpu_ms_per_item_by_process"])
    assert results["idle"]["machine_cpu_ms_per_second"] >= 0 and "api" in results["idle"]["cpu_ms_per_second_by_process"]
    assert "cpu_per_item_vs_fair_floor" in report["verdicts"]
    assert set(report["verdicts"]) == set(bench.TARGETS)
    markdown = (tmp_path / "bench.md").read_text()
    assert "## Against the goals" in markdown and "two workers per service" in markdown
    assert "## What sealing personal values costs" in markdown and "## One process or a process per service" in markdown
    assert "fair floor" in markdown and "latency floor: HTTP in, two hops, HTTP out" in markdown
