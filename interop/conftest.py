"""Fixtures for the interop suite.

* ``broker_url`` (session): the AMQP URL of the broker under test. With
  ``AMQPBROKER_INTEROP_URL`` set (e.g. ``amqp://guest:guest@127.0.0.1:5698/``
  for a RabbitMQ) the tests use that broker; otherwise our own broker is
  started as ``python -m amqpbroker serve`` on a free port and stopped at the
  end of the session.
* ``runner``: starts tutorial programs against that broker and kills whatever
  is still running when the test ends.
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


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory):
    external = os.environ.get("AMQPBROKER_INTEROP_URL")
    if external:
        parts = urlsplit(external)
        host, port = parts.hostname or "localhost", parts.port or 5672
        if not _can_connect(host, port):
            pytest.fail(f"AMQPBROKER_INTEROP_URL={external}: nothing listens on "
                        f"{host}:{port}", pytrace=False)
        yield external
        return

    port = _free_port()
    data_dir = tmp_path_factory.mktemp("broker-data")
    logs = tmp_path_factory.mktemp("broker-logs")
    stdout_path, stderr_path = logs / "stdout.log", logs / "stderr.log"
    argv = [sys.executable, "-m", "amqpbroker", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + BROKER_START_TIMEOUT
        while not _can_connect("127.0.0.1", port):
            if proc.poll() is not None:
                pytest.fail(f"the broker exited with status {proc.returncode} before "
                            f"listening on port {port}: {' '.join(argv)}\n"
                            f"--- stderr ---\n{_tail(stderr_path)}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"the broker did not listen on port {port} within "
                            f"{BROKER_START_TIMEOUT:.0f} s: {' '.join(argv)}\n"
                            f"--- stderr ---\n{_tail(stderr_path)}", pytrace=False)
            time.sleep(0.05)
        yield f"amqp://guest:guest@127.0.0.1:{port}/"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(BROKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def runner(broker_url: str):
    r = Runner(broker_url)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(autouse=True)
def _interop_test_watchdog():
    """Last line of defence against a hang: every wait in the suite is bounded
    already; if a test still runs past TEST_TIMEOUT, dump the stacks and exit."""
    faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
