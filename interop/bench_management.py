#!/usr/bin/env python3
"""Scenarios S1-S5 with the management API off and on, alternately, in one sitting.

    python interop/bench_management.py [--rounds 5] [--only S1,S2,S3,S4,S5]
                                       [--modes off,on[,on-idle]] [--bench DIR]
                                       [--metrics]

"on" is the management listener plus a dashboard-like client that reads /api/overview,
/api/queues, /api/connections and /api/channels every 5 seconds while the load runs (and
the broker's own 5 s rate sampler); "on-idle" the listener and sampler without the client;
"off" is `--management-port 0`. Each round starts a fresh broker per mode (`serve
--data-dir`, fsync on), in alternating order, and runs the scenarios with the C load
generator of ../shared/bench, as bench_compare.py does. Prints, per scenario and mode, the
broker's CPU time per delivered message (median [min-max] over the rounds: the figure to
judge, as other load on a shared machine disturbs it less) and deliveries/s, with the
ratio of medians to the first mode. docs/performance.md has the figures. Every run is
bounded in time (the suite's own timeouts).
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
    # --metrics: "on" also runs the Prometheus endpoint, scraped every 5 s (/metrics and
    # /metrics/per-object); "off" has neither (serve's default 15692 is turned off).
    metrics = False

    def __init__(self, management: bool, reads: bool = True) -> None:
        self.management = management
        self.reads = reads
        self.name = ("on" if reads else "on-idle") if management else "off"
        self._stop = threading.Event()
        self.scrapes = 0

    def start(self, work: Path) -> int:
        self.port = free_port()
        self.mport = free_port() if self.management else 0
        self.pport = free_port() if self.management and self.metrics else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--host", "127.0.0.1", "--port",
             str(self.port), "--management-port", str(self.mport),
             "--prometheus-port", str(self.pport), "--data-dir",
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
            for path in ("/metrics", "/metrics/per-object") if self.pport else ():
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.pport}{path}",
                                           timeout=10).read()
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


def spread(values: list[float], digits: int = 2) -> str:
    """median [min-max]"""
    return (f"{statistics.median(values):.{digits}f} "
            f"[{min(values):.{digits}f}-{max(values):.{digits}f}]")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5,
                    help="alternating rounds (each runs every mode once; default 5)")
    ap.add_argument("--only", default="S1,S2,S3,S4,S5")
    ap.add_argument("--modes", default="off,on",
                    help="comma list of off, on (listener + sampler + a client reading the "
                         "API every 5 s) and on-idle (listener + sampler, no client)")
    ap.add_argument("--idle", action="store_true", help="same as --modes off,on-idle")
    ap.add_argument("--bench", default=None,
                    help="the bench folder (default: ../shared/bench next to the repo)")
    ap.add_argument("--metrics", action="store_true",
                    help="'on' also serves Prometheus metrics, scraped every 5 s")
    args = ap.parse_args()
    Broker.metrics = args.metrics
    if args.bench:
        import bench_compare

        bench_compare.SHARED_BENCH = Path(args.bench)
    modes = ["off", "on-idle"] if args.idle else [m for m in args.modes.split(",") if m]
    known = {"off": lambda: Broker(False), "on": lambda: Broker(True),
             "on-idle": lambda: Broker(True, reads=False)}
    if not modes or any(m not in known for m in modes):
        ap.error(f"--modes: choose from {', '.join(known)}")
    brokers = [known[m]() for m in modes]
    figures: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}  # broker CPU microseconds per delivery
    with tempfile.TemporaryDirectory(prefix="bench-mgmt-") as tmp:
        work = Path(tmp)
        bench = build_c_bench(work)
        for rnd in range(args.rounds):
            # alternate the order (ABAB... then BABA...) so drift in the machine's load
            # does not favour one mode
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
    base = brokers[0].name
    others = [b.name for b in brokers[1:]]
    print(f"\nbroker CPU per delivered message, us: median [min-max] of {args.rounds} "
          f"rounds; ratio of medians vs {base} (the figure to judge: other load on the "
          "machine disturbs it less than throughput)")
    _table(args.only.split(","), cpu, base, others, 2)
    print(f"\ndeliveries/s: median [min-max] of {args.rounds} rounds")
    _table(args.only.split(","), figures, base, others, 0)
    return 0


def _table(ids: list[str], values: dict, base: str, others: list[str], digits: int) -> None:
    """One line per scenario: the first mode's median [min-max], then each other mode's
    with its ratio of medians to the first."""
    for sid in ids:
        ref = values.get((sid, base), [])
        line = f"{sid:3} {base} {spread(ref, digits) if ref else 'missing':>26}"
        for name in others:
            vals = values.get((sid, name), [])
            if vals and ref:
                ratio = statistics.median(vals) / statistics.median(ref)
                line += f"   {name} {spread(vals, digits):>26}  {name}/{base} {ratio:6.3f}"
            else:
                line += f"   {name} missing"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
