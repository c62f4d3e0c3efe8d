"""Every ```python block in README.md and docs/**/*.md runs, each as its own script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for index, match in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8"))):
            found.append((f"{page.relative_to(ROOT)}#{index + 1}", match.group(1)))
    return found


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[where for where, _ in blocks()])
def test_code_block_runs(where: str, code: str, tmp_path: Path) -> None:
    if "TestClient(" in code and "client=(" in code and not _testclient_takes_client():
        pytest.skip("TestClient(client=...) is newer than this starlette (the lowest-versions run)")
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARDENKIT_")}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"


def _testclient_takes_client() -> bool:
    import inspect

    from starlette.testclient import TestClient

    # tests/conftest.py teaches old TestClients client= for the tests, not for the scripts run here.
    init = TestClient.__init__
    return "client" in inspect.signature(init).parameters and not getattr(init, "hardenkit_shim", False)


def test_every_page_begins_with_a_runnable_example() -> None:
    # Component pages (docs/*.md); operations pages (docs/operations/) are runbooks, not APIs.
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        first_block = text.find("```")
        assert first_block != -1 and text[first_block:].startswith("```python"), page.name


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^```bash\n(.*?)\n```", readme, re.S | re.M)
    assert len(commands) == 2, "the README has exactly two set-up commands"
    demo, tests = commands
    assert "hardenkit demo" in demo
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci.splitlines()
