"""Processes for the cluster tests: one etcd, N broker nodes, a TCP front to any live node.

Everything listens on 127.0.0.1 with ports picked free at start; data lives under a tmp dir.
Used by tests/cluster/test_failover.py (short) and tests/cluster/soak.py (the long run
documented in docs/clustering.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from base64 import b64decode, b64encode
from typing import Any

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
SECRET = "test-cluster-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdProcess:
    def __init__(self, root: str) -> None:
        if not os.path.exists(ETCD):
            raise RuntimeError("etcd is not installed (Debian package etcd-server)")
        self.client_port, self.peer_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.dir = os.path.join(root, "etcd")
        self.log = open(os.path.join(root, "etcd.log"), "wb")
        self.proc = subprocess.Popen([
            ETCD, "--name", "e1", "--data-dir", self.dir,
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
            "--initial-cluster", f"e1=http://127.0.0.1:{self.peer_port}",
        ], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("health-probe")
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("etcd did not start (see etcd.log)")
                time.sleep(0.1)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(self.url + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def get(self, key: str) -> Any:
        data = self._post("/v3/kv/range", {"key": b64encode(key.encode()).decode()})
        kvs = data.get("kvs") or []
        if not kvs:
            return None
        return json.loads(b64decode(kvs[0]["value"])), int(kvs[0]["create_revision"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Node:
    def __init__(self, root: str, name: str, etcd_url: str, lease_ttl: int = 2,
                 tls: dict[str, str] | None = None) -> None:
        self.name = name
        self.tls = tls  # {"cert", "key", "ca"}: TLS on amqps and the replication port
        self.port, self.repl_port, self.mgmt_port = free_port(), free_port(), free_port()
        self.mqtt_port = free_port()
        self.data_dir = os.path.join(root, name)
        self.log_path = os.path.join(root, f"{name}.log")
        self.etcd_url = etcd_url
        self.lease_ttl = lease_ttl
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False  # SIGSTOPped: a load balancer's health check would skip it
        self.config = os.path.join(root, f"{name}.yaml")
        with open(self.config, "w") as f:
            f.write(f"cluster:\n  lease_ttl: {lease_ttl}\n  lag_timeout: 3\n")

    def start(self) -> None:
        env = dict(os.environ, AMQPBROKER_CLUSTER_SECRET=SECRET)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([
            sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", str(self.mqtt_port),
            "--mqtt-ws-port", "0", "--config", self.config,
            "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", self.data_dir,
            "--cluster", "etcd://" + self.etcd_url.split("//", 1)[1],
            "--node-name", self.name, "--replication-port", str(self.repl_port),
            "--advertise-host", "127.0.0.1", "--log-format", "json", *self._tls_args(),
            "--management-port", str(self.mgmt_port), "--prometheus-port", "0",
        ], stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def _tls_args(self) -> list[str]:
        if not self.tls:
            return []
        return ["--tls-port", str(free_port()), "--tls-cert", self.tls["cert"],
                "--tls-key", self.tls["key"], "--tls-ca", self.tls["ca"]]

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            self.frozen = sig == signal.SIGSTOP
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(30)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        with open(self.log_path, "rb") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


class Cluster:
    def __init__(self, root: str, size: int = 3, lease_ttl: int = 2,
                 tls: dict[str, str] | None = None) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.etcd = EtcdProcess(root)
        self.nodes = [Node(root, f"n{i + 1}", self.etcd.url, lease_ttl, tls)
                      for i in range(size)]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def leader(self) -> tuple[str, int] | None:
        got = self.etcd.get("/amqpbroker/amqpbroker/leader")
        return (got[0]["node"], got[1]) if got else None

    def isr(self) -> list[str]:
        got = self.etcd.get("/amqpbroker/amqpbroker/isr")
        return got[0] if got else []

    def wait_for(self, predicate: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except OSError:
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {what} (leader={self.leader()}, "
                           f"isr={self.isr()})")

    def wait_leader(self, timeout: float = 30, newer_than: int = 0) -> str:
        """The leader's name once it serves (in a term after `newer_than`)."""
        def serving() -> str | None:
            got = self.leader()
            if got is None or got[1] <= newer_than:
                return None
            node = self.node(got[0])
            if not any(e.get("event") == "cluster.leading" and e.get("term") == got[1]
                       for e in node.log_events()):
                return None
            return got[0]
        return self.wait_for(serving, timeout, "a serving leader")

    def wait_isr(self, size: int, timeout: float = 60) -> list[str]:
        return self.wait_for(lambda: len(self.isr()) >= size and self.isr(), timeout,
                             f"an ISR of {size}")

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive:
                assert node.proc is not None
                try:
                    os.kill(node.proc.pid, signal.SIGCONT)  # a frozen node cannot exit
                except OSError:
                    pass
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(20)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()  # reap it: no process outlives the test
        self.etcd.stop()


class Front:
    """A TCP front that forwards each client connection to the first live node: what a load
    balancer does in production (followers forward to the leader themselves)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._rr = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nodes = [n for n in self.cluster.nodes if n.alive and not n.frozen]
        self._rr += 1
        for i in range(len(nodes)):
            node = nodes[(self._rr + i) % len(nodes)]
            try:
                up_r, up_w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", node.port), 2)
                break
            except (OSError, asyncio.TimeoutError):
                continue
        else:
            writer.close()
            return
        self._writers.update((writer, up_w))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._writers.discard(writer)
        self._writers.discard(up_w)

    async def stop(self) -> None:
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            self._server.close()
