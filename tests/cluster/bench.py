"""Replication cost: scenario S3 (durable queue, persistent 1 KiB, confirms window 256,
manual ack, prefetch 100) against a single node and against the leader of a 3-node
cluster, alternating, in the same run; and the round trip of a durable queue.declare
(sequential, pika), whose declare-ok waits for the in-sync followers on a cluster. Prints a
JSON report.

    .venv/bin/python -m tests.cluster.bench --rounds 2 --duration 10 --declares 300
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from tests.cluster.harness import Cluster, free_port

S3 = ["--producers", "1", "--consumers", "1", "--size", "1024", "--persistent", "--durable",
      "--confirm", "256", "--ack", "manual", "--prefetch", "100"]


def perf(port: int, duration: float, label: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "amqpbroker", "perf", "--uri",
         f"amqp://guest:guest@127.0.0.1:{port}/", "--label", label, *S3,
         "--duration", str(duration), "--json"],
        capture_output=True, text=True, timeout=duration + 120)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": out.stdout[-500:] + out.stderr[-500:]}


def declare_latency(port: int, count: int) -> dict:
    """Milliseconds per durable queue.declare round trip (median, p90, max), one at a time."""
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    took = []
    try:
        for i in range(count):
            started = time.perf_counter()
            ch.queue_declare(f"bench-declare-{i}", durable=True)
            took.append((time.perf_counter() - started) * 1000)
        for i in range(count):
            ch.queue_delete(f"bench-declare-{i}")
    finally:
        conn.close()
    took.sort()
    return {"count": count, "median_ms": round(took[len(took) // 2], 2),
            "p90_ms": round(took[int(len(took) * 0.9)], 2), "max_ms": round(took[-1], 2)}


def single(root: str, duration: float, label: str, declares: int = 0) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--host",
                             "127.0.0.1", "--port", str(port), "--data-dir",
                             os.path.join(root, f"single-{label}"), "--log-level", "warning",
                             "--management-port", "0", "--prometheus-port", "0"],
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                import socket
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        result = perf(port, duration, label)
        if declares:
            result["declare"] = declare_latency(port, declares)
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--declares", type=int, default=300,
                   help="durable queue.declare round trips measured per run (0: none)")
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="amqpbroker-bench-")
    cluster = Cluster(root)
    cluster.start()
    results: dict = {"single": [], "cluster3": []}
    try:
        cluster.wait_isr(3, 90)
        for r in range(args.rounds):
            results["single"].append(single(root, args.duration, f"s{r}", args.declares))
            leader = cluster.node(cluster.wait_leader(30))
            run = perf(leader.port, args.duration, f"c{r}")
            if args.declares:
                run["declare"] = declare_latency(leader.port, args.declares)
            results["cluster3"].append(run)
    finally:
        cluster.stop()
    summary = {}
    for kind, runs in results.items():
        summary[kind] = {"in_rate": [r.get("in_rate") for r in runs],
                         "out_rate": [r.get("out_rate") for r in runs],
                         "status": [r.get("status") for r in runs],
                         "declare_ms": [r.get("declare") for r in runs]}
    print(json.dumps({"summary": summary, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
