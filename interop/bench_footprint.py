#!/usr/bin/env python3
"""Memory per queued message (M1) and start-up times, the figures of docs/performance.md
that `bench_compare.py` (S1-S7) and `bench_flood.py` (M2) do not produce.

    python interop/bench_footprint.py [--messages 1000000] [--rounds 5] [--rabbitmq]
                                      [--only m1,startup] [--out results.json]

M1: a broker is started (`amqpbroker serve`, fresh data dir, fsync on), its RSS read from
/proc, N transient 16-byte messages published by `amqpbroker perf` into one queue with no
consumer (aio-pika, no confirms; it waits until the queue holds all N), RSS read again:
(RSS after - RSS before) / N bytes per queued message. With `--rabbitmq` the same for a
private RabbitMQ node (the beam process's RSS), as `bench_compare.py` starts it.

Start-up: `amqpbroker serve` (a fresh data dir) from process start to the first accepted
TCP connection, and the embedded `Broker().start()` (in memory, port 0) to the first
accepted connection, each over `--rounds` runs.

Every figure is printed as the median with min and max over `--rounds` runs. Bounded in
time: each broker start waits at most 60 s, each publish run at most 600 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_compare import RabbitMQ, free_port, wait_port  # noqa: E402


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Ours:
    name = "amqpbroker"

    def start(self, work: Path) -> int:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--management-port", "0", "--prometheus-port", "0", "--host", "127.0.0.1", "--port",
             str(self.port), "--data-dir", str(work / f"ours-{self.port}"), "--log-level",
             "warning"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 60):
            raise RuntimeError("amqpbroker did not start")
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


async def _fill(port: int, messages: int) -> None:
    """Publish `messages` transient 16-byte messages to a fresh queue without consumer and
    wait until the broker holds them all (the queue is left in place for the reading)."""
    import aio_pika

    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
    try:
        ch = await conn.channel(publisher_confirms=False)
        await ch.declare_queue("m1")
        body = b"0123456789abcdef"
        for i in range(messages):
            await ch.default_exchange.publish(aio_pika.Message(body), routing_key="m1")
            if i % 5000 == 0:
                await asyncio.sleep(0)  # let the connection write
        deadline = time.monotonic() + 600
        while True:
            probe = await conn.channel()
            depth = (await probe.declare_queue("m1", passive=True)).declaration_result
            await probe.close()
            if depth.message_count >= messages:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {depth.message_count} of {messages} queued")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def m1(broker, work: Path, messages: int) -> float:
    """Bytes of broker RSS per queued 16-byte transient message."""
    pid = broker.start(work)
    try:
        time.sleep(1.0)  # let start-up allocations settle
        before = rss_bytes(pid)
        asyncio.run(_fill(broker.port, messages))
        time.sleep(1.0)
        after = rss_bytes(pid)
        return (after - before) / messages
    finally:
        broker.stop()


def serve_startup(work: Path) -> float:
    """Seconds from `amqpbroker serve` process start to its first accepted connection."""
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--management-port", "0", "--prometheus-port", "0", "--host", "127.0.0.1", "--port",
         str(port), "--data-dir", str(work / f"startup-{port}"), "--log-level", "warning"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = started + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return time.monotonic() - started
            except OSError:
                time.sleep(0.002)
        raise RuntimeError("amqpbroker serve did not listen within 60 s")
    finally:
        proc.terminate()
        proc.wait(30)


async def _embedded_once() -> float:
    from amqpbroker.embed import Broker

    started = time.perf_counter()
    broker = await Broker().start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        elapsed = time.perf_counter() - started
        writer.close()
        return elapsed
    finally:
        await broker.stop()


def embedded_startup() -> float:
    """Seconds from `Broker().start()` (in memory) to its first accepted connection."""
    return asyncio.run(_embedded_once())


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rabbitmq", action="store_true", help="also measure M1 for RabbitMQ")
    ap.add_argument("--only", default="m1,startup")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    only = set(args.only.split(","))
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        work = Path(tmp)
        if "m1" in only:
            brokers = [Ours()] + ([RabbitMQ()] if args.rabbitmq else [])
            for broker in brokers:
                values = []
                for rnd in range(args.rounds):
                    values.append(m1(broker, work, args.messages))
                    print(f"M1 {broker.name} round {rnd + 1}: {values[-1]:.0f} B/message",
                          flush=True)
                results[f"M1 {broker.name} bytes/message"] = summary(values)
        if "startup" in only:
            serve = [serve_startup(work) for _ in range(args.rounds)]
            results["serve to first connection s"] = summary(serve)
            embedded = [embedded_startup() for _ in range(max(args.rounds, 10))]
            results["embedded Broker().start() to first connection s"] = summary(embedded)
    print()
    for name, s in results.items():
        fmt = "{:.0f}" if "bytes" in name else "{:.4f}"
        print(f"{name:50} median {fmt.format(s['median'])}  "
              f"(min {fmt.format(s['min'])}, max {fmt.format(s['max'])}, n={s['n']})")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
