#!/usr/bin/env python3
"""M2: a publisher flooding a queue that has no consumer, for a bounded time.

    python interop/bench_flood.py [--seconds 60] [--watermark 300000000] [--size 16]

Starts amqpbroker with a memory high watermark (bytes), floods one queue from a raw
publisher for the given time (writing as fast as the broker reads), samples the broker's
RSS every 100 ms, then consumes the queue and checks that every message sent arrived. With the memory alarm,
RSS stays near the watermark: publishers are blocked (connection.blocked) instead of the
broker growing without bound, and nothing accepted is lost.
"""

from __future__ import annotations

import argparse
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compare import free_port, wait_port  # noqa: E402
from pamqp import commands  # noqa: E402

from amqpbroker.perf.client import connect, encode_message  # noqa: E402
from amqpbroker.protocol.frames import FrameReader  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def flood(port: int, seconds: float, size: int) -> tuple[int, threading.Thread]:
    """Publish as fast as the broker reads for `seconds`; returns whole messages sent and
    a thread that finishes the last partial one once the broker reads again."""
    conn = connect("127.0.0.1", port, "guest", "guest", "/")
    conn.rpc(commands.Queue.Declare(queue="flood"), commands.Queue.DeclareOk)
    one, _ = encode_message("", "flood", size, False, 131072)
    block = memoryview(bytes(one) * 1000)
    sock = conn.sock
    sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _, writable, _ = select.select([], [sock], [], 0.2)
        if writable:
            try:
                sent += sock.send(block[sent % len(block):])
            except BlockingIOError:
                pass
    rest = (-sent) % len(one)  # finish the message cut in the middle
    tail = bytes(block[sent % len(block):][:rest])

    def finish() -> None:
        sock.setblocking(True)
        sock.sendall(tail)

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    return (sent + rest) // len(one), thread


def drain(port: int, expected: int, timeout: float) -> int:
    """Consume (no-ack) until `expected` deliveries arrived or time is up."""
    conn = connect("127.0.0.1", port, "guest", "guest", "/")
    # Read everything ourselves from here on (ConsumeOk, then the deliveries).
    conn.send_method(commands.Basic.Consume(queue="flood", no_ack=True))
    reader = FrameReader(1 << 20)
    got = 0
    deadline = time.monotonic() + timeout
    conn.sock.settimeout(1.0)
    while got < expected and time.monotonic() < deadline:
        try:
            data = conn.sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not data:
            break
        for ftype, _, payload in reader.feed(data):
            if ftype == 1 and payload[:4] == DELIVER:
                got += 1
    return got


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--watermark", type=int, default=300_000_000)
    ap.add_argument("--size", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        config = Path(tmp) / "flood.yaml"
        config.write_text(f"limits:\n  memory_high_watermark: {args.watermark}\n")
        port = free_port()
        broker = subprocess.Popen(
            [sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--management-port", "0", "--prometheus-port", "0", "--config", str(config), "--host",
             "127.0.0.1", "--port", str(port), "--in-memory", "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples: list[int] = []
        done = threading.Event()
        try:
            if not wait_port(port, 15):
                raise SystemExit("broker did not start")

            def sample() -> None:
                while not done.is_set():
                    samples.append(rss_kb(broker.pid))
                    time.sleep(0.1)

            threading.Thread(target=sample, daemon=True).start()
            published, finisher = flood(port, args.seconds, args.size)
            peak_flood = max(samples)
            consumed = drain(port, published, timeout=300)
            finisher.join(10)
            done.set()
        finally:
            broker.terminate()
            _, err = broker.communicate(timeout=30)
    print(f"published {published} messages of {args.size} B in {args.seconds} s "
          f"({published / args.seconds:.0f} msg/s accepted on average)")
    print(f"broker RSS: start {samples[0] / 1024:.0f} MiB, peak during the flood "
          f"{peak_flood / 1024:.0f} MiB, watermark {args.watermark / 2**20:.0f} MiB")
    print(f"memory alarms set: {err.count('alarm.set')}, connections blocked: "
          f"{err.count('connection.blocked')}")
    print(f"consumed afterwards: {consumed} of {published}: "
          + ("nothing lost" if consumed == published else "MISMATCH"))
    return 0 if consumed == published else 1


DELIVER = b"\x00\x3c\x00\x3c"

if __name__ == "__main__":
    sys.exit(main())
