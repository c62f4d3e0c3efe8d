"""``hardenkit keys`` and ``hardenkit auth matrix`` as users run them: real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hardenkit.cli import main

CLI = [sys.executable, "-m", "hardenkit"]


def run(
    *args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_create_list_rotate_revoke_verify(tmp_path: Path) -> None:
    created = run("keys", "create", "--name", "ci", "--role", "operator", "--expires", "90d", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("hkey_") and len(key) == 67
    assert "shown only once" in created.stderr

    listed = run("keys", "list", "--json", cwd=tmp_path)
    records = json.loads(listed.stdout)
    assert [(r["name"], r["roles"], r["state"]) for r in records] == [("ci", ["operator"], "active")]
    assert key not in listed.stdout and "hash" not in records[0]
    table = run("keys", "list", cwd=tmp_path).stdout
    assert "ci" in table and key[5:17] in table and key[18:] not in table

    verified = run("keys", "verify", cwd=tmp_path, stdin=key + "\n")
    assert verified.returncode == 0
    assert json.loads(verified.stdout)["name"] == "ci"

    rotated = run("keys", "rotate", "ci", "--grace", "1h", cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip()
    assert new_key != key
    assert run("keys", "verify", cwd=tmp_path, stdin=key).returncode == 0  # grace
    assert run("keys", "verify", cwd=tmp_path, stdin=new_key).returncode == 0

    file_text = "".join(p.read_text() for p in tmp_path.iterdir() if p.is_file())
    assert key not in file_text and new_key not in file_text

    revoked = run("keys", "revoke", "ci", cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    for old in (key, new_key):
        refused = run("keys", "verify", cwd=tmp_path, stdin=old)
        assert refused.returncode == 1
        assert "revoked" in refused.stderr


def test_verify_refuses_garbage_and_unknown_keys(tmp_path: Path) -> None:
    assert run("keys", "create", "--name", "a", "--role", "readonly", cwd=tmp_path).returncode == 0
    assert run("keys", "verify", cwd=tmp_path, stdin="nonsense").returncode == 1
    from hardenkit.auth import generate_key

    assert run("keys", "verify", cwd=tmp_path, stdin=generate_key()).returncode == 1


def test_errors_are_reported_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "k.json")
    assert main(["keys", "--store", store, "rotate", "nobody"]) == 78
    assert "no active key" in capsys.readouterr().err
    assert main(["keys", "--store", store, "create", "--name", "bad name", "--role", "x"]) == 78
    assert main(["keys", "create"]) == 2
    assert main(["keys", "--store", store, "create", "--name", "a", "--role", "r", "--expires", "soon"]) == 78
    assert "Traceback" not in capsys.readouterr().err


def test_env_store_create_prints_the_variable_to_export(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "--store", "env", "create", "--name", "svc", "--role", "readonly"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert err.startswith("HARDENKIT_APIKEY_SVC='id=" + key[5:17])
    assert key not in err


def test_store_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.json"
    env = {"HARDENKIT_AUTH_STORE": str(path)}
    assert run("keys", "create", "--name", "a", "--role", "readonly", cwd=tmp_path, env=env).returncode == 0
    assert path.exists()


@pytest.mark.slow
def test_concurrent_creates_from_eight_processes_lose_none(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [
                *CLI,
                "keys",
                "--store",
                str(tmp_path / "keys.json"),
                "create",
                "--name",
                f"svc{i}",
                "--role",
                "readonly",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    keys = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        keys.append(out.strip())
    records = json.loads(
        run("keys", "--store", str(tmp_path / "keys.json"), "list", "--json", cwd=tmp_path).stdout
    )
    assert sorted(r["name"] for r in records) == [f"svc{i}" for i in range(8)]
    for key in keys:
        assert (
            run("keys", "--store", str(tmp_path / "keys.json"), "verify", cwd=tmp_path, stdin=key).returncode
            == 0
        )


def test_store_option_after_the_action_and_comma_separated_roles(tmp_path: Path) -> None:
    path = str(tmp_path / "k.json")
    created = run(
        "keys", "create", "--name", "ci", "--role", "operator,readonly", "--file", path, cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    records = json.loads(run("keys", "list", "--json", "--store", path, cwd=tmp_path).stdout)
    assert records[0]["roles"] == ["operator", "readonly"]
    assert not (tmp_path / "hardenkit-keys.json").exists()
