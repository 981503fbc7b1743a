"""A private RabbitMQ node for tests (Debian's rabbitmq-server package, installed by
.ci/run): its own node name, ports, data and log dirs and config under a temp dir, so it
never touches a system RabbitMQ on 5672. Missing package: the tests fail, not skip."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RabbitNode:
    def __init__(self, base: Path) -> None:
        if not os.path.exists(SERVER) and shutil.which("rabbitmq-server") is None:
            raise AssertionError("rabbitmq-server is not installed (apt-get install "
                                 "rabbitmq-server; .ci/run does it)")
        self.base = base
        self.port = free_port()
        self.dist_port = free_port()
        self.name = f"amqpbroker-test-{self.port}@localhost"
        base.mkdir(parents=True, exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.port}\nloopback_users = none\n")
        (base / "enabled_plugins").write_text("[].\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 120) -> None:
        env = dict(os.environ, HOME=str(self.base), RABBITMQ_NODENAME=self.name,
                   RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
                   RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
                   RABBITMQ_LOG_BASE=str(self.base / "log"),
                   RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
                   RABBITMQ_PID_FILE=str(self.base / "pid"))
        server = SERVER if os.path.exists(SERVER) else shutil.which("rabbitmq-server")
        self.proc = subprocess.Popen([server], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"RabbitMQ exited with {self.proc.returncode}; logs in "
                                     f"{self.base / 'log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError(f"RabbitMQ did not open port {self.port} in {timeout} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # the node's process group (started by us)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()
