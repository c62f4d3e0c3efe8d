"""The harness's attribution of admitted requests to limit windows, and the report it writes."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.load.client import RunResult
from benchmarks.load.harness import Outcome, Settings, hot_windows, traffic
from benchmarks.load.report import write
from benchmarks.load.stats import Sample, Verdict, summarize


def test_traffic_merges_main_and_hot_streams_in_time_order() -> None:
    times, tags = traffic([(1.0, 4.0)], 2.0)
    assert times == sorted(times)
    assert tags.count("main") == 4 and tags.count("hot") == 2


def test_hot_windows_count_only_admitted_requests_surely_inside_one_window() -> None:
    run = RunResult(
        [
            Sample(0.10, 0.01, 200, tag="hot"),  # window 100
            Sample(0.50, 0.01, 200, tag="hot"),  # window 100
            Sample(0.95, 0.10, 200, tag="hot"),  # sent in 100, answered in 101: not attributed
            Sample(0.60, 0.01, 429, tag="hot"),  # refused: not counted
            Sample(0.70, 0.01, 200, tag="main"),  # not the hot client
            Sample(1.20, 0.01, 200, tag="hot"),  # window 101
        ],
        started_wall=100.0,
        duration=2.0,
    )
    assert hot_windows(run) == {100: 2, 101: 1}


def test_report_writes_markdown_and_json_without_nan(tmp_path: Path) -> None:
    verdict = Verdict()
    verdict.expect("no 5xx", "0", 0, True)
    failed = Verdict()
    failed.expect("p99", "< 750 ms", "1007 ms", False)
    # No answered request: the latency percentiles are NaN, which JSON cannot carry.
    empty = summarize([Sample(0.0, 5.0, 0, "timeout")], 1.0)
    outcomes = [
        Outcome(
            "sustained", "profile", "SLO met", verdict, summarize([Sample(0.0, 0.01, 200)], 1.0).as_dict()
        ),
        Outcome("redis-freeze", "chaos", "bounded", failed, empty.as_dict()),
        Outcome("log-disk-full", "chaos", "skipped", Verdict(skipped="cannot mount a tmpfs here")),
    ]
    settings = Settings(out=tmp_path / "report")
    meta = {"when": "now", "machine": "test", "load_before": "load 0", "command": "run.py --smoke"}
    path = write(outcomes, settings, meta, plots=False)
    text = path.read_text()
    assert "| sustained | **PASS** |" in text and "| redis-freeze | **FAIL** |" in text
    assert "Skipped: cannot mount a tmpfs here" in text

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in report.json")

    data = json.loads((tmp_path / "report" / "report.json").read_text(), parse_constant=refuse)
    assert data["passed"] is False
    assert [s["status"] for s in data["scenarios"]] == ["pass", "fail", "skipped"]
    assert data["scenarios"][1]["summary"]["p99_ms"] is None
