#!/usr/bin/env python3
"""Run the benchmark scenario suite against amqpbroker and RabbitMQ in one sitting.

    python interop/bench_compare.py [--rounds 5] [--only S1,S2,S3] [--no-rabbitmq]
                                    [--tool c|perf|both] [--baseline GITREF] [--out results.json]

The reference instrument is the C load generator in ../shared/bench (rabbitmq-c; needs
Debian's librabbitmq-dev to build): it is copied to a temporary directory, built, and run
with its fixed scenario suite. `--tool perf` (or both) also runs the same scenarios with
`amqpbroker perf`, the Python generator. Brokers are run alternately (RabbitMQ, ours,
RabbitMQ, ...) as the bench README asks, each on a free port with a fresh data dir; a
private RabbitMQ node is started when `rabbitmq-server` is installed. Prints per scenario
the median with min and max over the rounds, and the ratio of the medians ours / RabbitMQ.
Every run is bounded in time. M1 (memory per queued message) and the start-up figures
come from `bench_footprint.py`, M2 from `bench_flood.py`.

`--baseline GITREF` adds a third broker: amqpbroker as of that commit (checked out in a
temporary git worktree), so a change to the message path is judged before/after in the same
alternating rounds. Besides rates, the table shows broker CPU per message (the C generator's
`broker_cores` divided by the delivery rate, in microseconds): the figure to judge when the
generator, not the broker, is the bottleneck (S1, see ../shared/bench's C0 calibration).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_BENCH = ROOT.parent / "shared" / "bench"
PERF_ARGS = {
    "S1": ["--size", "16"],
    "S2": ["--size", "1024", "--ack", "manual", "--prefetch", "100"],
    "S3": ["--size", "1024", "--durable", "--persistent", "--confirm", "256", "--ack",
           "manual", "--prefetch", "100"],
    "S4": ["--size", "64", "--exchange", "fanout", "--queues", "10", "--consumers", "10"],
    "S5": ["--size", "16", "--exchange", "topic", "--bindings", "1000", "--queues", "4",
           "--consumers", "4"],
    "S6": ["--size", "16", "--rate", "2000", "--ack", "manual", "--prefetch", "100"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


# Listeners a `serve` turns on by default besides AMQP; a baseline that predates one of
# them does not know its flag, so only the flags its `serve --help` lists are passed.
OFF_FLAGS = ("--management-port", "--mqtt-port", "--mqtt-ws-port", "--prometheus-port")


class Ours:
    name = "amqpbroker"

    def __init__(self, tree: Path = ROOT, name: str = "amqpbroker") -> None:
        self.tree, self.name = tree, name
        usage = subprocess.run([sys.executable, "-m", "amqpbroker", "serve", "--help"],
                               cwd=tree, capture_output=True, text=True, timeout=60).stdout
        self.off = [a for flag in OFF_FLAGS if flag in usage for a in (flag, "0")]

    def start(self, work: Path) -> int:
        self.port = free_port()
        data = work / f"ours-{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amqpbroker", "serve", *self.off, "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(data), "--log-level", "warning"],
            cwd=self.tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 15):
            raise RuntimeError("amqpbroker did not start")
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def version(self) -> str:
        return subprocess.run(["git", "-C", str(self.tree), "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip() or "?"


def baseline_tree(ref: str, work: Path) -> Path:
    """A detached worktree of `ref`, removed again by the caller's cleanup."""
    tree = work / f"baseline-{ref}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
                   check=True, capture_output=True, timeout=120)
    return tree


class RabbitMQ:
    name = "rabbitmq"

    def start(self, work: Path) -> int:
        self.port = free_port()
        self.node = f"bench{self.port}@localhost"
        # Debian's rabbitmq-server drops to the rabbitmq user: give it its own directories
        # outside our private temporary directory.
        base = Path(tempfile.mkdtemp(prefix=f"rmq-{self.port}-"))
        self.base = base
        (base / "mnesia").mkdir()
        (base / "log").mkdir()
        base.chmod(0o755)
        if shutil.which("chown"):
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(base)], check=False,
                           capture_output=True)
        env = dict(os.environ, RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_NODENAME=self.node,
                   RABBITMQ_MNESIA_BASE=str(base / "mnesia"), RABBITMQ_LOG_BASE=str(base / "log"),
                   RABBITMQ_DIST_PORT=str(free_port()))
        self.proc = subprocess.Popen(["rabbitmq-server"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     cwd=base)
        if not wait_port(self.port, 60):
            raise RuntimeError("rabbitmq-server did not start")
        time.sleep(1)
        return int(subprocess.run(["rabbitmqctl", "-n", self.node, "eval", "os:getpid()."],
                                  capture_output=True, text=True, timeout=30)
                   .stdout.strip().strip('"') or 0)

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], capture_output=True, timeout=60)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
        shutil.rmtree(self.base, ignore_errors=True)

    def version(self) -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"],
                             capture_output=True, text=True).stdout
        return out.strip() or "?"


def build_c_bench(work: Path) -> Path:
    dest = work / "bench"
    shutil.copytree(SHARED_BENCH, dest)
    for p in dest.rglob("*"):
        p.chmod(p.stat().st_mode | 0o200)
    subprocess.run(["make", "-s", "-C", str(dest)], check=True, timeout=300)
    return dest


def run_c_suite(bench: Path, port: int, pid: int, only: str, out: Path) -> list[dict]:
    # The suite's extras (X1 publish only, X2 drain only) run only when asked for by id.
    extras = [] if any(s in INTAKE for s in only.split(",")) else ["--no-extras"]
    subprocess.run([sys.executable, str(bench / "suite.py"), "127.0.0.1", str(port), str(out),
                    str(pid), "--only", only, *extras, "--conns", "1000"],
                   timeout=1800, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return [r for r in rows if "id" in r or "scenario" in r]


def run_perf(port: int, pid: int, scenario: str) -> dict:
    cmd = [sys.executable, "-m", "amqpbroker", "perf", "--uri",
           f"amqp://guest:guest@127.0.0.1:{port}/", "--duration", "10", "--drain", "20",
           "--json", "--broker-pid", str(pid), *PERF_ARGS[scenario]]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"status": "ERROR", "error": p.stderr[-300:]}


def metric(scenario: str, result: dict) -> float | None:
    """The figure compared for a scenario (higher is better except S6's p99)."""
    r = result.get("result", result)
    if r.get("status") not in ("OK", None) and scenario != "S7":
        return None  # S7 still measures memory when a broker caps its connections
    if scenario == "S6":
        lat = r.get("lat_us") or r.get("latency_us") or {}
        return lat.get("p99")
    if scenario == "S7":
        per_conn_kb = r.get("broker_rss_growth_kb_per_conn")
        if isinstance(per_conn_kb, (int, float)) and per_conn_kb == per_conn_kb:
            return per_conn_kb * 1024
        return None
    if scenario in INTAKE:  # publish only (X1) or the generator alone (C0): messages in
        return r.get("in_rate")
    return r.get("out_rate") or r.get("delivery_rate")


# Scenarios judged by what goes in, not what is delivered: X1 (publish, no consumer) and C0
# (the generator's own ceiling, publishing into a sink that is not a broker).
INTAKE = ("X1", "C0")
CPU_PER_MESSAGE = ("S1", "S2", "S3", "S4", "S5", "X1")


def cpu_us_per_message(result: dict, scenario: str = "") -> float | None:
    """Broker CPU (µs) per delivered message: broker_cores / deliveries per second (per
    published message for X1)."""
    r = result.get("result", result)
    if scenario in INTAKE:  # the broker's CPU over the whole run, per message published
        cpu, published = r.get("broker_cpu_s"), r.get("published")
        if r.get("status") not in ("OK", None) or not cpu or not published:
            return None
        return cpu / published * 1e6
    rate = r.get("out_rate") or r.get("delivery_rate")
    cores = r.get("broker_cores")
    if r.get("status") not in ("OK", None) or not cores or not rate:
        return None
    return cores / rate * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="S1,S2,S3,S4,S5,S6,S7")
    ap.add_argument("--tool", choices=["c", "perf", "both"], default="c")
    ap.add_argument("--no-rabbitmq", action="store_true")
    ap.add_argument("--baseline", metavar="GITREF", default=None,
                    help="also run amqpbroker as of this commit, alternating with the others")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    scenarios = args.only.split(",")
    figures: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        work = Path(tmp)
        brokers = [Ours()]
        if args.baseline:
            brokers.insert(0, Ours(baseline_tree(args.baseline, work),
                                   f"amqpbroker@{args.baseline}"))
        if not args.no_rabbitmq and shutil.which("rabbitmq-server"):
            brokers.insert(0, RabbitMQ())
        try:
            run_rounds(args, brokers, scenarios, figures, work)
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(brokers[-2].tree)], capture_output=True)
    report(figures, scenarios, brokers, args.out)
    return 0


def run_rounds(args, brokers, scenarios, figures, work: Path) -> None:
    bench = build_c_bench(work) if args.tool in ("c", "both") else None
    # S7 measures RSS growth per connection: in a broker that already ran S1-S6 it reuses
    # memory those freed (near 0 bytes per connection), so S7 gets a fresh broker.
    groups = [[s for s in scenarios if s != "S7"], [s for s in scenarios if s == "S7"]]
    for rnd in range(args.rounds):
        for broker in brokers:
            for gi, group in enumerate(g for g in groups if g):
                pid = broker.start(work)
                try:
                    if bench is not None:
                        out = work / f"{broker.name.replace('@', '-')}-{rnd}-{gi}.jsonl"
                        for row in run_c_suite(bench, broker.port, pid, ",".join(group), out):
                            record(figures, "c", row.get("id") or row.get("scenario"), broker,
                                   row)
                    if args.tool in ("perf", "both"):
                        for sid in (s for s in group if s in PERF_ARGS):
                            record(figures, "perf", sid, broker, run_perf(broker.port, pid, sid))
                finally:
                    broker.stop()
            print(f"round {rnd + 1}/{args.rounds} {broker.name}: done", flush=True)


def record(figures, tool: str, sid: str, broker, row: dict) -> None:
    value = metric(sid, row)
    if value is not None:
        figures.setdefault((tool, sid, broker.name), []).append(value)
    cpu = cpu_us_per_message(row, sid) if sid in CPU_PER_MESSAGE else None
    if cpu is not None:
        figures.setdefault((tool, sid + "cpu", broker.name), []).append(cpu)


def report(figures, scenarios, brokers, out) -> None:
    names = [b.name for b in brokers]
    print(f"\n{'tool':5} {'id':6} " + " ".join(f"{n:>28}" for n in names) + "   ratio")
    rows = []
    ids = scenarios + [s + "cpu" for s in scenarios if s in CPU_PER_MESSAGE]
    for tool in ("c", "perf"):
        for sid in ids:
            values = {n: figures[(tool, sid, n)] for n in names if figures.get((tool, sid, n))}
            meds = {n: statistics.median(v) for n, v in values.items()}
            if not meds:
                continue
            ratio = None
            if "rabbitmq" in meds and "amqpbroker" in meds and meds["amqpbroker"]:
                a, r = meds["amqpbroker"], meds["rabbitmq"]
                lower_is_better = sid in ("S6", "S7") or sid.endswith("cpu")
                ratio = (r / a) if lower_is_better else (a / r)
            base = next((n for n in meds if n.startswith("amqpbroker@")), None)
            change = (meds["amqpbroker"] / meds[base]
                      if base and "amqpbroker" in meds and meds[base] else None)
            rows.append({"tool": tool, "id": sid, **meds, "ratio": ratio, "vs_baseline": change,
                         "min": {n: min(v) for n, v in values.items()},
                         "max": {n: max(v) for n, v in values.items()},
                         "rounds": {n: len(v) for n, v in values.items()}})
            print(f"{tool:5} {sid:6} " + " ".join(
                f"{meds[n]:>12.1f} [{min(values[n]):.1f}-{max(values[n]):.1f}]".rjust(28)
                if n in meds else f"{'nan':>28}" for n in names)
                + (f"   {ratio:.2f}x" if ratio else "")
                + (f"   now/baseline {change:.3f}" if change else ""))
    print("\nS1-S5: deliveries/s; S1cpu-S5cpu: broker CPU us per delivery; S6: p99 latency"
          " (us); S7: broker bytes per connection;"
          " median [min-max] over the rounds. Ratio (of the medians) >= 1.0 means"
          " amqpbroker is as good or better than RabbitMQ; now/baseline is the plain quotient"
          " of the medians (for CPU per delivery, <= 1.0 means no more CPU than before).")
    if out:
        Path(out).write_text(json.dumps({"brokers": {b.name: b.version() for b in brokers},
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
