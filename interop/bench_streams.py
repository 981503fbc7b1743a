#!/usr/bin/env python
"""Stream benchmark (not a test): publish N small messages into a stream queue with
publisher confirms, then replay them from `first` with one consumer, and print the rates.

    python interop/bench_streams.py                      # starts our broker (disk, fsync)
    python interop/bench_streams.py --count 200000 --size 64
    python interop/bench_streams.py --url amqp://guest:guest@127.0.0.1:5672/   # a running one
    python interop/bench_streams.py --rabbitmq-url amqp://guest:guest@127.0.0.1:5673/

The client is the raw blocking AMQP client of `amqpbroker.perf` (pre-encoded frames, no
per-message Python objects), so the numbers measure the broker rather than a client
library: one connection publishes in batches with at most `--window` unconfirmed
messages, another consumes with `--prefetch` and acks every prefetch/2 deliveries
(multiple). With `--rabbitmq-url` the same run is repeated against that broker.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pamqp import commands, frame, header
from pamqp.body import ContentBody

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from amqpbroker.perf.client import FRAME_END, HDR, Conn, ack_frame, connect  # noqa: E402

DELIVER = b"\x00\x3c\x00\x3c"
ACK = b"\x00\x3c\x00\x50"
NACK = b"\x00\x3c\x00\x78"
_Q = struct.Struct(">Q")


def _parse_url(url: str) -> tuple[str, int, str, str, str]:
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return (parts.hostname or "127.0.0.1", parts.port or 5672, unquote(parts.username or "guest"),
            unquote(parts.password or "guest"), vhost)


def _encoded(queue: str, size: int, count: int) -> bytes:
    one = bytearray(frame.marshal(commands.Basic.Publish(exchange="", routing_key=queue), 1))
    one += frame.marshal(header.ContentHeader(0, size, commands.Basic.Properties(
        delivery_mode=1)), 1)
    one += frame.marshal(ContentBody(b"s" * size), 1)
    return bytes(one) * count


def _frames(conn: Conn, timeout: float):
    """Yield (type, payload) of every complete frame that arrived (blocks up to timeout
    for the first read)."""
    conn.sock.settimeout(timeout)
    try:
        data = conn.sock.recv(1 << 20)
    except socket.timeout:
        return
    if not data:
        raise SystemExit(f"{conn.where}: connection closed by the broker")
    buf = conn.buf
    buf += data
    pos, n = 0, len(buf)
    while n - pos >= 7:
        ftype, _ch, size = HDR.unpack_from(buf, pos)
        end = pos + 7 + size
        if end + 1 > n:
            break
        if buf[end] != FRAME_END:
            raise SystemExit("bad frame end from the broker")
        yield ftype, buf[pos + 7:end]
        pos = end + 1
    del buf[:pos]


def publish(url: str, queue: str, count: int, size: int, window: int, batch: int) -> float:
    host, port, user, password, vhost = _parse_url(url)
    conn = connect(host, port, user, password, vhost, product="bench_streams")
    conn.rpc(commands.Queue.Declare(queue=queue, durable=True,
                                    arguments={"x-queue-type": "stream"}),
             commands.Queue.DeclareOk)
    conn.rpc(commands.Confirm.Select(), commands.Confirm.SelectOk)
    chunk = _encoded(queue, size, batch)
    sent = confirmed = 0
    started = time.perf_counter()
    while confirmed < count:
        while sent < count and sent - confirmed < window:
            k = min(batch, count - sent)
            conn.send(chunk if k == batch else _encoded(queue, size, k))
            sent += k
        for ftype, payload in _frames(conn, 30.0):
            if ftype == 1 and payload[:4] in (ACK, NACK):
                if payload[:4] == NACK:
                    raise SystemExit("the broker nacked a publish")
                tag = _Q.unpack_from(payload, 4)[0]
                confirmed = max(confirmed, tag)
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def replay(url: str, queue: str, count: int, prefetch: int) -> float:
    host, port, user, password, vhost = _parse_url(url)
    conn = connect(host, port, user, password, vhost, product="bench_streams")
    conn.rpc(commands.Basic.Qos(prefetch_count=prefetch), commands.Basic.QosOk)
    started = time.perf_counter()
    conn.rpc(commands.Basic.Consume(queue=queue, consumer_tag="bench",
                                    arguments={"x-stream-offset": "first"}),
             commands.Basic.ConsumeOk)
    got = acked = 0
    every = max(1, prefetch // 2)
    while got < count:
        last_tag = 0
        for ftype, payload in _frames(conn, 30.0):
            if ftype == 1 and payload[:4] == DELIVER:
                got += 1
                ctag_len = payload[4]
                last_tag = _Q.unpack_from(payload, 5 + ctag_len)[0]
        if last_tag and (last_tag - acked >= every or got >= count):
            conn.send(ack_frame(last_tag, True))
            acked = last_tag
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def cleanup(url: str, queue: str) -> None:
    host, port, user, password, vhost = _parse_url(url)
    conn = connect(host, port, user, password, vhost, product="bench_streams")
    conn.rpc(commands.Queue.Delete(queue=queue), commands.Queue.DeleteOk)
    conn.close()


def run(label: str, url: str, args: argparse.Namespace) -> dict[str, object]:
    queue = f"bench.stream.{uuid.uuid4().hex[:8]}"
    pub_s = publish(url, queue, args.count, args.size, args.window, args.batch)
    rep_s = replay(url, queue, args.count, args.prefetch)
    if not args.keep:
        cleanup(url, queue)
    result = {"broker": label, "messages": args.count, "size": args.size,
              "publish_s": round(pub_s, 2), "publish_rate": round(args.count / pub_s),
              "replay_s": round(rep_s, 2), "replay_rate": round(args.count / rep_s)}
    print(f"{label:>10}: published {args.count:,} x {args.size} B in {pub_s:.2f} s "
          f"({args.count / pub_s:,.0f} msg/s, confirmed); replayed from first in "
          f"{rep_s:.2f} s ({args.count / rep_s:,.0f} msg/s)", flush=True)
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=16, help="body bytes (default 16)")
    p.add_argument("--window", type=int, default=20_000, help="max unconfirmed publishes")
    p.add_argument("--batch", type=int, default=1000, help="publishes per socket write")
    p.add_argument("--prefetch", type=int, default=2000)
    p.add_argument("--url", help="a running broker to measure instead of starting ours")
    p.add_argument("--no-sync", action="store_true", help="start our broker with --no-sync")
    p.add_argument("--rabbitmq-url", help="also measure this RabbitMQ")
    p.add_argument("--keep", action="store_true", help="do not delete the stream afterwards")
    p.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = p.parse_args()
    results = []
    proc = data_dir = None
    url = args.url
    try:
        if url is None:
            data_dir = tempfile.mkdtemp(prefix="bench-streams-")
            port = _free_port()
            cmd = [sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--management-port", "0", "--prometheus-port", "0", "--host", "127.0.0.1",
                   "--port", str(port), "--data-dir", data_dir, "--log-level", "warning"]
            if args.no_sync:
                cmd.append("--no-sync")
            proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 15
            while True:
                line = proc.stderr.readline() if proc.stderr else ""
                if re.search(r"listening on port", line) or time.monotonic() > deadline:
                    break
                if not line and proc.poll() is not None:
                    raise SystemExit("the broker did not start")
            url = f"amqp://guest:guest@127.0.0.1:{port}/"
        results.append(run("amqpbroker", url, args))
        if args.rabbitmq_url:
            results.append(run("RabbitMQ", args.rabbitmq_url, args))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
            if proc.stderr:
                proc.stderr.close()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
