"""The deployment templates in deploy/ agree with each other and with what hardenkit does.

They are templates users copy, so a wrong number there is a dropped request in production:
every grace period must outlast hardenkit's shutdown_delay + drain_timeout, probes must
point at paths the health component answers, and the commands must be ones the CLI takes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import hardenkit as hk
from hardenkit.cli import main as cli_main

yaml = pytest.importorskip("yaml")

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def _env(pairs: list[dict[str, str]] | dict[str, str]) -> dict[str, str]:
    if isinstance(pairs, dict):
        return {k: str(v) for k, v in pairs.items()}
    return {item["name"]: item["value"] for item in pairs}


def _shutdown_budget(env: dict[str, str]) -> float:
    """shutdown_delay + drain_timeout as hardenkit parses them from these variables."""

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never called
        pass

    layer: Any = hk.Kit.from_env(env).register(hk.HealthProbeMiddleware).wrap(app)
    while not isinstance(layer, hk.HealthProbeMiddleware):
        layer = layer.app
    return float(layer.shutdown_delay) + float(layer.drain_timeout)


def _demo_args(command: list[str]) -> None:
    """The command is `hardenkit demo` with options the CLI accepts."""
    assert command[:2] == ["hardenkit", "demo"], command
    options = {arg for arg in command[2:] if arg.startswith("--")}
    assert options <= {"--host", "--port", "--redis"}, options


def test_kubernetes_grace_period_outlasts_the_drain() -> None:
    deployment = next(d for d in _documents("kubernetes/deployment.yaml") if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    budget = _shutdown_budget(_env(container["env"]))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + budget
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    _demo_args(container["command"])


def test_kubernetes_probes_point_at_the_health_component() -> None:
    deployment = next(d for d in _documents("kubernetes/deployment.yaml") if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    # Liveness must never depend on Redis: it is the check-free probe.
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True


def test_kubernetes_disruption_budget_and_service_select_the_pods() -> None:
    docs = _documents("kubernetes/deployment.yaml")
    labels = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["metadata"]["labels"]
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    service = next(d for d in docs if d["kind"] == "Service")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    redis = {d["metadata"]["name"] for d in _documents("kubernetes/redis.yaml") if d["kind"] == "Service"}
    command = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    host = re.search(r"redis://([^:/]+)", " ".join(command["command"]))
    assert host is not None and host.group(1) in redis


def test_compose_grace_period_outlasts_the_drain() -> None:
    (compose,) = _documents("docker-compose.yml")
    demo = compose["services"]["demo"]
    grace = float(demo["stop_grace_period"].rstrip("s"))
    assert grace > _shutdown_budget(_env(demo["environment"]))
    _demo_args(demo["command"])
    assert "redis" in demo["depends_on"]


def test_dockerfile_runs_unprivileged_with_a_liveness_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and not users[-1].startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK .*\n?.*/livez", text, re.M)
    env = dict(re.findall(r"(HARDENKIT_[A-Z_]+)=(\S+)", text))
    assert _shutdown_budget(env) < 30  # the docker stop -t the file asks for
    cmd = re.search(r"^CMD \[(.*)\]", text, re.M)
    assert cmd is not None
    _demo_args([part.strip().strip('"') for part in cmd.group(1).split(",")])


def test_systemd_unit_is_hardened_and_waits_for_the_drain() -> None:
    text = (DEPLOY / "systemd" / "hardenkit-demo.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    env = dict(pair.split("=", 1) for pair in settings["Environment"].split())
    assert float(settings["TimeoutStopSec"]) > _shutdown_budget(env)
    for option in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert settings.get(option) in ("yes", "strict"), option
    assert settings["KillSignal"] == "SIGTERM"
    exec_start = settings["ExecStart"].split()
    _demo_args(["hardenkit", *exec_start[1:]])


def test_the_demo_cli_takes_the_templates_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["demo", "--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--host", "--port", "--redis"):
        assert option in usage
