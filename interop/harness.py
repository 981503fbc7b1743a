"""Helpers for the interop suite: run tutorial programs as bounded subprocesses,
read their output line by line, and reset broker state with pika.

Nothing here may block without a deadline: every wait takes a timeout, and
every subprocess is killed when its test ends.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

INTEROP_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEROP_DIR.parent
NODE_DIR = INTEROP_DIR / "node"

#: How long a test waits for one expected line or for one program to exit.
WAIT = float(os.environ.get("INTEROP_WAIT", "30"))
#: Each tutorial program exits by itself (status 3) after this many seconds.
PROGRAM_TIMEOUT = float(os.environ.get("INTEROP_PROGRAM_TIMEOUT", "60"))


def require_node() -> str:
    """Return the node executable; FAIL (never skip) when node or amqplib is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` is not on PATH: the amqplib interop tests cannot run "
                    "(install Node.js >= 18)", pytrace=False)
    if not (NODE_DIR / "node_modules" / "amqplib" / "package.json").is_file():
        pytest.fail(f"{NODE_DIR}/node_modules/amqplib is missing: run `npm ci` in "
                    f"{NODE_DIR} (.ci/run does this)", pytrace=False)
    return node


@dataclass(frozen=True)
class Client:
    """One client library's set of tutorial programs."""

    name: str
    directory: Path
    language: str  # "python" or "node"

    def argv(self, program: str, *args: str) -> list[str]:
        if self.language == "node":
            return [require_node(), str(self.directory / f"{program}.js"), *args]
        return [sys.executable, str(self.directory / f"{program}.py"), *args]

    def __str__(self) -> str:
        return self.name


PIKA = Client("pika", INTEROP_DIR / "python_pika", "python")
AIOPIKA = Client("aiopika", INTEROP_DIR / "python_aiopika", "python")
AMQPLIB = Client("amqplib", NODE_DIR, "node")
CLIENTS = (PIKA, AIOPIKA, AMQPLIB)


class Proc:
    """A running program whose stdout/stderr are collected line by line."""

    def __init__(self, runner: Runner, name: str, argv: list[str], env: dict[str, str],
                 cwd: Path) -> None:
        self.runner = runner
        self.name = name
        self.argv = argv
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self._open_streams = 2
        self._popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace",
        )
        self._threads = [
            threading.Thread(target=self._pump, args=(self._popen.stdout, self.stdout),
                             name=f"{name}-stdout", daemon=True),
            threading.Thread(target=self._pump, args=(self._popen.stderr, self.stderr),
                             name=f"{name}-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream, sink: list[str]) -> None:
        try:
            for line in stream:
                with self._cond:
                    sink.append(line.rstrip("\r\n"))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._open_streams -= 1
                self._cond.notify_all()

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def matches(self, pattern: str) -> list[re.Match]:
        regex = re.compile(pattern)
        with self._cond:
            return [m for line in self.stdout if (m := regex.search(line))]

    def wait_for(self, pattern: str, count: int = 1, timeout: float = WAIT) -> list[re.Match]:
        """Wait until `count` stdout lines match `pattern`; return all the matches."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for line in self.stdout if (m := regex.search(line))]
                if len(found) >= count:
                    return found
                if self._open_streams == 0:
                    self._popen.poll()
                    raise AssertionError(
                        f"{self.name} ended after {len(found)} of {count} lines matching "
                        f"{pattern!r}\n{self.runner.dump()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name}: {len(found)} of {count} lines matching {pattern!r} "
                        f"within {timeout:.0f} s\n{self.runner.dump()}")
                self._cond.wait(remaining)

    def wait_ready(self, timeout: float = WAIT) -> None:
        """Wait for the tutorial's " [*] Waiting for ..." / " [x] Awaiting ..." line."""
        self.wait_for(r"^ \[\*\] Waiting for |^ \[x\] Awaiting RPC requests", timeout=timeout)

    def finish(self, timeout: float = WAIT) -> int:
        """Wait for the program to exit (kill it after `timeout`); return its status."""
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"{self.name} did not exit within {timeout:.0f} s\n"
                                 f"{self.runner.dump()}") from None
        for thread in self._threads:
            thread.join(5)
        return self._popen.returncode

    def succeed(self, timeout: float = WAIT) -> Proc:
        """Wait for the program to exit and assert that it exited with status 0."""
        status = self.finish(timeout)
        assert status == 0, f"{self.name} exited with status {status}\n{self.runner.dump()}"
        return self

    def interrupt(self) -> None:
        """CTRL+C, as the tutorials suggest."""
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGINT)

    def close(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()
        try:
            self._popen.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill never takes this long
            pass
        for thread in self._threads:
            thread.join(5)
        for stream in (self._popen.stdout, self._popen.stderr):
            if stream is not None:
                stream.close()

    def describe(self) -> str:
        with self._cond:
            out = "\n".join(f"    | {line}" for line in self.stdout) or "    | (nothing)"
            err = "\n".join(f"    ! {line}" for line in self.stderr[-60:])
        text = f"--- {self.name} (status {self._popen.poll()}): {' '.join(self.argv)}\n{out}"
        return f"{text}\n{err}" if err else text


class Runner:
    """Starts tutorial programs against one broker and cleans them up."""

    def __init__(self, url: str, env: dict[str, str] | None = None) -> None:
        self.url = url
        self.procs: list[Proc] = []
        self.env = dict(env or {})  # given to every program (e.g. TUTORIAL_QUEUE_TYPE)

    def spawn(self, client: Client, program: str, *args: str, count: int | None = None,
              env: dict[str, str] | None = None) -> Proc:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORIAL_")}
        full_env.update(
            AMQP_URL=self.url,
            PYTHONUNBUFFERED="1",
            TUTORIAL_TIMEOUT=str(PROGRAM_TIMEOUT),
        )
        if count is not None:
            full_env["TUTORIAL_COUNT"] = str(count)
        full_env.update(self.env)
        full_env.update(env or {})
        name = f"{client.name}/{program}#{len(self.procs) + 1}"
        cwd = NODE_DIR if client.language == "node" else client.directory
        proc = Proc(self, name, client.argv(program, *args), full_env, cwd)
        self.procs.append(proc)
        return proc

    def run(self, client: Client, program: str, *args: str, timeout: float = WAIT,
            **kwargs) -> Proc:
        """Run a program to completion; it must exit with status 0."""
        return self.spawn(client, program, *args, **kwargs).succeed(timeout)

    def dump(self) -> str:
        return "\n".join(proc.describe() for proc in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.close()


# --- direct broker access (pika) -------------------------------------------

def pika_params(url: str) -> pika.URLParameters:
    """pika parameters with bounded connect, socket and handshake timeouts."""
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 10
    params.stack_timeout = 15
    params.blocked_connection_timeout = 10
    return params


def delete_queues(url: str, *names: str) -> None:
    """Delete queues left by earlier tests (a missing queue is fine)."""
    connection = pika.BlockingConnection(pika_params(url))
    try:
        for name in names:
            channel = connection.channel()
            try:
                channel.queue_delete(queue=name)
            except pika.exceptions.ChannelClosedByBroker:
                continue  # 404 on a broker that does not treat delete as idempotent
            channel.close()
    finally:
        connection.close()


def queue_type(url: str, name: str) -> str:
    """"quorum" if an existing queue takes a durable quorum redeclaration, else
    "classic" (the broker refuses it as inequivalent)."""
    connection = pika.BlockingConnection(pika_params(url))
    try:
        channel = connection.channel()
        try:
            channel.queue_declare(queue=name, durable=True,
                                  arguments={"x-queue-type": "quorum"})
            return "quorum"
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 406 and "x-queue-type" in exc.reply_text:
                return "classic"
            raise
    finally:
        connection.close()


def queue_depth(url: str, name: str) -> int | None:
    """Ready messages in a queue, or None if the queue does not exist."""
    connection = pika.BlockingConnection(pika_params(url))
    try:
        channel = connection.channel()
        try:
            return channel.queue_declare(queue=name, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
    finally:
        connection.close()
