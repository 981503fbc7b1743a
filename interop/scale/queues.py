"""Queues axis: what N durable queues cost to create, to hold, to list and to recover.

    python interop/bench_scale.py queues [--steps 1000,10000,100000]

Per step N and broker, a fresh broker (fresh data directory). Then:

1. Declare: N durable queues ("scale.q.000000", ...), each bound to amq.topic with its own
   name as the routing key, over one raw connection: the queue.declare and queue.bind frames
   are built before the clock starts and written in windows of WINDOW queues (a declare and
   a bind each), at most two windows outstanding, every one answered (declare-ok, bind-ok;
   no nowait). Recorded: queues per second (declare + bind) and RSS growth per idle queue
   in bytes (RSS 2 s after the last reply minus RSS before the first declare).
2. Latency with N queues present, on a second connection: the median and max of
   LATENCY_SAMPLES round trips of queue.declare of a new durable queue (deleted afterwards,
   so the broker holds N again) and of a passive declare of an existing one (spread over
   the N).
3. Listing: one GET /api/queues on the management API, unpaginated (both brokers answer with
   every queue): seconds until the whole JSON is read and decoded, and the count it held.
   Bounded by LISTING_TIMEOUT (None and an error beyond it).
4. Restart: a graceful stop (SIGTERM; seconds recorded; `stop_forced` when it had to be
   killed after STOP_TIMEOUT), then `start()` again on the same data directory. Recovery
   time: from the start() call until a passive declare of the last queue declared succeeds
   and the management listing shows all N queues (polled; the first part is reported
   separately too), and RSS after recovery.

Bound: STEP_SECONDS (900 s) per step and broker; every phase gets what is left of it
(declaring at most DECLARE_SECONDS, a listing at most LISTING_TIMEOUT, the stop at most
STOP_TIMEOUT) and a phase that runs out records an error. amqpbroker's 100,000 step takes
2-3 minutes; RabbitMQ's about 10-12 (its durable declares run at ~270/s on this machine, and
listing, stopping and recovering 100k queues take minutes more). A full default run of both
brokers: roughly 15-20 minutes.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import time
from pathlib import Path
from statistics import median
from typing import Any, Callable

from pamqp import commands

from .bindings import ProtocolError, RawClient, bind_frame, shortstr
from .common import Broker, RabbitMQ, each_step

STEPS = (1000, 10000, 100000)
AXIS = "queues"
EXCHANGE = "amq.topic"
WINDOW = 500                # queues (declare + bind) per window; two windows outstanding
STEP_SECONDS = 900.0        # RabbitMQ declares ~270 durable queues/s here: 100k take ~6 min
DECLARE_SECONDS = 600.0
LISTING_TIMEOUT = 300.0
STOP_TIMEOUT = 300.0        # a graceful stop of RabbitMQ with 100k queues takes a while
LATENCY_SAMPLES = 20
SETTLE_SECONDS = 2.0

DECLARE_OK = struct.pack(">HH", 50, 11)
BIND_OK = struct.pack(">HH", 50, 21)
DURABLE = 0x02              # queue.declare bits: passive 1, durable 2, exclusive 4, ...


def queue_name(i: int) -> str:
    return f"scale.q.{i:06d}"


def declare_frame(queue: str, bits: int = DURABLE) -> bytes:
    """queue.declare on channel 1, no arguments, as pamqp would marshal it (the test checks)."""
    payload = struct.pack(">HHH", 50, 10, 0) + shortstr(queue) + bytes([bits]) + b"\0\0\0\0"
    return struct.pack(">BHI", 1, 1, len(payload)) + payload + b"\xce"


def windows(n: int) -> list[bytes]:
    """The declare and bind frames of N queues, WINDOW queues per write."""
    out = []
    for base in range(0, n, WINDOW):
        out.append(b"".join(declare_frame(queue_name(i)) + bind_frame(queue_name(i), EXCHANGE,
                                                                      queue_name(i))
                            for i in range(base, min(n, base + WINDOW))))
    return out


def take_replies(client: RawClient) -> int:
    """Every complete declare-ok / bind-ok off the client's buffer (reading once if there is
    not a whole frame in it); anything else (a channel.close) raises."""
    buf = client.buf
    if len(buf) < 8 or len(buf) < struct.unpack_from(">I", buf, 3)[0] + 8:
        client.fill()
        buf = client.buf
    count = pos = 0
    end = len(buf)
    while end - pos >= 8:
        ftype, _, size = struct.unpack_from(">BHI", buf, pos)
        if end - pos < size + 8:
            break
        key = bytes(buf[pos + 7:pos + 11])
        if ftype == 1 and key in (DECLARE_OK, BIND_OK):
            count += 1
        elif ftype == 1:
            del buf[:pos]
            client.method()  # decodes it: raises on a close, else it is unexpected
            raise ProtocolError(f"unexpected method {key.hex()} among the replies")
        pos += size + 8
    del buf[:pos]
    return count


def declare_all(client: RawClient, batches: list[bytes], n: int, deadline: float
                ) -> tuple[int, float]:
    """Write the windows keeping at most two outstanding: (queues confirmed, seconds)."""
    start = time.monotonic()
    client.sock.settimeout(max(1.0, min(60.0, deadline - start)))
    sent_batches = sent = replies = 0
    while replies < 2 * n and time.monotonic() < deadline:
        while sent_batches < len(batches) and sent - replies < 4 * WINDOW:
            client.sock.sendall(batches[sent_batches])
            sent += 2 * min(WINDOW, n - sent_batches * WINDOW)
            sent_batches += 1
        replies += take_replies(client)
    client.sock.settimeout(60.0)
    return replies // 2, time.monotonic() - start


def latencies(port: int, n: int) -> dict[str, Any]:
    """Round trips of declaring a new durable queue and of a passive declare, N present."""
    client = RawClient(port)
    try:
        new, passive = [], []
        names = [f"scale.lat.{i}" for i in range(LATENCY_SAMPLES)]
        for name in names:
            t = time.perf_counter()
            client.rpc(commands.Queue.Declare(queue=name, durable=True),
                       commands.Queue.DeclareOk)
            new.append(time.perf_counter() - t)
        for i in range(LATENCY_SAMPLES):
            name = queue_name(i * n // LATENCY_SAMPLES)
            t = time.perf_counter()
            client.rpc(commands.Queue.Declare(queue=name, passive=True),
                       commands.Queue.DeclareOk)
            passive.append(time.perf_counter() - t)
        for name in names:  # the broker holds exactly N again for the listing and restart
            client.rpc(commands.Queue.Delete(queue=name), commands.Queue.DeleteOk)
        return {"declare_new_ms": round(median(new) * 1000, 3),
                "declare_new_max_ms": round(max(new) * 1000, 3),
                "declare_passive_ms": round(median(passive) * 1000, 3),
                "declare_passive_max_ms": round(max(passive) * 1000, 3)}
    finally:
        client.close()


def listing(broker: Broker, timeout: float) -> tuple[int, float]:
    """(queues in one unpaginated GET /api/queues, seconds for it)."""
    t = time.monotonic()
    count = len(broker.http("/api/queues", timeout=timeout))
    return count, time.monotonic() - t


def passive_ok(port: int, name: str) -> bool:
    try:
        client = RawClient(port, timeout=30)
    except (OSError, ProtocolError):
        return False
    try:
        client.rpc(commands.Queue.Declare(queue=name, passive=True), commands.Queue.DeclareOk)
        return True
    except (OSError, ProtocolError):
        return False
    finally:
        client.close()


def graceful_stop(broker: Broker, timeout: float) -> bool:
    """SIGTERM and up to `timeout` seconds for the broker to finish (common's stop() kills it
    after 60 s, too soon for RabbitMQ with 100k queues); True if it had to be killed."""
    proc: subprocess.Popen = broker.proc  # type: ignore[attr-defined]
    if proc.poll() is not None:
        return False
    if isinstance(broker, RabbitMQ):
        os.killpg(proc.pid, signal.SIGTERM)  # the script and beam share a process group
    else:
        proc.terminate()
    try:
        proc.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        broker.kill()
        return True


def restart(broker: Broker, n: int, deadline: float) -> dict[str, Any]:
    """Graceful stop, start on the same data, and the time until all N queues are back."""
    t = time.monotonic()
    forced = graceful_stop(broker, STOP_TIMEOUT)
    m: dict[str, Any] = {"stop_seconds": round(time.monotonic() - t, 2),
                         "stop_forced": int(forced)}
    started = time.monotonic()
    broker.start(timeout=max(60.0, deadline - started))
    last = queue_name(n - 1)
    while not passive_ok(broker.port, last):
        if time.monotonic() > deadline:
            m.update(recovery_seconds=None, error=f"{last} not back within the bound")
            return m
        time.sleep(0.2)
    m["recovery_declare_seconds"] = round(time.monotonic() - started, 3)
    count = -1
    while time.monotonic() < deadline:
        try:
            count, _ = listing(broker, max(1.0, min(LISTING_TIMEOUT, deadline - time.monotonic())))
        except Exception as e:  # noqa: BLE001 - an HTTP error or timeout: poll again
            m["recovery_listing_error"] = f"{type(e).__name__}: {e}"
        if count >= n:
            break
        time.sleep(0.5)
    m["recovery_listed"] = count
    if count < n:
        m.update(recovery_seconds=None, error=f"the listing showed {count} of {n} queues")
        return m
    m["recovery_seconds"] = round(time.monotonic() - started, 3)
    m["rss_recovered_mib"] = round(broker.rss_mib(), 2)
    return m


def measure(broker: Broker, n: int, deadline: float) -> dict[str, Any]:
    batches = windows(n)  # built before the clock starts
    client = RawClient(broker.port)
    try:
        time.sleep(SETTLE_SECONDS / 2)  # the broker idle after its start and our connection
        rss0 = broker.rss_mib()
        declared, took = declare_all(client, batches, n,
                                     min(deadline, time.monotonic() + DECLARE_SECONDS))
    finally:
        client.close()
    del batches
    time.sleep(SETTLE_SECONDS)
    rss1 = broker.rss_mib()
    m: dict[str, Any] = {
        "declared": declared, "declare_seconds": round(took, 3),
        "declare_rate": round(declared / took, 1) if took > 0 else None,
        "rss_before_mib": round(rss0, 2), "rss_idle_mib": round(rss1, 2),
        "bytes_per_queue": round((rss1 - rss0) * 2**20 / declared, 1) if declared else None}
    if declared < n:
        m["error"] = f"declared {declared} of {n} in {took:.0f} s (the time bound)"
        return m
    m.update(latencies(broker.port, n))
    try:
        count, secs = listing(broker, max(1.0, min(LISTING_TIMEOUT,
                                                   deadline - time.monotonic())))
        m.update(listing_seconds=round(secs, 3), listing_count=count)
    except Exception as e:  # noqa: BLE001 - a timeout or an HTTP error is a result
        m.update(listing_seconds=None, listing_count=None,
                 listing_error=f"{type(e).__name__}: {e}")
    try:
        m.update(restart(broker, n, deadline))
    except Exception as e:  # noqa: BLE001 - e.g. the broker did not come back: keep the rest
        m.update(recovery_seconds=None, error=f"restart: {type(e).__name__}: {e}")
    return m


def run(make: Callable[[str], Broker], brokers: list[str], steps: list, out: Path | None,
        work: Path) -> None:
    each_step(make, brokers, steps, out, AXIS,
              lambda broker, n: measure(broker, n, time.monotonic() + STEP_SECONDS),
              declare_rate=None, recovery_seconds=None)
