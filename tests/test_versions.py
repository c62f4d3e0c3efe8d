"""The README's version table states the floors pyproject declares (and so the lowest-versions CI run uses)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# README row name -> (distribution, extra or None)
ROWS = {
    "starlette": ("starlette", None),
    "limits": ("limits", None),
    "anyio": ("anyio", None),
    "python-json-logger": ("python-json-logger", None),
    "filelock": ("filelock", None),
    "redis (extra `redis`)": ("redis", "redis"),
    "valkey (extra `valkey`)": ("valkey", "valkey"),
}


def _floors() -> dict[tuple[str, str | None], str]:
    floors: dict[tuple[str, str | None], str] = {}
    for requirement in metadata.requires("hardenkit") or []:
        match = re.match(r"([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9.]*)", requirement)
        if match is None or "python_version" in requirement:
            continue  # a floor for some Pythons only (filelock on 3.11+) is stated beside the main one
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
        floors[(match.group(1).lower(), extra.group(1) if extra else None)] = match.group(2)
    return floors


def _table() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Supported versions") :]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("dependency", "---"):
            rows[cells[0]] = cells[1]
    return rows


@pytest.mark.parametrize("row", sorted(ROWS))
def test_the_readme_states_the_declared_floor(row: str) -> None:
    distribution, extra = ROWS[row]
    floor = _floors()[(distribution, extra)]
    assert _table()[row].split()[0] == floor, (
        f"README says {_table()[row]!r}, pyproject {distribution}>={floor}"
    )


def test_a_floor_for_some_pythons_is_stated_too() -> None:
    conditional = [
        r for r in metadata.requires("hardenkit") or [] if "python_version" in r and "extra" not in r
    ]
    for requirement in conditional:
        name, floor = re.match(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9.]*)", requirement).groups()  # type: ignore[union-attr]
        assert floor in _table()[name], (name, floor)


def test_the_readme_states_the_python_and_fastapi_floors() -> None:
    requires_python = metadata.metadata("hardenkit")["Requires-Python"]
    assert _table()["Python"].split()[0] == requires_python.removeprefix(">=")
    fastapi = _floors()[("fastapi", "test")]
    assert _table()["FastAPI (optional)"].startswith(fastapi)


def test_the_lowest_versions_run_is_in_ci() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "--resolution lowest-direct" in ci and ".venv-lowest/bin/python -m pytest" in ci
