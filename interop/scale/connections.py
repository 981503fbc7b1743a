"""Connections axis: what N open AMQP connections cost to open, to hold, and to keep lightly busy.

    python interop/bench_scale.py connections [--steps 100,1000,3000,10000]

Per step N and broker, a fresh broker and, in a child process of its own (so that this
process's N sockets do not slow its event loop), a probe client: aio-pika publishing to its
own exclusive queue and timing each message's round trip to its own consumer
(`amqpbroker.fuzz.attacks.Probe`), one at a time, 50 ms apart, for a fixed window. Then:

1. Open: N connections from this process, each with channel 1, as raw asyncio protocols
   writing the whole handshake at once (protocol header, start-ok, tune-ok with heartbeats
   off, connection.open, channel.open: `fuzz.oracle.handshake_bytes`) and done at the
   channel.open-ok. At most OPEN_CONCURRENCY handshakes in flight, each bounded by
   CONNECT_TIMEOUT, all of them by OPEN_SECONDS. Recorded: connections opened (and failed,
   with the first errors), the seconds from the first connect to the last open-ok, each
   connection's handshake p50/p99, and RSS growth per connection in KiB (RSS after a 2 s
   settle minus RSS before, over the connections opened) with the broker's CPU share while
   it settles (idle connections should cost none).
2. Idle: the probe's p50/p99/max round trip with the N connections open and silent.
3. Active: each connection publishes one 16-byte message a second to one shared queue
   (declared first with x-max-length 1000, overflow drop-head, so it never grows); the
   sends are spread over the second: every 100 ms the next tenth of the connections write
   one pre-marshalled publish. The probe measures meanwhile (ACTIVE_SECONDS in all).
   Recorded: the probe's p50/p99/max, RSS with the load, the publishes sent and their rate,
   the broker's CPU per publish, how many 100 ms ticks this process started late (its own
   lag, not the broker's) and the bytes still unsent in our socket buffers at the end
   (back-pressure: the broker not reading), and the connections still open.

Everything is closed (aborted) and the broker stopped after each step. Time bound: about
90 s per step and broker (open <= OPEN_SECONDS, each probe window PROBE_SECONDS, the
active phase ACTIVE_SECONDS, plus broker start and stop): 20-40 s per step here, a full
default run of both brokers about 5-6 minutes. This process raises its own open-files
limit (common.raise_nofile): 10,000 connections need 10,000 descriptors on each side.
"""

from __future__ import annotations

import asyncio
import collections
import json
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from pamqp import commands, frame

from amqpbroker.fuzz.oracle import handshake_bytes
from amqpbroker.protocol.frames import FrameError, FrameReader

from .common import ROOT, Broker, each_step, percentiles, raise_nofile

STEPS = (100, 1000, 3000, 10000)
AXIS = "connections"
QUEUE = "scale.connections"
MAX_LENGTH = 1000
BODY = b"0123456789abcdef"       # 16 bytes
# Handshakes in flight at once: below RabbitMQ's listen backlog (128 by default; ours is
# 1024), else connects overflow it and the kernel's 1 s SYN retry shows up as open time.
OPEN_CONCURRENCY = 100
CONNECT_TIMEOUT = 30.0           # one connection, connect to channel.open-ok
OPEN_SECONDS = 45.0              # all of them; later ones are not attempted
SETTLE_SECONDS = 2.0
PROBE_SECONDS = 8.0              # one probe window (~150 round trips when nothing is slow)
PROBE_SAMPLES = 150
ACTIVE_SECONDS = 10.0
TICK = 0.1                       # the active phase writes to 1/10 of the connections per tick
LEAD_SECONDS = 1.0               # before a measurement: the broker idle / the load running

HANDSHAKE = handshake_bytes()
CHANNEL_OPEN_OK = struct.pack(">HH", 20, 11)
DECLARE_OK = struct.pack(">HH", 50, 11)
CLOSES = (struct.pack(">HH", 10, 50), struct.pack(">HH", 20, 40))  # connection/channel.close


def publish_bytes() -> bytes:
    """basic.publish to the default exchange, content header (no properties), 16-byte body."""
    m = struct.pack(">HHH", 60, 40, 0) + b"\x00" + bytes([len(QUEUE)]) + QUEUE.encode() + b"\x00"
    h = struct.pack(">HHQH", 60, 0, len(BODY), 0)
    return (struct.pack(">BHI", 1, 1, len(m)) + m + b"\xce"
            + struct.pack(">BHI", 2, 1, len(h)) + h + b"\xce"
            + struct.pack(">BHI", 3, 1, len(BODY)) + BODY + b"\xce")


# ------------------------------------------------------------------ the connections

class Conn(asyncio.Protocol):
    """One raw AMQP connection: writes the pipelined handshake as soon as it is connected and
    resolves `waiting[method id]` futures as methods arrive. Lighter than a StreamReader
    pair, which matters at 10,000 of them in one process."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader(1 << 20)
        self.waiting: dict[bytes, asyncio.Future] = {}
        self.opened = self.expect(CHANNEL_OPEN_OK)
        self.closed = False
        self.error = ""

    def expect(self, method_id: bytes) -> asyncio.Future:
        fut = self.loop.create_future()
        self.waiting[method_id] = fut
        return fut

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(HANDSHAKE)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameError as e:
            self.fail(f"bad frame: {e}")
            return
        for ftype, _channel, payload in frames:
            if ftype != 1:
                continue
            key = payload[:4]
            if key in CLOSES:
                _, _, m = frame.unmarshal(struct.pack(">BHI", 1, 0, len(payload))
                                          + payload + b"\xce")
                self.fail(f"{m.name} {m.reply_code} {m.reply_text}")
                return
            fut = self.waiting.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(payload)

    def fail(self, why: str) -> None:
        self.error = self.error or why
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(why))
        self.waiting.clear()
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.fail(f"connection lost: {exc}" if exc else "closed by the broker")

    @property
    def alive(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_conn(port: int, timeout: float) -> tuple[Conn, float]:
    """One connection up to its channel.open-ok: (it, seconds)."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    conn: Conn | None = None

    async def go() -> None:
        nonlocal conn
        _, conn = await loop.create_connection(Conn, "127.0.0.1", port)
        await conn.opened

    try:
        await asyncio.wait_for(go(), timeout)
    except BaseException:
        if conn is not None:
            conn.abort()
        raise
    assert conn is not None
    return conn, time.monotonic() - start


async def open_many(port: int, n: int) -> dict[str, Any]:
    """N connections, OPEN_CONCURRENCY at a time, within OPEN_SECONDS."""
    conns: list[Conn] = []
    times: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    next_i = 0
    start = time.monotonic()
    deadline = start + OPEN_SECONDS

    async def worker() -> None:
        nonlocal next_i
        while next_i < n and time.monotonic() < deadline:
            next_i += 1
            try:
                conn, took = await open_conn(port, min(CONNECT_TIMEOUT,
                                                       max(0.1, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                errors["timeout"] += 1
            except (OSError, ConnectionError) as e:
                errors[f"{type(e).__name__}: {e}"[:120]] += 1
            else:
                conns.append(conn)
                times.append(took)

    await asyncio.gather(*(worker() for _ in range(min(OPEN_CONCURRENCY, n))))
    return {"conns": conns, "times": times, "errors": errors, "attempted": next_i,
            "seconds": time.monotonic() - start}


async def declare_queue(port: int) -> Conn:
    """The shared queue, declared once (over a connection kept to the end of the step)."""
    conn, _ = await open_conn(port, 30)
    ok = conn.expect(DECLARE_OK)
    conn.transport.write(frame.marshal(commands.Queue.Declare(  # type: ignore[union-attr]
        queue=QUEUE, arguments={"x-max-length": MAX_LENGTH, "x-overflow": "drop-head"}), 1))
    await asyncio.wait_for(ok, 30)
    return conn


async def publish_load(conns: list[Conn], stop: asyncio.Event, limit: float) -> dict[str, Any]:
    """One publish per connection per second, a tenth of them every TICK, until `stop` (or
    `limit` seconds)."""
    loop = asyncio.get_running_loop()
    data = publish_bytes()
    slices = [conns[i::10] for i in range(10)]
    sent = late = k = 0
    t0 = loop.time()
    while not stop.is_set() and loop.time() - t0 < limit:
        delay = t0 + k * TICK - loop.time()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except asyncio.TimeoutError:
                pass
        elif delay < -TICK / 2:
            late += 1  # this process, not the broker, fell behind
        for c in slices[k % 10]:
            if c.alive:
                c.transport.write(data)  # type: ignore[union-attr]
                sent += 1
        k += 1
    took = loop.time() - t0
    unsent = sum(c.transport.get_write_buffer_size() for c in conns if c.alive)
    return {"sent": sent, "seconds": took, "ticks": k, "late_ticks": late,
            "unsent_bytes": unsent}


# ------------------------------------------------------------------ the probe

# The child's side: attacks.Probe, measuring for a fixed window rather than a fixed count,
# so a slow broker costs fewer samples, not more time.
PROBE_CHILD = r"""
import asyncio, json, sys, time
from amqpbroker.fuzz.attacks import Probe

async def window(p, seconds, samples):
    import aio_pika
    times, lost = [], 0
    end = time.monotonic() + seconds
    while len(times) < samples and time.monotonic() < end:
        await p.ch.default_exchange.publish(
            aio_pika.Message(repr(time.perf_counter()).encode()), p.queue.name)
        try:
            times.append(await asyncio.wait_for(p.arrived.get(),
                                                max(0.1, end - time.monotonic()) + 5))
        except asyncio.TimeoutError:
            lost += 1
            break
        await asyncio.sleep(0.05)
    return {"samples": times, "lost": lost}

async def main(port):
    p = await Probe().connect(port)
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while True:
        words = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not words or words[0] != "measure":
            break
        print(json.dumps(await window(p, float(words[1]), int(words[2]))), flush=True)
    await p.close()

asyncio.run(main(int(sys.argv[1])))
"""


class ProbeChild:
    async def start(self, port: int) -> "ProbeChild":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PROBE_CHILD, str(port), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)  # type: ignore
            if line.strip() != b"ready":
                raise RuntimeError(f"the probe did not start: {line!r}")
        except BaseException:
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
            raise
        return self

    async def measure(self, seconds: float) -> dict[str, Any]:
        """p50/p99/max of the round trips in ms, and their count; None figures (and an
        error) when the probe failed, now or in an earlier window."""
        try:
            if self.proc.returncode is not None:
                raise RuntimeError(f"the probe exited ({self.proc.returncode})")
            self.proc.stdin.write(f"measure {seconds} {PROBE_SAMPLES}\n".encode())  # type: ignore
            line = await asyncio.wait_for(self.proc.stdout.readline(),  # type: ignore
                                          seconds + 30)
            got = json.loads(line)
        except Exception as e:  # noqa: BLE001 - e.g. its connection closed by the broker
            if self.proc.returncode is None:
                self.proc.kill()  # out of step with us now: no later window can use it
                await self.proc.wait()
            return {"p50_ms": None, "p99_ms": None, "max_ms": None, "n": 0, "lost": None,
                    "error": f"{type(e).__name__}: {e}"[:200]}
        samples = got["samples"]
        p = percentiles(samples, (50, 99))
        return {"p50_ms": p["p50_ms"] if samples else None,
                "p99_ms": p["p99_ms"] if samples else None,
                "max_ms": round(max(samples) * 1000, 3) if samples else None,
                "n": len(samples), "lost": got["lost"]}

    async def close(self) -> None:
        if self.proc.returncode is not None:
            return
        try:
            self.proc.stdin.write(b"quit\n")  # type: ignore[union-attr]
            await asyncio.wait_for(self.proc.wait(), 10)
        except (asyncio.TimeoutError, OSError):
            self.proc.kill()
            await self.proc.wait()


# ------------------------------------------------------------------ one step

async def measure(broker: Broker, n: int) -> dict[str, Any]:
    m: dict[str, Any] = {}
    probe = await ProbeChild().start(broker.port)
    setup: Conn | None = None
    opened: dict[str, Any] = {"conns": []}
    try:
        setup = await declare_queue(broker.port)
        await asyncio.sleep(LEAD_SECONDS)
        rss0 = broker.rss_mib()
        opened = await open_many(broker.port, n)
        conns: list[Conn] = opened["conns"]
        count = len(conns)
        hs = percentiles(opened["times"], (50, 99))
        m.update(opened=count, attempted=opened["attempted"],
                 failed=sum(opened["errors"].values()),
                 open_seconds=round(opened["seconds"], 3),
                 open_per_s=round(count / opened["seconds"], 1) if opened["seconds"] else None,
                 handshake_p50_ms=hs["p50_ms"] if count else None,
                 handshake_p99_ms=hs["p99_ms"] if count else None,
                 handshake_max_ms=round(max(opened["times"]) * 1000, 3) if count else None)
        if opened["errors"]:
            m["open_errors"] = "; ".join(f"{k} x{v}" for k, v in
                                         opened["errors"].most_common(3))
        cpu0, t0 = broker.cpu_seconds(), time.monotonic()
        await asyncio.sleep(SETTLE_SECONDS)
        cpu_idle = (broker.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        rss1 = broker.rss_mib()
        m.update(rss_before_mib=round(rss0, 2), rss_idle_mib=round(rss1, 2),
                 kb_per_connection=round((rss1 - rss0) * 1024 / count, 2) if count else None,
                 cpu_idle_pct=round(cpu_idle * 100, 1))
        idle = await probe.measure(PROBE_SECONDS)
        m.update({f"probe_idle_{k}": v for k, v in idle.items()})
        m["alive_after_idle"] = sum(c.alive for c in conns)

        stop = asyncio.Event()
        cpu0 = broker.cpu_seconds()
        load = asyncio.create_task(publish_load(conns, stop, ACTIVE_SECONDS + 30))
        await asyncio.sleep(LEAD_SECONDS)  # the load runs a while before the probe starts
        try:
            active = await probe.measure(ACTIVE_SECONDS - LEAD_SECONDS)
        finally:
            rss2 = broker.rss_mib()
            stop.set()
            pub = await load
        cpu = broker.cpu_seconds() - cpu0
        m.update({f"probe_active_{k}": v for k, v in active.items()})
        m.update(rss_active_mib=round(rss2, 2), published=pub["sent"],
                 publish_rate=round(pub["sent"] / pub["seconds"], 1),
                 cpu_us_per_publish=round(cpu / pub["sent"] * 1e6, 2) if pub["sent"] else None,
                 cpu_active_pct=round(cpu / pub["seconds"] * 100, 1),
                 late_ticks=pub["late_ticks"], ticks=pub["ticks"],
                 unsent_bytes=pub["unsent_bytes"],
                 alive_after_active=sum(c.alive for c in conns))
        lost = [c.error for c in conns if not c.alive and c.error]
        if lost:
            m["lost_errors"] = "; ".join(f"{k} x{v}" for k, v in
                                         collections.Counter(lost).most_common(3))
        if count < n:
            m["error"] = f"opened {count} of {n}" + (f": {m['open_errors']}"
                                                      if "open_errors" in m else "")
        return m
    finally:
        for c in opened["conns"]:
            c.abort()
        if setup is not None:
            setup.abort()
        await probe.close()


def run(make: Callable[[str], Broker], brokers: list[str], steps: list, out: Path | None,
        work: Path) -> None:
    raise_nofile()
    each_step(make, brokers, steps, out, AXIS, lambda broker, n: asyncio.run(measure(broker, n)),
              opened=None, kb_per_connection=None)
