"""The report of a run: ``report.json`` (everything), ``report.md`` (the tables), and PNG plots.

Plots need matplotlib (``pip install -e '.[bench]'``); without it the report says
so and the rest is written all the same.
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any

from .harness import Outcome, Settings


def _clean(value: Any) -> Any:
    """JSON has no NaN: write it as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(outcomes: list[Outcome], settings: Settings, meta: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = _clean({
        "meta": meta,
        "settings": {"app": settings.app, "workers": settings.workers, "smoke": settings.smoke,
                     "rate": settings.rate, "hot_rate": settings.hot_rate, "slo": settings.slo.__dict__},
        "passed": all(o.verdict.status != "fail" for o in outcomes),
        "scenarios": [
            {"name": o.name, "kind": o.kind, "expectation": o.expectation, "status": o.verdict.status,
             "skipped": o.verdict.skipped, "seconds": o.seconds,
             "checks": [c.__dict__ for c in o.verdict.checks], "notes": o.verdict.notes,
             "summary": o.summary, "workers": o.workers, "extra": o.extra, "timeline": o.timeline,
             "rss": o.rss}
            for o in outcomes
        ],
    })  # fmt: skip
    return cleaned


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def to_markdown(outcomes: list[Outcome], settings: Settings, meta: dict[str, Any], plots: list[str]) -> str:
    lines = [
        f"# Load, soak and chaos report ({'smoke' if settings.smoke else 'full'} run)",
        "",
        f"- when: {meta['when']}; machine: {meta['machine']}; {meta['load_before']} before the run",
        f"- service: `{settings.app}` on {settings.workers} uvicorn workers, Redis for shared limits",
        f"- SLO: availability >= {settings.slo.availability:.1%}, p95 < {settings.slo.p95_ms} ms, "
        f"p99 < {settings.slo.p99_ms} ms, error rate <= {settings.slo.error_rate:.1%}",
        f"- command: `{meta['command']}`",
        "",
        "## Verdicts",
        "",
        "| scenario | verdict | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | 5xx | no answer | s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        s = o.summary
        lines.append(
            f"| {o.name} | **{o.verdict.status.upper()}** | {s.get('requests', '')} | {s.get('throughput', '')} | "
            f"{s.get('p50_ms', '')} | {s.get('p95_ms', '')} | {s.get('p99_ms', '')} | {s.get('max_ms', '')} | "
            f"{s.get('count_5xx', '')} | {sum(s.get('errors', {}).values()) if 'errors' in s else ''} | {o.seconds} |"
        )
    for o in outcomes:
        lines += ["", f"## {o.name}: {o.verdict.status}", "", f"Expectation: {o.expectation}.", ""]
        if o.verdict.skipped:
            lines += [f"Skipped: {o.verdict.skipped}", ""]
            continue
        lines += ["| check | expected | observed | |", "| --- | --- | --- | --- |"]
        lines += [f"| {_cell(c.name)} | {_cell(c.expected)} | {_cell(c.observed)} | {'pass' if c.passed else '**FAIL**'} |"
                  for c in o.verdict.checks]  # fmt: skip
        if o.workers:
            lines += ["", "| worker pid | RSS first KiB | RSS last KiB | RSS max KiB | fds max | threads max |",
                      "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
            lines += [f"| {pid} | {w['rss_kib_first']} | {w['rss_kib_last']} | {w['rss_kib_max']} | "
                      f"{w['fds_max']} | {w['threads_max']} |" for pid, w in o.workers.items()]  # fmt: skip
        if o.summary.get("statuses"):
            lines += ["", f"Status codes (main traffic): {o.summary['statuses']}"]
        if "steps" in o.summary:
            lines += [
                "",
                "| offered req/s | achieved | p95 ms | p99 ms | error rate |",
                "| ---: | ---: | ---: | ---: | ---: |",
            ]
            lines += [f"| {st['rate']} | {st['achieved']} | {st['p95_ms']} | {st['p99_ms']} | {st['error_rate']} |"
                      for st in o.summary["steps"]]  # fmt: skip
        lines += [""] + [f"- {note}" for note in o.verdict.notes]
        lines += [f"\n![{name}]({name})" for name in plots if name.startswith(o.name + ".")]
    return "\n".join(lines) + "\n"


def plot(outcomes: list[Outcome], out: Path) -> tuple[list[str], str]:
    """Latency and RSS over time per scenario as PNG; ([], why) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "plots skipped: matplotlib is not installed (pip install -e '.[bench]')"
    written: list[str] = []
    for o in outcomes:
        if not o.timeline and not o.rss:
            continue
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
        if o.timeline:
            t = [row["t"] for row in o.timeline]
            for key in ("p50_ms", "p95_ms", "p99_ms"):
                top.plot(t, [row[key] for row in o.timeline], label=key)
            top.set_ylabel("latency ms (per s)")
            top.set_yscale("log")
            top.legend(loc="upper right")
            for name, at in o.extra.get("events", {}).items():
                if not name.endswith(":done"):
                    top.axvline(at, color="grey", linestyle=":")
                    top.annotate(name, (at, top.get_ylim()[1]), fontsize=7, rotation=90, va="top")
        by_pid: dict[int, list[dict[str, Any]]] = {}
        for row in o.rss:
            by_pid.setdefault(row["pid"], []).append(row)
        for pid, rows in by_pid.items():
            bottom.plot(
                [r["t"] for r in rows], [r.get("rss_kib", 0) / 1024 for r in rows], label=f"pid {pid}"
            )
        bottom.set_ylabel("RSS MiB")
        bottom.set_xlabel("seconds")
        if by_pid:
            bottom.legend(loc="lower right", fontsize=7)
        fig.suptitle(o.name)
        name = f"{o.name}.png"
        fig.savefig(out / name, dpi=80)
        plt.close(fig)
        written.append(name)
    return written, ""


def write(outcomes: list[Outcome], settings: Settings, meta: dict[str, Any], *, plots: bool = True) -> Path:
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    written, why = plot(outcomes, out) if plots else ([], "plots skipped (--no-plots)")
    if why:
        meta["plots"] = why
    (out / "report.json").write_text(json.dumps(to_json(outcomes, settings, meta), indent=1) + "\n")
    (out / "report.md").write_text(to_markdown(outcomes, settings, meta, written))
    return out / "report.md"


def machine() -> str:
    return f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
