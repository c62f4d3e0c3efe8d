"""SLOs: burn-rate arithmetic, the rules (promtool when present), the dashboard, the slo command."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.utils import floatToGoString

import hardenkit as hk
from hardenkit.cli import main
from hardenkit.errors import ConfigurationError
from hardenkit.metrics import BURN_WINDOWS, grafana_dashboard, prometheus_rules, slos_from_env
from hardenkit.metrics.instruments import NAMES
from hardenkit.metrics.rules import le_label, rule_groups
from hardenkit.metrics.slo import parse_duration

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)


def alerts(slo: hk.SLO) -> list[dict[str, Any]]:
    groups = rule_groups([slo])["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def thresholds(slo: hk.SLO, sli: str = "availability") -> dict[str, float]:
    found: dict[str, float] = {}
    for rule in alerts(slo):
        if rule["labels"]["sli"] != sli:
            continue
        numbers = re.findall(r"> ([0-9.e-]+)", rule["expr"])
        assert len(set(numbers)) == 1, rule["expr"]  # long and short windows share the threshold
        found[rule["labels"]["long_window"]] = float(numbers[0])
    return found


# -- arithmetic -----------------------------------------------------------------------------


def test_burn_rates_for_a_30_day_window_are_the_sre_workbooks() -> None:
    window = parse_duration("30d")
    assert [round(burn.burn_rate(window), 9) for burn in BURN_WINDOWS] == [14.4, 6.0, 3.0, 1.0]
    assert [(burn.long, burn.short) for burn in BURN_WINDOWS] == [
        ("1h", "5m"),
        ("6h", "30m"),
        ("1d", "2h"),
        ("3d", "6h"),
    ]


def test_alert_thresholds_for_99_9_percent() -> None:
    assert thresholds(hk.SLO("api", objective=0.999)) == {"1h": 0.0144, "6h": 0.006, "1d": 0.003, "3d": 0.001}


def test_alert_thresholds_for_99_5_percent() -> None:
    assert thresholds(hk.SLO("api", objective=0.995)) == {"1h": 0.072, "6h": 0.03, "1d": 0.015, "3d": 0.005}


def test_a_latency_objective_uses_the_percentile_as_its_target() -> None:
    # p95 under 100 ms: 5% of requests may be slower; fast burn at 14.4 x 5%.
    assert thresholds(hk.SLO("api", objective=None, latency_ms=100, percentile=0.95), "latency") == {
        "1h": 0.72, "6h": 0.3, "1d": 0.15, "3d": 0.05,
    }  # fmt: skip


def test_burn_rates_follow_the_window() -> None:
    # 2% of a 7-day budget in 1h is a 3.36x burn, so 99.9% pages above 0.336%.
    assert thresholds(hk.SLO("api", objective=0.999, window="7d"))["1h"] == 0.00336


def test_budget_left() -> None:
    objective = hk.SLO("api", objective=0.999).objectives[0]
    assert objective.budget_left(0, 1000) == 1.0
    assert objective.budget_left(1, 2000) == pytest.approx(0.5)
    assert objective.budget_left(3, 1000) == pytest.approx(-2.0)
    assert objective.budget_left(0, 0) is None


# -- the SLO model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"objective": 1.0},
        {"objective": 0},
        {"objective": 99.9},
        {"objective": True},
        {"percentile": 1.5, "latency_ms": 100},
        {"latency_ms": -5},
        {"window": "30x"},
        {"window": "0d"},
        {"objective": None},
        {"routes": ["items"]},
    ],
)
def test_bad_slos_say_what_to_write(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        hk.SLO("api", **kwargs)


def test_a_bad_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="SLO name"):
        hk.SLO('api"} or vector(1)')


def test_an_slo_from_text_and_from_the_environment() -> None:
    parsed = hk.SLO.parse(
        "checkout:objective=0.995,latency_ms=250,percentile=0.99,window=7d,routes=/cart|/pay/{id}"
    )
    assert parsed == hk.SLO("checkout", 0.995, 250, 0.99, "7d", ("/cart", "/pay/{id}"))
    assert slos_from_env({"HARDENKIT_SLO_API": "objective=0.999", "OTHER": "x"}) == [hk.SLO("api", 0.999)]
    with pytest.raises(ConfigurationError, match="HARDENKIT_SLO_API"):
        slos_from_env({"HARDENKIT_SLO_API": "objective=high"})
    with pytest.raises(ConfigurationError, match="unknown option"):
        hk.SLO.parse("api:target=0.9")


# -- the rules --------------------------------------------------------------------------------


SLOS = [
    hk.SLO("api", objective=0.999, latency_ms=100, percentile=0.95),
    hk.SLO("checkout", objective=0.995, routes=("/cart", "/pay/{id}")),
]


def test_the_rules_are_well_formed() -> None:
    document = json.loads(prometheus_rules(SLOS, format="json"))
    metric_names = set(NAMES.values()) | {
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_count",
    }
    recorded: set[str] = set()
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        for rule in group["rules"]:
            expr = rule["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")
            if "record" in rule:
                assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["record"])
                recorded.add(rule["record"])
            else:
                assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
                assert re.fullmatch(r"\d+[mhd]", rule["for"])
                assert rule["labels"]["severity"] in ("page", "ticket")
            assert set(rule["labels"]) >= {"slo", "sli"}
            for name in re.findall(r"\b([a-z_][a-z0-9_:]*)(?=\{|\[| >| /|$)", expr):
                if name in (
                    "sum",
                    "rate",
                    "vector",
                    "or",
                    "and",
                    "le",
                    "route",
                    "status_class",
                    "slo",
                    "sli",
                ):
                    continue
                assert name in metric_names or name in recorded, (name, expr)
    assert len([g for g in document["groups"] if g["name"].endswith("-alerts")]) == 2


def test_the_latency_rules_read_the_bucket_prometheus_client_writes() -> None:
    for seconds in (0.1, 0.25, 0.5, 1.0, 2.0, 0.042, 10.0):
        assert le_label(seconds) == floatToGoString(seconds)  # type: ignore[no-untyped-call]
    exprs = [
        r["expr"]
        for g in json.loads(prometheus_rules([SLOS[0]], format="json"))["groups"]
        for r in g["rules"]
    ]
    assert any('le="0.1"' in expr for expr in exprs)


@needs_promtool
def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(prometheus_rules(SLOS))
    result = subprocess.run(
        [PROMTOOL or "", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _series(route: str, status: str, per_minute: int, minutes: int) -> dict[str, str]:
    klass = status[0] + "xx"
    return {
        "series": f'http_requests_total{{method="GET",route="{route}",status="{status}",status_class="{klass}"}}',
        "values": f"0+{per_minute}x{minutes}",
    }


def _expected(slo: hk.SLO, long_window: str) -> dict[str, Any]:
    rule = next(
        r
        for r in alerts(slo)
        if r["labels"]["long_window"] == long_window and r["labels"]["sli"] == "availability"
    )
    return {"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}


@needs_promtool
def test_promtool_fires_the_right_alerts_on_synthetic_traffic(tmp_path: Path) -> None:
    # 99.9% for /pay/{id}: 2% errors is a 20x burn (fast alert at 10 min); 1% is 10x: not fast
    # (14.4x), but the 6h alert (6x) fires after its 15 minutes. Other routes' errors don't count.
    slo = hk.SLO("pay", objective=0.999, routes=("/pay/{id}",))
    (tmp_path / "rules.yml").write_text(prometheus_rules([slo]))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    _series("/pay/{id}", "200", 980, 60),
                    _series("/pay/{id}", "500", 20, 60),
                    _series("/other", "500", 1000, 60),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "PayAvailabilityErrorBudgetBurn",
                        "exp_alerts": [_expected(slo, "1h")],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [_series("/pay/{id}", "200", 990, 60), _series("/pay/{id}", "500", 10, 60)],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "PayAvailabilityErrorBudgetBurn", "exp_alerts": []},
                    {
                        "eval_time": "25m",
                        "alertname": "PayAvailabilityErrorBudgetBurn",
                        "exp_alerts": [_expected(slo, "6h")],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [_series("/pay/{id}", "200", 1000, 60)],
                "promql_expr_test": [
                    {
                        "expr": 'hardenkit_slo:error_budget_remaining:ratio{slo="pay"}',
                        "eval_time": "30m",
                        "exp_samples": [
                            {
                                "labels": 'hardenkit_slo:error_budget_remaining:ratio{slo="pay",sli="availability"}',
                                "value": 1,
                            }
                        ],
                    }
                ],
            },
        ],
    }
    (tmp_path / "test.yml").write_text(json.dumps(test))
    result = subprocess.run(
        [PROMTOOL or "", "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the dashboard ------------------------------------------------------------------------------


def test_the_dashboard_has_grafanas_basics_and_every_panel_the_issue_lists() -> None:
    dashboard = json.loads(json.dumps(grafana_dashboard(SLOS)))
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert isinstance(dashboard["uid"], str) and 0 < len(dashboard["uid"]) <= 40
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")) and grid["x"] + grid["w"] <= 24
        assert panel["type"] in ("timeseries", "stat", "gauge", "table")
        assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"])
    titles = " | ".join(panel["title"].lower() for panel in dashboard["panels"])
    for wanted in ("request rate", "error rate", "p50", "p95", "p99", "budget remaining", "burn rate",
                   "rate-limit", "in flight", "cpu", "memory"):  # fmt: skip
        assert wanted in titles, wanted


# -- the command ----------------------------------------------------------------------------------


def test_slo_rules_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["slo", "rules", "--slo", "api:objective=0.995", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["groups"][0]["name"] == "hardenkit-slo-api-recording"
    out = tmp_path / "rules.yml"
    assert main(["slo", "rules", "--slo", "api", "-o", str(out)]) == 0
    assert out.read_text().startswith("groups:\n")


def test_slo_dashboard_command_and_slos_from_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_slos.py").write_text("import hardenkit as hk\nSLOS = [hk.SLO('web', objective=0.99)]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["slo", "dashboard", "--from", "my_slos:SLOS", "--title", "Web"]) == 0
    dashboard = json.loads(capsys.readouterr().out)
    assert dashboard["title"] == "Web" and "web" in dashboard["description"]


def test_slo_command_errors(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("HARDENKIT_SLO_")]:
        monkeypatch.delenv(name)
    assert main(["slo", "rules"]) == 2
    assert "no SLO given" in capsys.readouterr().err
    assert main(["slo", "rules", "--slo", "api:objective=2"]) == 2
    assert main(["slo", "rules", "--from", "nope"]) == 2
    monkeypatch.setenv("HARDENKIT_SLO_API", "objective=0.99")
    assert main(["slo", "rules"]) == 0
