"""Fixtures for the interop suite.

* ``broker_url`` (session): the AMQP URL of the broker under test. With
  ``AMQPBROKER_INTEROP_URL`` set (e.g. ``amqp://guest:guest@127.0.0.1:5698/``
  for a RabbitMQ) the tests use that broker; otherwise ``own_broker`` starts
  our broker as ``python -m amqpbroker serve`` on a free port (failing with its
  stderr if it exits or does not listen within 10 s) and stops it with SIGTERM
  at the end of the session (SIGKILL after 10 s).
* ``runner``: starts tutorial programs against that broker, kills whatever is
  still running when the test ends, and fails the test if our broker died.
* every interop test is bounded: a watchdog ends the whole run if one test
  takes longer than ``INTEROP_TEST_TIMEOUT`` seconds (default 180), so a CI
  run can never hang here.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .harness import REPO_ROOT, Runner

BROKER_START_TIMEOUT = 10.0
BROKER_STOP_TIMEOUT = 10.0
TEST_TIMEOUT = float(os.environ.get("INTEROP_TEST_TIMEOUT", "180"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _tail(path: Path, limit: int = 8000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return text[-limit:] or "(empty)"


class OwnBroker:
    """Our broker, run as ``python -m amqpbroker serve`` for the session."""

    def __init__(self, proc: subprocess.Popen, argv: list[str], port: int,
                 stderr_path: Path) -> None:
        self.proc = proc
        self.argv = argv
        self.port = port
        self.stderr_path = stderr_path

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def fail_if_dead(self, when: str) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"the broker exited with status {self.proc.returncode} {when}: "
                        f"{' '.join(self.argv)}\n--- stderr ---\n{_tail(self.stderr_path)}",
                        pytrace=False)

    def wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _can_connect("127.0.0.1", self.port):
            self.fail_if_dead(f"before listening on port {self.port}")
            if time.monotonic() > deadline:
                pytest.fail(f"the broker did not listen on port {self.port} within "
                            f"{timeout:.0f} s: {' '.join(self.argv)}\n"
                            f"--- stderr ---\n{_tail(self.stderr_path)}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(BROKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="session")
def own_broker(tmp_path_factory: pytest.TempPathFactory):
    """Our broker process, or None when AMQPBROKER_INTEROP_URL names another broker."""
    if os.environ.get("AMQPBROKER_INTEROP_URL"):
        yield None
        return
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("broker-data")
    logs = tmp_path_factory.mktemp("broker-logs")
    stdout_path, stderr_path = logs / "stdout.log", logs / "stderr.log"
    argv = [sys.executable, "-m", "amqpbroker", "serve", "--management-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--prometheus-port", "0", "--host", "127.0.0.1",
            "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
    broker = OwnBroker(proc, argv, port, stderr_path)
    try:
        broker.wait_listening(BROKER_START_TIMEOUT)
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def broker_url(own_broker: OwnBroker | None) -> str:
    """The AMQP URL of the broker under test."""
    if own_broker is not None:
        return own_broker.url
    external = os.environ["AMQPBROKER_INTEROP_URL"]
    parts = urlsplit(external)
    host, port = parts.hostname or "localhost", parts.port or 5672
    if not _can_connect(host, port):
        pytest.fail(f"AMQPBROKER_INTEROP_URL={external}: nothing listens on {host}:{port}",
                    pytrace=False)
    return external


@pytest.fixture
def runner(broker_url: str, own_broker: OwnBroker | None):
    """Runs tutorial programs against the broker; kills leftovers afterwards and
    fails the test if our broker died during it."""
    if own_broker is not None:
        own_broker.fail_if_dead("before this test")
    r = Runner(broker_url)
    try:
        yield r
    finally:
        r.close()
    if own_broker is not None:
        own_broker.fail_if_dead("during this test")


@pytest.fixture
def quorum_runner(runner: Runner) -> Runner:
    """A runner whose tutorial programs declare hello / task_queue / rpc_queue as durable
    quorum queues, as RabbitMQ's tutorials do today (TUTORIAL_QUEUE_TYPE=quorum)."""
    runner.env["TUTORIAL_QUEUE_TYPE"] = "quorum"
    return runner


@pytest.fixture(autouse=True)
def _interop_test_watchdog():
    """Last line of defence against a hang: every wait in the suite is bounded
    already; if a test still runs past TEST_TIMEOUT, dump the stacks and exit."""
    faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
