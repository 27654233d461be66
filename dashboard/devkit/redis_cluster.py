"""A local Redis Cluster of 6 nodes (3 masters + 3 replicas) for tests, benches and
scripts/cluster-demo.sh: the machine's `redis-server` (Debian, 7.x) on loopback ports.

    python -m dashboard.devkit.redis_cluster start DIR [--base-port P]   # prints the URL
    python -m dashboard.devkit.redis_cluster stop DIR

`start_cluster` picks a random free base port in 20000–29000 unless given one (each node also
needs its cluster-bus port, +10000), creates the cluster with `redis-cli --cluster create` and
returns once every node says `cluster_state:ok` and every replica's link to its master is up.
The node timeout is 1 s, so `kill_master` (SIGKILL) sees the replica promoted within ~2-3 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

NODES = 6
REPLICAS = 1  # per master: 3 masters + 3 replicas
NODE_TIMEOUT_MS = 1000
BUS_OFFSET = 10_000  # Redis: the cluster bus listens on port + 10000
PORT_RANGE = (20_000, 29_000)
SLOTS = 16_384
START_TRIES = 5
READY_S = 30.0


class ClusterError(RuntimeError):
    pass


def binaries() -> tuple[str, str]:
    """The machine's redis-server and redis-cli (Debian's redis-server package brings both)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        raise ClusterError("redis-server and redis-cli are needed (apt-get install redis-server)")
    return server, cli


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base(rng: random.Random | None = None) -> int:
    """A base port whose NODES ports and their bus ports are free now."""
    rng = rng or random.Random()
    for _ in range(200):
        base = rng.randrange(PORT_RANGE[0], PORT_RANGE[1] - NODES)
        ports = range(base, base + NODES)
        if all(_port_free(p) and _port_free(p + BUS_OFFSET) for p in ports):
            return base
    raise ClusterError("no free port range for a cluster")


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=1,
                       decode_responses=True)


def _ask(port: int, *command: str):
    client = _client(port)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def _info(port: int, section: str) -> dict:
    client = _client(port)
    try:
        return client.info(section)
    finally:
        client.close()


@dataclass
class ClusterHandle:
    """A running local cluster. `procs` is empty for a cluster started by another process
    (the CLI): it is then stopped through the pid files."""

    directory: Path
    ports: list[int]
    procs: dict[int, subprocess.Popen] = field(default_factory=dict)
    killed: list[int] = field(default_factory=list)
    detach: bool = False
    _first_slot: dict[int, int] = field(default_factory=dict)  # of each killed master

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def alive_ports(self) -> list[int]:
        return [p for p in self.ports if p not in self.killed]

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """port → slot ranges [(first, last)] of every master now (asked of a live node)."""
        out: dict[int, list[tuple[int, int]]] = {}
        for first, last, master, *_replicas in _ask(self.alive_ports()[0], "CLUSTER", "SLOTS"):
            out.setdefault(int(master[1]), []).append((int(first), int(last)))
        return out

    def master_of(self, slot: int) -> int:
        for port, ranges in self.masters().items():
            if any(a <= slot <= b for a, b in ranges):
                return port
        raise ClusterError(f"slot {slot} is not served")

    def wait_ready(self, timeout: float = READY_S) -> None:
        """Until every live node says cluster_state:ok, agrees on who serves every slot, and
        every live replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                last = self._not_ready()
            except redis.RedisError as e:
                last = str(e)
            if not last:
                return
            time.sleep(0.1)
        raise ClusterError(f"cluster not ready in {timeout}s: {last}")

    def _not_ready(self) -> str:
        views = set()
        for port in self.alive_ports():
            state = _ask(port, "CLUSTER", "INFO")
            if "cluster_state:ok" not in state:
                return f"{port}: not cluster_state:ok"
            slots = _ask(port, "CLUSTER", "SLOTS")
            views.add(tuple(sorted((int(a), int(b), int(m[1])) for a, b, m, *_ in slots)))
            if sum(int(b) - int(a) + 1 for a, b, *_ in slots) != SLOTS:
                return f"{port}: not every slot served"
            repl = _info(port, "replication")
            if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                return f"{port}: replica link {repl.get('master_link_status')}"
        if len(views) != 1:
            return "nodes disagree on the slot map"
        return ""

    def replica_of(self, master: int) -> int:
        """The port of a live replica of the master on port `master`."""
        for port in self.alive_ports():
            repl = _info(port, "replication")
            if repl.get("role") == "slave" and int(repl.get("master_port", 0)) == master:
                return port
        raise ClusterError(f"{master} has no live replica")

    def pause(self, port: int) -> None:
        """SIGSTOP a node (a replica that stops reading its master's stream: it lags)."""
        self._signal(port, signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self._signal(port, signal.SIGCONT)

    def _signal(self, port: int, sig: int) -> None:
        proc = self.procs.get(port)
        pid = proc.pid if proc is not None else _pid(self.directory, port)
        if pid is None:
            raise ClusterError(f"no process for node {port}")
        os.kill(pid, sig)

    def kill_master(self, slot_or_port: int, timeout: float = READY_S, *,
                    wait: bool = True) -> int:
        """SIGKILL the master serving `slot_or_port` (a slot when < 16384, else a port) and,
        with `wait`, wait until its replica is promoted and the cluster is ok again (returns
        the new master's port; without `wait`, the killed port: `wait_promoted` it)."""
        port = self.master_of(slot_or_port) if slot_or_port < SLOTS else slot_or_port
        if port not in self.masters():
            raise ClusterError(f"{port} is not a master")
        self._first_slot[port] = self.masters()[port][0][0]
        self._kill(port, signal.SIGKILL)
        self.killed.append(port)
        return self.wait_promoted(port, timeout) if wait else port

    def wait_promoted(self, dead: int, timeout: float = READY_S) -> int:
        """Until a replica serves the slots of the killed master `dead` and the cluster is
        ok again; returns the new master's port."""
        slot = self._first_slot[dead]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, ClusterError):
                new = self.master_of(slot)
                if new != dead:
                    self.wait_ready(max(1.0, deadline - time.monotonic()))
                    return new
            time.sleep(0.1)
        raise ClusterError(f"no replica took over from {dead} in {timeout}s")

    def revive(self, port: int, timeout: float = READY_S) -> None:
        """Start a killed node again on its node file: it rejoins as a replica of the master
        that took over its slots (the cluster is whole again once its link is up)."""
        self.procs[port] = _node(binaries()[0], self.directory, port, self.detach)
        if not _up(port, self.procs[port]):
            raise ClusterError(f"node {port} did not start again")
        self.killed.remove(port)
        self.wait_ready(timeout)

    def _kill(self, port: int, sig: int) -> None:
        proc = self.procs.get(port)
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            return
        pid = _pid(self.directory, port)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            _wait_gone(pid)

    def stop(self) -> None:
        """Kill every node (SIGKILL: nothing here is worth keeping, and a SIGTERMed master
        waits for its replicas); remove the node files it wrote (logs are kept)."""
        for port in self.ports:
            if port not in self.killed:
                self._kill(port, signal.SIGKILL)
        for port in self.ports:
            for path in _owned_files(self.directory, port):
                path.unlink(missing_ok=True)
        (self.directory / PORTS_FILE).unlink(missing_ok=True)


PORTS_FILE = "cluster-ports"


def _owned_files(directory: Path, port: int) -> list[Path]:
    return [directory / f"{name}-{port}.{ext}"
            for name, ext in (("nodes", "conf"), ("redis", "pid"), ("dump", "rdb"))]


def _pid(directory: Path, port: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((directory / f"redis-{port}.pid").read_text().strip())
    return None


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until process `pid` (not our child) has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _node(server: str, directory: Path, port: int, detach: bool) -> subprocess.Popen:
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
           "--cluster-config-file", str(directory / f"nodes-{port}.conf"),
           "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no",
           "--repl-diskless-sync-delay", "0", "--dbfilename", f"dump-{port}.rdb", "--dir", str(directory), "--daemonize", "no",
           "--pidfile", str(directory / f"redis-{port}.pid"),
           "--logfile", str(directory / f"redis-{port}.log")]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=detach)


def _up(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False  # did not bind (the port was taken after all)
        with contextlib.suppress(redis.RedisError):
            if _ask(port, "PING"):
                return True
        time.sleep(0.05)
    return False


def start_cluster(directory: Path, base_port: int | None = None, *,
                  detach: bool = False) -> ClusterHandle:
    """Start 6 nodes on base_port..base_port+5 (a random free base when None; retried on a
    port taken meanwhile) and create the cluster. `detach`: the nodes outlive this process
    (the CLI); stop them with `stop_cluster(directory)`."""
    server, cli = binaries()
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(START_TRIES):
        base = base_port if base_port is not None else free_base()
        handle = ClusterHandle(directory, list(range(base, base + NODES)), detach=detach)
        handle.procs = {p: _node(server, directory, p, detach) for p in handle.ports}
        if all(_up(p, proc) for p, proc in handle.procs.items()):
            break
        handle.stop()
        if base_port is not None or attempt == START_TRIES - 1:
            raise ClusterError(f"redis-server did not start on ports {base}..{base + NODES - 1}"
                               f" (see {directory}/redis-*.log)")
    created = subprocess.run(
        [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in handle.ports),
         "--cluster-replicas", str(REPLICAS), "--cluster-yes"],
        capture_output=True, text=True, timeout=60)
    if created.returncode != 0:
        handle.stop()
        raise ClusterError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}"
                           f"{created.stderr[-2000:]}")
    try:
        handle.wait_ready()
    except ClusterError:
        handle.stop()
        raise
    (directory / PORTS_FILE).write_text(" ".join(map(str, handle.ports)))
    return handle


def stop_cluster(directory: Path) -> None:
    """Stop a cluster that `start_cluster(directory, detach=True)` (the CLI) started."""
    directory = directory.resolve()
    ports_file = directory / PORTS_FILE
    if not ports_file.exists():
        raise ClusterError(f"no cluster started in {directory}")
    ports = [int(p) for p in ports_file.read_text().split()]
    ClusterHandle(directory, ports).stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.devkit.redis_cluster",
                                     description="a local 6-node Redis Cluster")
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("directory", type=Path)
    parser.add_argument("--base-port", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            print(start_cluster(args.directory, args.base_port, detach=True).url)
        else:
            stop_cluster(args.directory)
    except ClusterError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
