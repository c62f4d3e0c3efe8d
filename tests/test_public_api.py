from __future__ import annotations

import json
import subprocess
import sys

import pytest

import hardenkit as hk


def test_all_is_sorted_and_matches_the_public_names() -> None:
    assert hk.__all__ == sorted(hk.__all__)
    public = {name for name in dir(hk) if not name.startswith("_")} | {"__version__"}
    # Submodules become attributes once imported; they are not public names of the package.
    modules = {"errors", "testing", "cli", "lock", "aio", "logs", "health"}
    assert public - modules == set(hk.__all__)


@pytest.mark.parametrize("name", hk.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(hk, name) is not None


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hk.nope  # noqa: B018


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out))


def test_import_hardenkit_loads_no_optional_backend_nor_web_stack() -> None:
    modules = _imported_after("import hardenkit")
    for heavy in ("limits", "redis", "uvicorn", "starlette", "anyio", "filelock", "pythonjsonlogger"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in modules), heavy


@pytest.mark.parametrize("module", ["hardenkit.lock", "hardenkit.aio", "hardenkit.errors"])
def test_script_helpers_do_not_import_the_web_stack(module: str) -> None:
    modules = _imported_after(f"import {module}")
    assert "starlette" not in modules and "limits" not in modules


def test_version_is_a_string() -> None:
    assert isinstance(hk.__version__, str) and hk.__version__
