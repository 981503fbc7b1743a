#!/usr/bin/env python3
"""MQTT throughput, amqpbroker against Debian's mosquitto in the same run (issue 20).

    python interop/bench_mqtt.py [--rounds 2] [--count 20000] [--out results.json]

The instrument is the C load generator `interop/mqtt_bench/mqttload.c` on libmosquitto
(Debian's libmosquitto-dev), built into a temporary directory. Its own ceiling is measured
first, against a sink built into it (no broker: publishes acked at once, subscribers
flooded with pre-encoded packets). Then each scenario runs against mosquitto and against
`amqpbroker serve`, alternately, each on free ports, clean sessions on both (mosquitto does
not fsync; with clean sessions our subscription queues are not durable either). Prints the
medians of deliveries per second and the ratio ours / mosquitto. Not a CI step.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(__file__).resolve().parent / "mqtt_bench" / "mqttload.c"
SCENARIOS = {  # id: (description, generator arguments)
    "Q0-in": ("QoS 0 fan-in: 4 publishers -> 1 subscriber, 16 B", ["--pubs", "4", "--subs", "1", "--qos", "0"]),
    "Q0-out": ("QoS 0 fan-out: 1 publisher -> 4 subscribers, 16 B", ["--pubs", "1", "--subs", "4", "--qos", "0"]),
    "Q1-in": ("QoS 1 fan-in: 4 publishers -> 1 subscriber, 16 B", ["--pubs", "4", "--subs", "1", "--qos", "1"]),
    "Q1-out": ("QoS 1 fan-out: 1 publisher -> 4 subscribers, 16 B", ["--pubs", "1", "--subs", "4", "--qos", "1"]),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def build(tmp: Path) -> Path:
    exe = tmp / "mqttload"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(SOURCE), "-lmosquitto", "-lpthread"],
                   check=True)
    return exe


def run_load(exe: Path, args: list[str]) -> dict:
    out = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=150)
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    result = json.loads(line)
    result["ok"] = out.returncode == 0
    return result


class Mosquitto:
    name = "mosquitto"

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        conf = tmp / f"mosquitto-{self.port}.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "max_queued_messages 1000000\nmax_inflight_messages 100\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise RuntimeError("mosquitto did not start")

    def version(self) -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "mosquitto"],
                             capture_output=True, text=True)
        return out.stdout.strip() or "?"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Ours:
    name = "amqpbroker"

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        data = Path(tempfile.mkdtemp(dir=tmp))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amqpbroker", "serve", "--host", "127.0.0.1", "--port",
             str(free_port()), "--mqtt-port", str(self.port), "--mqtt-ws-port", "0",
             "--management-port", "0", "--prometheus-port", "0",
             "--data-dir", str(data), "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port):
            raise RuntimeError("amqpbroker did not start")

    def version(self) -> str:
        from amqpbroker import __version__
        return __version__

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--count", type=int, default=20000, help="messages per publisher")
    ap.add_argument("--only", help="comma-separated scenario ids")
    ap.add_argument("--out", help="write all results as JSON here")
    args = ap.parse_args()
    for tool in ("cc", "mosquitto"):
        if shutil.which(tool) is None:
            print(f"{tool} is required (Debian: build-essential, mosquitto, libmosquitto-dev)")
            return 2
    ids = args.only.split(",") if args.only else list(SCENARIOS)
    results: dict[str, dict[str, list[dict]]] = {i: {"sink": [], "mosquitto": [], "amqpbroker": []}
                                                 for i in ids}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        exe = build(tmp)
        common = ["--count", str(args.count), "--size", "16"]
        for sid in ids:  # the generator's own ceiling first
            for _ in range(args.rounds):
                results[sid]["sink"].append(run_load(exe, ["--sink", *SCENARIOS[sid][1], *common]))
        versions = {}
        for rnd in range(args.rounds):
            for cls in (Mosquitto, Ours) if rnd % 2 == 0 else (Ours, Mosquitto):
                broker = cls(tmp)
                versions[broker.name] = broker.version()
                try:
                    for sid in ids:
                        r = run_load(exe, ["--port", str(broker.port), *SCENARIOS[sid][1], *common])
                        results[sid][broker.name].append(r)
                        print(f"round {rnd + 1} {broker.name:10} {sid:7} "
                              f"{r.get('delivery_rate', 0):>9.0f} deliveries/s "
                              f"{r.get('publish_rate', 0):>9.0f} publishes/s ok={r['ok']}",
                              flush=True)
                finally:
                    broker.stop()
    print(f"\nmosquitto {versions.get('mosquitto')}, amqpbroker {versions.get('amqpbroker')}, "
          f"{args.count} messages per publisher, medians of {args.rounds} rounds\n")
    print("| id | workload | generator ceiling | mosquitto | amqpbroker | ratio |")
    print("|---|---|---|---|---|---|")
    for sid in ids:
        med = {k: statistics.median(r.get("delivery_rate", 0) for r in v) if v else 0
               for k, v in results[sid].items()}
        ok = all(r["ok"] for k in ("mosquitto", "amqpbroker") for r in results[sid][k])
        ratio = med["amqpbroker"] / med["mosquitto"] if med["mosquitto"] else 0
        print(f"| {sid} | {SCENARIOS[sid][0]} | {med['sink'] / 1000:.1f}k | "
              f"{med['mosquitto'] / 1000:.1f}k | {med['amqpbroker'] / 1000:.1f}k | "
              f"**{ratio:.2f}×**{'' if ok else ' (incomplete run)'} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
