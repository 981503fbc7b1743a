"""Resource attacks against a running broker, each bounded in count and time.

    python -m amqpbroker.fuzz attacks [--scale 1.0] [--json out.json]

Starts `amqpbroker serve --in-memory` as a child process (so its RSS is the broker's
alone), measures a probe client's round-trip latency (publish -> consumer delivery,
aio-pika) with nobody else connected, then under each attack, then after the attackers
leave; and the broker's RSS after each phase. The attacks:

- slowloris: 1,000 connections sending their handshake one byte a second;
- no-handshake: 1,000 connections that send the protocol header and then nothing (the
  10 s handshake timeout closes them);
- queues: one client declaring 100,000 queues (pipelined, nowait), then deleting them;
- channels: one client opening channel_max (2047) channels;
- never-reads: a publisher in confirm mode that never reads its socket (the broker's
  output to it backs up; it must not take memory or the event loop with it).

The probe runs in a process of its own (`--probe-inline`: in this one, as before): the
attackers' own work here (marshalling 100,000 declares, 2,046 channel.opens, reading the
replies) would otherwise hold the event loop the probe's timestamps are taken in, and
count as broker latency.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import time
from typing import Any

from pamqp import commands, frame

from amqpbroker.fuzz.oracle import handshake_bytes
from amqpbroker.protocol.frames import PROTOCOL_HEADER


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    """`serve` as an operator runs it (management API and metrics on, their sampling
    included in what the probe sees), on free ports: 15672 may be taken."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0",
             "--mqtt-ws-port", "0", "--in-memory", "--port", "0",
             "--management-port", str(_free_port()), "--prometheus-port", str(_free_port()),
             "--host", "127.0.0.1", "--log-level", "error"],
            stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()  # type: ignore[union-attr]
            m = re.search(r"listening on port (\d+)", line)
            if m:
                self.port = int(m.group(1))
                return
        raise RuntimeError(f"broker did not start: {line}")

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class Probe:
    """One client connected before the attacks start (as an application would be), timing
    round trips publish -> consumer delivery (aio-pika); p50/p99 in milliseconds."""

    async def connect(self, port: int) -> "Probe":
        import aio_pika

        self.conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/",
                                           timeout=60)
        self.ch = await self.conn.channel()
        self.queue = await self.ch.declare_queue("", exclusive=True)
        self.arrived: asyncio.Queue[float] = asyncio.Queue()

        async def on_message(msg: Any) -> None:
            await self.arrived.put(time.perf_counter() - float(msg.body))

        await self.queue.consume(on_message, no_ack=True)
        return self

    async def measure(self, samples: int = 150, interval: float = 0.05) -> dict[str, float]:
        import aio_pika

        times = []
        for _ in range(samples):
            await self.ch.default_exchange.publish(
                aio_pika.Message(repr(time.perf_counter()).encode()), self.queue.name)
            times.append(await asyncio.wait_for(self.arrived.get(), 120))
            await asyncio.sleep(interval)
        times.sort()
        return {"p50_ms": round(statistics.median(times) * 1000, 2),
                "p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 2),
                # one round trip at a time: a stall shows as one slow sample, whatever its
                # length, so the longest is reported too
                "max_ms": round(times[-1] * 1000, 2),
                "worst5_ms": [round(t * 1000, 1) for t in times[-5:]]}

    async def close(self) -> None:
        await self.conn.close()


class ProbeProcess:
    """A `Probe` in a child process (`python -m amqpbroker.fuzz.attacks --probe PORT`),
    driven over its stdin/stdout: one line `measure` -> one JSON line of figures."""

    async def connect(self, port: int) -> "ProbeProcess":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "amqpbroker.fuzz.attacks", "--probe", str(port),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        line = await asyncio.wait_for(self._line(), 120)
        if line != "ready":
            raise RuntimeError(f"probe did not start: {line!r}")
        return self

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        return (await self.proc.stdout.readline()).decode().strip()

    async def measure(self) -> dict[str, float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"measure\n")
        await self.proc.stdin.drain()
        return json.loads(await asyncio.wait_for(self._line(), 600))

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"quit\n")
        await self.proc.stdin.drain()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def _probe_main(port: int) -> None:
    """The child side of ProbeProcess."""
    probe = await Probe().connect(port)
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if command != "measure":
            break
        print(json.dumps(await probe.measure()), flush=True)
    await probe.close()


async def slowloris(port: int, n: int, seconds: float) -> int:
    """n connections, each sending its handshake one byte a second, for `seconds`."""
    conns = []
    for _ in range(n):
        try:
            conns.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            break
    data = handshake_bytes()
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end and i < len(data):
        for _, w in conns:
            if not w.is_closing():
                w.write(data[i:i + 1])
        i += 1
        await asyncio.sleep(1.0)
    closed = sum(1 for _, w in conns if w.transport.is_closing())  # the broker closed it
    for _, w in conns:
        w.close()
    return closed


async def no_handshake(port: int, n: int) -> list[Any]:
    conns = []
    for _ in range(n):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            break
        w.write(PROTOCOL_HEADER)
        conns.append((r, w))
    return conns


async def _client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(handshake_bytes())
    await w.drain()
    return r, w


def queue_flood(n: int) -> tuple[list[bytes], list[bytes]]:
    """The frames of `many_queues`: n nowait declares and n deletes, in batches of 1,000.
    Built before the attack starts: on a 2-core machine an attacker busy marshalling frames
    takes the CPU the probe needs, and the probe would measure the attacker."""
    def batches(method: Any) -> list[bytes]:
        return [b"".join(frame.marshal(method(queue=f"atk-{i}", nowait=True), 1)
                         for i in range(base, min(n, base + 1000)))
                for base in range(0, n, 1000)]
    return batches(commands.Queue.Declare), batches(commands.Queue.Delete)


async def many_queues(port: int, flood: tuple[list[bytes], list[bytes]]) -> float:
    """Declare the flood's queues (pipelined, nowait), then delete them; returns the
    seconds the declarations took."""
    declares, deletes = flood
    r, w = await _client(port)
    start = time.monotonic()
    drain = asyncio.create_task(_discard(r))
    for batch in declares:
        w.write(batch)
        await w.drain()
    w.write(frame.marshal(commands.Queue.Declare(queue="atk-0", passive=True), 1))
    await w.drain()
    await asyncio.sleep(0.5)
    took = time.monotonic() - start
    for batch in deletes:
        w.write(batch)
        await w.drain()
    # A connection.close answered once everything before it was handled: closing the
    # socket at once would reset it, and the kernel drops what the broker had not read.
    w.write(frame.marshal(commands.Connection.Close(200, "done", 0, 0), 0))
    await w.drain()
    try:
        await asyncio.wait_for(drain, 300)  # until the broker closes the socket
    except asyncio.TimeoutError:
        pass
    w.close()
    return took


async def _discard(r: asyncio.StreamReader) -> None:
    while await r.read(65536):
        pass


async def many_channels(port: int, n: int = 2047) -> int:
    r, w = await _client(port)
    w.write(b"".join(frame.marshal(commands.Channel.Open(), c) for c in range(2, n + 1)))
    await w.drain()
    got = 0
    deadline = time.monotonic() + 60
    buf = b""
    while got < n - 1 and time.monotonic() < deadline:
        buf += await asyncio.wait_for(r.read(65536), 60)
        got = buf.count(b"\x00\x14\x00\x0b")  # Channel.OpenOk
    w.close()
    return got + 1


async def never_reads(port: int, seconds: float) -> dict[str, int]:
    """A confirm-mode publisher of unroutable mandatory messages that never reads its
    socket: each publish makes the broker send a basic.return with the whole message and
    an ack, which pile up on the broker's side of the socket. Returns what the broker took
    in (bytes that left our buffers)."""
    r, w = await _client(port)
    w.write(frame.marshal(commands.Confirm.Select(), 1))
    body = 1000
    one = (frame.marshal(commands.Basic.Publish(routing_key="atk-nowhere", mandatory=True), 1)
           + struct.pack(">BHI", 2, 1, 14) + struct.pack(">HHQH", 60, 0, body, 0) + b"\xce"
           + struct.pack(">BHI", 3, 1, body) + b"x" * body + b"\xce")
    written = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if w.transport.get_write_buffer_size() < 1024 * 1024:
            w.write(one * 50)
            written += len(one) * 50
        await asyncio.sleep(0.001)
    accepted = written - w.transport.get_write_buffer_size()
    w.transport.abort()
    return {"bytes_accepted": accepted, "messages_accepted": accepted // len(one)}


async def run(scale: float = 1.0, probe_inline: bool = False) -> dict[str, Any]:
    broker = BrokerProcess()
    out: dict[str, Any] = {"probe": "inline" if probe_inline else "own process"}
    n = int(1000 * scale)

    async def phase(name: str, **extra: Any) -> None:
        out[name] = {**await p.measure(), **extra, "rss_mib": round(broker.rss_mib(), 1)}

    try:
        p = await (Probe() if probe_inline else ProbeProcess()).connect(broker.port)
        await phase("baseline")
        t = asyncio.create_task(slowloris(broker.port, n, 20))
        await asyncio.sleep(2)
        await phase("slowloris", connections=n)
        out["slowloris"]["closed_by_broker"] = await t
        conns = await no_handshake(broker.port, n)
        await phase("no_handshake", connections=len(conns))
        await asyncio.sleep(11)  # handshake_timeout is 10 s
        eofs = await asyncio.gather(*(_eof(r) for r, _ in conns))
        out["no_handshake"]["closed_by_broker_after_timeout"] = sum(eofs)
        for _, w in conns:
            w.close()
        flood = queue_flood(int(100_000 * scale))
        q = asyncio.create_task(many_queues(broker.port, flood))
        await phase("queues", declared=int(100_000 * scale))
        out["queues"]["declare_seconds"] = round(await q, 1)
        out["queues"]["rss_after_declares_mib"] = round(broker.rss_mib(), 1)
        c = asyncio.create_task(many_channels(broker.port))
        await phase("channels")
        out["channels"]["opened"] = await c
        nr = asyncio.create_task(never_reads(broker.port, 15))
        await phase("never_reads")
        out["never_reads"].update(await nr)
        await asyncio.sleep(5)
        await phase("after")
        await p.close()
        out["max_rss_mib"] = max(v.get("rss_after_declares_mib", v["rss_mib"])
                                 for v in out.values() if isinstance(v, dict))
        base = out["baseline"]["p99_ms"]
        out["p99_ratio"] = {k: round(v["p99_ms"] / base, 2) for k, v in out.items()
                            if isinstance(v, dict) and "p99_ms" in v}
    finally:
        broker.stop()
    return out


async def _eof(r: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(r.read(65536), 0.5)
        return r.at_eof()
    except (asyncio.TimeoutError, ConnectionError):
        return r.at_eof()


def main(scale: float, json_path: str | None, probe_inline: bool = False) -> int:
    result = asyncio.run(run(scale, probe_inline))
    text = json.dumps(result, indent=1)
    print(text)
    if json_path:
        with open(json_path, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":  # the probe's child process (ProbeProcess)
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        asyncio.run(_probe_main(int(sys.argv[2])))
    else:
        sys.exit("usage: python -m amqpbroker.fuzz attacks (this entry is the probe's)")
