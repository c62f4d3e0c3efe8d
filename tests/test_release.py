"""Release and operations material holds together: workflows, the systemd unit, the runbook.

The workflows cannot run here (they need GitHub), so their structure is checked: the
matrix covers every supported Python and OS, every release check has a job, and
publishing goes through trusted publishing. The runbook names metrics, log fields and
probes that must exist in the code, or an operator follows it into nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    return {("on" if key is True else key): value for key, value in loaded.items()}


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") + " " + step.get("uses", "") for step in job["steps"])


def _supported_pythons() -> list[str]:
    # Read as text: tomllib is 3.11+ and the suite runs on 3.10 too.
    text = (ROOT / "pyproject.toml").read_text()
    versions = re.findall(r'"Programming Language :: Python :: (3\.\d+)"', text)
    return sorted(versions, key=lambda v: tuple(map(int, v.split("."))))


def test_the_test_matrix_covers_every_supported_python_and_os() -> None:
    job = _workflow("ci.yml")["jobs"]["test"]
    matrix = job["strategy"]["matrix"]
    assert matrix["python"] == _supported_pythons()
    systems = set(matrix["os"]) | {extra["os"] for extra in matrix.get("include", [])}
    assert {"ubuntu-latest", "macos-latest", "windows-latest"} <= systems
    assert "pytest" in _runs(job)


def test_ci_has_the_lowest_dependency_lint_security_and_package_jobs() -> None:
    jobs = _workflow("ci.yml")["jobs"]
    assert "--resolution lowest-direct" in _runs(jobs["lowest"])
    lint = _runs(jobs["lint"])
    for tool in ("ruff check", "ruff format --check", "mypy", "bandit", "pip-audit"):
        assert tool in lint, tool
    package = _runs(jobs["package"])
    assert "python -m build" in package and "twine check" in package and ".ci/smoke.py" in package


def test_release_publishes_through_trusted_publishing_testpypi_first() -> None:
    workflow = _workflow("release.yml")
    assert workflow["on"]["push"]["tags"] == ["v*"]
    jobs = workflow["jobs"]
    assert jobs["pypi"]["needs"] == "testpypi" and jobs["testpypi"]["needs"] == "build"
    for name in ("testpypi", "pypi"):
        assert jobs[name]["permissions"] == {"id-token": "write"}  # OIDC, no stored token
        assert "pypa/gh-action-pypi-publish" in _runs(jobs[name])
        assert "password" not in str(jobs[name])
    assert "test.pypi.org" in str(jobs["testpypi"])


def test_dependabot_and_pre_commit_configs_parse() -> None:
    dependabot = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in dependabot["updates"]} == {"pip", "github-actions"}
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    ids = {hook["id"] for repo in hooks["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "mypy", "gitleaks", "end-of-file-fixer"} <= ids


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = (ROOT / "deploy" / "systemd" / "hardenkit-demo.service").read_text()
    # verify checks that ExecStart exists; point it at a binary this machine has.
    unit = re.sub(r"^ExecStart=\S+", "ExecStart=" + shutil.which("true"), unit, flags=re.M)  # type: ignore[operator]
    path = tmp_path / "hardenkit-demo.service"
    path.write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "hardenkit-demo.service" in line and "redis-server.service" not in line
    ]
    assert not problems, problems


def _metric_names() -> set[str]:
    from hardenkit.metrics.instruments import NAMES

    return set(NAMES.values())


def test_every_metric_the_runbook_names_exists() -> None:
    text = (ROOT / "docs" / "operations" / "runbook.md").read_text()
    named = set(re.findall(r"\b((?:http|hardenkit)_[a-z_]+_(?:total|seconds|bytes|flight))\b", text))
    assert named, "the runbook names no metric"
    assert named <= _metric_names(), sorted(named - _metric_names())


def test_every_log_field_and_probe_the_runbook_names_exists() -> None:
    text = (ROOT / "docs" / "operations" / "runbook.md").read_text()
    access = (ROOT / "src" / "hardenkit" / "logs" / "access.py").read_text()
    for field in re.findall(r'`"?([a-z_]+)"?: ', text) + re.findall(r"the `([a-z_]+)` field", text):
        assert f'"{field}"' in access, field
    for probe in set(re.findall(r"`(/(?:livez|readyz|healthz))`", text)):
        assert probe in (ROOT / "src" / "hardenkit" / "health" / "middleware.py").read_text()
    # Log lines quoted in the runbook are the ones the code writes.
    storage = (ROOT / "src" / "hardenkit" / "ratelimit" / "storage.py").read_text()
    assert "is unreachable" in storage and "reachable again" in storage
    assert "timed out after" in (ROOT / "src" / "hardenkit" / "lock" / "file.py").read_text()
