"""Helpers for the ecosystem tests (Celery, kombu, FastStream, aio-pika patterns,
pika, amqplib and amqp-tools beyond the tutorials).

* ``Background``: a subprocess whose stdout and stderr are collected together,
  line by line, with bounded waits (Celery workers log to stderr).
* ``RestartableBroker`` and the ``restartable_broker`` fixture: a broker that a
  test may stop and start again on the same port with the same data
  directory, to check that clients reconnect and that durable queues and their
  persistent messages survive. Against our broker it is a separate
  ``python -m amqpbroker serve`` subprocess (the session broker is never
  restarted). With ``AMQPBROKER_INTEROP_URL`` set the tests that need it are
  skipped, unless ``AMQPBROKER_INTEROP_STOP_CMD`` and
  ``AMQPBROKER_INTEROP_START_CMD`` are shell commands that stop and start that
  broker (e.g. ``rabbitmqctl -n eco@localhost stop_app`` / ``start_app``).
* ``unique()``: names that cannot collide with leftovers of earlier runs on a
  long-lived broker.

Nothing here blocks without a deadline.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest

from .harness import REPO_ROOT, WAIT, pika_params  # noqa: F401  (re-exported to tests)

EXTERNAL_URL_ENV = "AMQPBROKER_INTEROP_URL"
STOP_CMD_ENV = "AMQPBROKER_INTEROP_STOP_CMD"
START_CMD_ENV = "AMQPBROKER_INTEROP_START_CMD"


#: True when the tests run against our own broker (not AMQPBROKER_INTEROP_URL).
OWN_BROKER = not os.environ.get(EXTERNAL_URL_ENV)


def unique(prefix: str) -> str:
    return f"interop.{prefix}.{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or 5672


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Background:
    """A subprocess with its stdout and stderr merged and collected line by line."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None,
                 cwd: Path | str | None = None) -> None:
        self.name = name
        self.argv = argv
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.popen = subprocess.Popen(
            argv, cwd=cwd or REPO_ROOT, env=full_env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", errors="replace",
        )
        self._thread = threading.Thread(target=self._pump, name=f"{name}-output", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for line in self.popen.stdout:
                with self._cond:
                    self.lines.append(line.rstrip("\r\n"))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def describe(self, limit: int = 120) -> str:
        with self._cond:
            tail = self.lines[-limit:]
        body = "\n".join(f"    | {line}" for line in tail) or "    | (nothing)"
        return f"--- {self.name} (pid {self.pid}, status {self.popen.poll()}): " \
               f"{' '.join(self.argv)}\n{body}"

    def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match:
        """Wait for an output line matching `pattern` (searched in every line so far)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := regex.search(line):
                        return m
                if self._eof:
                    raise AssertionError(f"{self.name} ended without printing {pattern!r}\n"
                                         f"{self.describe()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{self.name} printed no {pattern!r} within "
                                         f"{timeout:.0f} s\n{self.describe()}")
                self._cond.wait(remaining)

    def wait_exit(self, timeout: float = WAIT) -> int:
        try:
            status = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout:.0f} s\n"
                                 f"{self.describe()}") from None
        self._thread.join(5)
        return status

    def send_signal(self, signum: int) -> None:
        if self.alive:
            self.popen.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        """Ask the program to stop; kill it if it is still running after `timeout`."""
        if self.alive:
            self.popen.send_signal(signum)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.kill()

    def kill(self) -> int | None:
        if self.alive:
            self.popen.kill()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill never takes this long
            pass
        self._thread.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return self.popen.returncode


# --- a broker that can be restarted ---------------------------------------------

class RestartableBroker:
    """Stop and start the broker under test on the same port (see the module doc)."""

    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.external = os.environ.get(EXTERNAL_URL_ENV)
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        if self.external:
            self.host, self.port = host_port(self.external)
            self.url = self.external
        else:
            self.host, self.port = "127.0.0.1", free_port()
            self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "amqpbroker", "serve", "--management-port", "0", "--prometheus-port", "0", "--host", "127.0.0.1",
                "--port", str(self.port), "--data-dir", str(self.data_dir),
                "--mqtt-port", "0", "--mqtt-ws-port", "0",
                "--log-level", "warning"]

    def _stderr_path(self) -> Path:
        return self.log_dir / f"broker-{self.starts}.stderr"

    def _tail(self) -> str:
        try:
            return self._stderr_path().read_text(errors="replace")[-6000:] or "(empty)"
        except OSError:
            return "(no output)"

    def start(self, timeout: float = 20) -> None:
        self.starts += 1
        if self.external:
            _run_shell(os.environ[START_CMD_ENV], timeout=90)
        else:
            with open(self._stderr_path(), "wb") as err:
                self.proc = subprocess.Popen(self.argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while not self.accepts_amqp():
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"the restartable broker exited with status {self.proc.returncode}"
                            f": {' '.join(self.argv)}\n--- stderr ---\n{self._tail()}",
                            pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"the restartable broker did not accept AMQP connections on port "
                            f"{self.port} within {timeout:.0f} s\n{self._tail()}", pytrace=False)
            time.sleep(0.1)

    def accepts_amqp(self) -> bool:
        if not can_connect(self.host, self.port):
            return False
        params = pika.URLParameters(self.url)
        params.connection_attempts = 1
        params.socket_timeout = 2
        params.stack_timeout = 4
        try:
            pika.BlockingConnection(params).close()
        except pika.exceptions.AMQPError:
            return False
        return True

    def stop(self, timeout: float = 15) -> None:
        if self.external:
            _run_shell(os.environ[STOP_CMD_ENV], timeout=90)
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                pytest.fail(f"the broker did not stop within {timeout:.0f} s of SIGTERM\n"
                            f"{self._tail()}", pytrace=False)
        wait_until(lambda: not can_connect(self.host, self.port), 20,
                   f"port {self.port} to close")

    @property
    def running(self) -> bool:
        if self.external:
            return can_connect(self.host, self.port)
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        if self.external:
            if not self.running:
                _run_shell(os.environ[START_CMD_ENV], timeout=90)
            return
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _run_shell(command: str, timeout: float) -> None:
    done = subprocess.run(command, shell=True, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"`{command}` exited with {done.returncode}:\n{done.stdout}\n{done.stderr}",
                    pytrace=False)


@pytest.fixture
def restartable_broker(tmp_path: Path):
    """A broker that the test may stop and start again on the same port."""
    if os.environ.get(EXTERNAL_URL_ENV) and not (os.environ.get(STOP_CMD_ENV)
                                                  and os.environ.get(START_CMD_ENV)):
        pytest.skip(f"{EXTERNAL_URL_ENV} is set: this test restarts the broker, which needs "
                    f"{STOP_CMD_ENV} and {START_CMD_ENV}")
    data_dir = tmp_path / "data"
    log_dir = tmp_path / "logs"
    data_dir.mkdir()
    log_dir.mkdir()
    broker = RestartableBroker(data_dir, log_dir)
    if not broker.external:
        broker.start()
    try:
        yield broker
    finally:
        broker.close()


# --- direct broker access (pika) --------------------------------------------------

def delete_entities(url: str, queues: tuple[str, ...] = (),
                    exchanges: tuple[str, ...] = ()) -> None:
    """Delete queues and exchanges left by a test (missing ones are fine)."""
    connection = pika.BlockingConnection(pika_params(url))
    try:
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in names:
                channel = connection.channel()
                try:
                    if kind == "queue":
                        channel.queue_delete(queue=name)
                    else:
                        channel.exchange_delete(exchange=name)
                except pika.exceptions.ChannelClosedByBroker:
                    continue
                channel.close()
    finally:
        connection.close()
