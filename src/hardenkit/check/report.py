"""The report's three forms: a table for people (colour on a terminal), JSON, and JUnit XML for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from .model import CheckResult, Report

__all__ = ["render", "render_error", "to_json", "to_junit", "to_table"]

_COLOURS = {"pass": "\033[32m", "fail": "\033[31m", "skip": "\033[2m", "warn": "\033[33m"}
_RESET = "\033[0m"
_SHOWN = 10  # violations listed per check in the table; JSON and JUnit have them all


def _label(result: CheckResult) -> str:
    if result.status == "fail" and result.spec.severity == "warning":
        return "warn"
    return result.status


def to_table(report: Report, *, colour: bool = False) -> str:
    def paint(text: str, label: str) -> str:
        return f"{_COLOURS[label]}{text}{_RESET}" if colour else text

    width = max(len(r.id) for r in report.results) if report.results else 10
    lines = [
        f"hardenkit check {report.target}: {report.requests} requests, {len(report.endpoints)} endpoint(s)"
    ]
    for result in report.results:
        label = _label(result)
        status = paint(f"{label.upper():<4}", label)
        lines.append(f"  {status}  {result.id:<{width}}  {result.spec.title}")
        if result.detail:
            lines.append(f"        {'':<{width}}  {result.detail}")
        lines += [f"        {'':<{width}}  - {violation}" for violation in result.violations[:_SHOWN]]
        if len(result.violations) > _SHOWN:
            lines.append(f"        {'':<{width}}  ... and {len(result.violations) - _SHOWN} more")
        if result.status == "fail":
            lines.append(f"        {'':<{width}}  fix: {result.spec.fix}")
    lines += [f"  note: {note}" for note in report.notes]
    counts = report.counts()
    summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
    lines.append(paint(summary, "fail" if report.failed() else "pass"))
    return "\n".join(lines)


def to_json(report: Report) -> str:
    document: dict[str, Any] = {
        "target": report.target,
        "requests": report.requests,
        "endpoints": report.endpoints,
        "notes": report.notes,
        "summary": {**report.counts(), "ok": not report.failed()},
        "checks": [
            {
                "id": r.id,
                "title": r.spec.title,
                "severity": r.spec.severity,
                "status": r.status,
                "detail": r.detail,
                "violations": r.violations,
                "fix": r.spec.fix,
            }
            for r in report.results
        ],
    }
    return json.dumps(document, indent=2)


def to_junit(report: Report) -> str:
    """One test suite, one test case per check: failures for failed checks, skipped for skipped ones."""
    counts = report.counts()
    suite = ET.Element(
        "testsuite",
        {
            "name": "hardenkit check",
            "tests": str(len(report.results)),
            "failures": str(counts["fail"]),
            "errors": "0",
            "skipped": str(counts["skip"]),
        },
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", {"name": "target", "value": report.target})
    ET.SubElement(properties, "property", {"name": "requests", "value": str(report.requests)})
    for result in report.results:
        case = ET.SubElement(suite, "testcase", {"classname": "hardenkit.check", "name": result.id})
        if result.status == "fail":
            failure = ET.SubElement(
                case,
                "failure",
                {
                    "message": f"{result.spec.title}: {len(result.violations)} violation(s)",
                    "type": result.spec.severity,
                },
            )
            failure.text = "\n".join([*result.violations, f"fix: {result.spec.fix}"])
        elif result.status == "skip":
            ET.SubElement(case, "skipped", {"message": result.detail})
        elif result.detail:
            ET.SubElement(case, "system-out").text = result.detail
    root = ET.Element("testsuites", {"name": "hardenkit check"})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_error(target: str, message: str, fmt: str) -> str:
    """A report that says the check could not run (exit status 2): JSON, or JUnit with one error."""
    if fmt == "json":
        return json.dumps(
            {"target": target, "error": message, "summary": {"ok": False}, "checks": []}, indent=2
        )
    suite = ET.Element(
        "testsuite", {"name": "hardenkit check", "tests": "1", "failures": "0", "errors": "1", "skipped": "0"}
    )
    case = ET.SubElement(suite, "testcase", {"classname": "hardenkit.check", "name": "connection"})
    ET.SubElement(case, "error", {"message": message, "type": "CheckError"}).text = message
    root = ET.Element("testsuites", {"name": "hardenkit check"})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(report: Report, fmt: str, *, colour: bool = False) -> str:
    if fmt == "json":
        return to_json(report)
    if fmt == "junit":
        return to_junit(report)
    return to_table(report, colour=colour)
