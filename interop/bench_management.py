#!/usr/bin/env python3
"""Scenarios S1-S5 with the management API off and on, alternately, in one sitting.

    python interop/bench_management.py [--rounds 3] [--only S1,S2,S3,S4,S5]

"On" is the management listener plus a dashboard-like client that reads /api/overview,
/api/queues, /api/connections and /api/channels every 5 seconds while the load runs (and
the broker's own 5 s rate sampler). Uses the C load generator of ../shared/bench, as
bench_compare.py does. Prints medians per scenario and the on/off ratio; docs/performance.md
has the figures. Besides throughput it prints the broker's CPU time per delivered message,
which other load on a shared machine disturbs less. Every run is bounded in time.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compare import ROOT, build_c_bench, free_port, metric, run_c_suite, wait_port  # noqa: E402

AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


class Broker:
    def __init__(self, management: bool, reads: bool = True) -> None:
        self.management = management
        self.reads = reads
        self.name = ("on" if reads else "on-idle") if management else "off"
        self._stop = threading.Event()
        self.scrapes = 0

    def start(self, work: Path) -> int:
        self.port = free_port()
        self.mport = free_port() if self.management else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amqpbroker", "serve", "--host", "127.0.0.1", "--port",
             str(self.port), "--management-port", str(self.mport), "--data-dir",
             str(work / f"data-{self.port}"), "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 15):
            raise RuntimeError("amqpbroker did not start")
        if self.management and self.reads:
            self._stop.clear()
            threading.Thread(target=self._scrape, daemon=True).start()
        return self.proc.pid

    def _scrape(self) -> None:
        while not self._stop.wait(5.0):
            for path in ("/api/overview", "/api/queues", "/api/connections", "/api/channels"):
                req = urllib.request.Request(f"http://127.0.0.1:{self.mport}{path}",
                                             headers={"Authorization": AUTH})
                try:
                    urllib.request.urlopen(req, timeout=10).read()
                    self.scrapes += 1
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="S1,S2,S3,S4,S5")
    ap.add_argument("--idle", action="store_true",
                    help="with management on, no client reads the API (isolates the cost of "
                         "the listener and the sampler from that of the reads)")
    ap.add_argument("--bench", default=None,
                    help="the bench folder (default: ../shared/bench next to the repo)")
    args = ap.parse_args()
    if args.bench:
        import bench_compare

        bench_compare.SHARED_BENCH = Path(args.bench)
    figures: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}  # broker CPU microseconds per delivery
    brokers = [Broker(False), Broker(True, reads=not args.idle)]
    with tempfile.TemporaryDirectory(prefix="bench-mgmt-") as tmp:
        work = Path(tmp)
        bench = build_c_bench(work)
        for rnd in range(args.rounds):
            for broker in (brokers if rnd % 2 == 0 else brokers[::-1]):
                pid = broker.start(work)
                try:
                    out = work / f"{broker.name}-{rnd}.jsonl"
                    for row in run_c_suite(bench, broker.port, pid, args.only, out):
                        sid = row.get("id") or row.get("scenario")
                        value = metric(sid, row)
                        if value is not None:
                            figures.setdefault((sid, broker.name), []).append(value)
                        r = row.get("result", row)
                        if r.get("broker_cpu_s") and r.get("delivered"):
                            cpu.setdefault((sid, broker.name), []).append(
                                r["broker_cpu_s"] * 1e6 / r["delivered"])
                finally:
                    broker.stop()
                print(f"round {rnd + 1}/{args.rounds} management {broker.name}: done "
                      f"({broker.scrapes} API reads so far)", flush=True)
    print(f"\n{'id':3} {'off':>12} {'on':>12}  on/off   (deliveries/s, medians of "
          f"{args.rounds}; all runs)")
    for sid in args.only.split(","):
        off, on = figures.get((sid, "off"), []), figures.get((sid, brokers[1].name), [])
        if not off or not on:
            print(f"{sid:3} missing")
            continue
        a, b = statistics.median(off), statistics.median(on)
        print(f"{sid:3} {a:>12.0f} {b:>12.0f}  {b / a:6.3f}   off={[round(x) for x in off]} "
              f"on={[round(x) for x in on]}")
    print("\nbroker CPU per delivered message (us; less sensitive to other load on the "
          "machine than throughput)")
    for sid in args.only.split(","):
        off, on = cpu.get((sid, "off"), []), cpu.get((sid, brokers[1].name), [])
        if off and on:
            a, b = statistics.median(off), statistics.median(on)
            print(f"{sid:3} off {a:7.2f}  on {b:7.2f}  on/off {b / a:6.3f}   "
                  f"off={[round(x, 2) for x in off]} on={[round(x, 2) for x in on]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
