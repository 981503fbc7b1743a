"""`serve` raises its open-files limit to the hard limit at start (amqpbroker/fd_limit.py):
started with a soft limit of 256, it logs what it got and accepts 400 connections."""

from __future__ import annotations

import asyncio
import re
import resource
import subprocess
import sys
import time

from amqpbroker.protocol.frames import PROTOCOL_HEADER


def _low_soft_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def _soft_limit_of(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        line = next(l for l in f if l.startswith("Max open files"))
    return int(line.split()[3])


async def test_serve_raises_its_fd_limit_and_holds_more_connections_than_the_old_one():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard >= 512, "the machine's hard limit is too low for this test"
    proc = subprocess.Popen(
        [sys.executable, "-m", "amqpbroker", "serve", "--in-memory", "--host", "127.0.0.1",
         "--port", "0", "--management-port", "0", "--prometheus-port", "0", "--mqtt-port", "0",
         "--mqtt-ws-port", "0", "--log-level", "info"],
        stderr=subprocess.PIPE, text=True, preexec_fn=_low_soft_limit)
    writers = []
    try:
        assert proc.stderr is not None
        logged, port = "", 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not port:
            line = proc.stderr.readline()
            if "server.fd_limit" in line:
                logged = line
            m = re.search(r"listening on port (\d+)", line)
            if m:
                port = int(m.group(1))
        assert port, "broker did not start"
        assert "before=256" in logged and f"hard={hard}" in logged, logged
        assert _soft_limit_of(proc.pid) == min(hard, 1 << 20)
        for _ in range(400):  # more than the 256 it was started with
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(PROTOCOL_HEADER)
            writers.append((r, w))
        starts = await asyncio.gather(*(asyncio.wait_for(r.read(7), 10) for r, _ in writers))
        assert all(s[:1] == b"\x01" for s in starts)  # a method frame: connection.start
    finally:
        for _, w in writers:
            w.close()
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
