"""Fanout axis: how delivery cost grows with the number of queues one message goes to, and
with the number of publishers feeding one queue.

    python interop/bench_scale.py fanout [--brokers rabbitmq,amqpbroker] [--steps 10,100,1000]

For each step N, one fresh broker per broker name, and on it two shapes, both driven by the
C load generator (../shared/bench/amqpgen, built by common.build_c_bench) with
`--broker-pid` so it reports the broker's CPU:

* "fanout": one producer publishes 64 B messages to a fanout exchange bound to N queues,
  each queue with one consumer (auto-ack), for 10 s or DELIVERY_BUDGET / N publishes:
  `amqpgen --exchange fanout --queues N --consumers min(N, 100) --size 64 --duration 10
  --count 800000/N --drain 30`.
  Recorded: deliveries/s (every copy counts), publishes/s, broker CPU per delivery
  (broker_cores / out_rate, in µs).
* "publishers": N producers publish 64 B messages into one queue with one consumer:
  `amqpgen --producers N --size 64 --duration 10 --count 1000000 --drain 20`. Recorded
  the same, the CPU per delivered message.

Both shapes are recorded in one line per broker per step (axis "fanout"), with metrics
prefixed `fanout_` and `publishers_`; `*_ok` is 1 when amqpgen's verdict was OK (every
message delivered once, queues empty), and `error` says what went wrong otherwise.

Limits of the generator, and how this module stays inside them:

* amqpgen runs one thread and one connection per consumer and per producer, and every
  thread polls every 200 µs until all are connected. On this 2-core machine that starves
  the remaining logins beyond about 150 threads (they time out after 5 s, against either
  broker), so at most MAX_THREADS consumer connections are used: with N > MAX_THREADS
  queues each consumer connection consumes N / MAX_THREADS queues (still one consumer per
  queue). The publishers shape cannot spread N producers that way: above MAX_THREADS
  producers it runs scale/many_publishers.py instead (one asyncio process, raw
  pre-marshalled frames, RAW_PUBLISH_BUDGET messages, in a session of its own), and the
  broker's CPU is measured around it (`publishers_generator` says which ran).
* one publish to N queues is N deliveries, and a publisher that runs ahead of the
  consumers leaves a backlog the broker must hold; publishing stops after
  DELIVERY_BUDGET / N messages (`--count`) as well as after 10 s, so the backlog (and the
  time to drain it) stays bounded at every N; likewise the publishers shape stops after
  PUBLISH_BUDGET messages. Without that cap, 100 producers got 4M publishes into their
  sockets in 10 s, and a broker delivering ~100k/s could not drain them in time (closing a
  producer's connection waits until the broker has read everything before it). "publishes/s"
  is what the producers' sockets accepted, so with many producers or queues it is a
  burst into kernel buffers; deliveries/s (first publish to last delivery) is the rate to
  judge. A broker whose RSS passes RSS_LIMIT_MIB during a run has its generator killed
  and the run recorded as an error.
* amqpgen itself gives up after `--timeout` (duration + drain + setup allowance); this
  module kills it 30 s after that if it is still there. Worst case per broker per step is
  about 100 + 90 s; the default run (10, 100, 1000 on both brokers) took ~4 minutes in
  pieces here (amqpbroker ~20 s a step, RabbitMQ ~40-60 s).

amqpgen runs in its own session, so in its own scheduler autogroup (Linux autogroups are
per session and on here): its many threads then share the CPU with the broker as one group.
RabbitMQ is started in a session of its own but amqpbroker is not, so without this amqpgen's
threads would compete with amqpbroker thread by thread and with RabbitMQ as a group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import Broker, build_c_bench, record

STEPS = (10, 100, 1000)
DURATION = 10.0            # seconds of publishing per shape
DRAIN = 20.0               # seconds amqpgen waits for the last deliveries
FANOUT_DRAIN = 30.0        # the same for the fanout shape (RabbitMQ: 800k copies to 1000
                           # queues took 21 s at ~38k deliveries/s)
MAX_THREADS = 100          # generator connections (threads) per side, see the docstring
DELIVERY_BUDGET = 800_000  # deliveries per fanout run at most (publishes x N)
PUBLISH_BUDGET = 1_000_000   # publishes per publishers run at most
RAW_PUBLISH_BUDGET = 300_000  # the same beyond MAX_THREADS (a Python client: kept smaller)
RSS_LIMIT_MIB = 4096       # a broker past this is stopped before it eats the machine
MAX_QUEUES = 1000          # amqpgen's MAXQ


def amqpgen(bench: Path, broker: Broker, args: list[str], *, timeout: float,
            rss_limit_mib: float = RSS_LIMIT_MIB) -> dict[str, Any]:
    """Run amqpgen once against `broker`; its JSON result plus `rc`, `max_rss_mib` and,
    when something went wrong outside amqpgen's own verdict, `run_error`.

    `timeout` is passed as amqpgen's own hard limit; we wait 30 s more before killing it."""
    cmd = [str(bench / "amqpgen"), "--host", "127.0.0.1", "--port", str(broker.port),
           "--broker-pid", str(broker.pid), "--timeout", f"{timeout:g}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + timeout + 30
    max_rss, run_error = 0.0, ""
    try:
        # Poll rather than communicate(): we watch the broker's RSS while the load runs.
        # amqpgen prints a single JSON line, far below the pipe's buffer, so it cannot block.
        while proc.poll() is None:
            try:
                max_rss = max(max_rss, broker.rss_mib())
            except (OSError, KeyError):
                run_error = "the broker died during the run"
                break
            if max_rss > rss_limit_mib:
                run_error = f"broker RSS passed {rss_limit_mib} MiB ({max_rss:.0f} MiB)"
                break
            if time.monotonic() > deadline:
                run_error = f"amqpgen still running {timeout + 30:.0f} s after it started"
                break
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    result: dict[str, Any] = {}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
                break
            except ValueError:
                pass
    if not result and not run_error:
        run_error = f"amqpgen exited {proc.returncode} without a result: {err.strip()[-300:]}"
    result.update(rc=proc.returncode, max_rss_mib=round(max_rss, 1))
    if run_error:
        result["run_error"] = run_error
    return result


def cpu_us_per(result: dict[str, Any], rate_key: str) -> float | None:
    """Broker CPU per message in µs: broker_cores / rate (both over the same window)."""
    cores, rate = result.get("broker_cores"), result.get(rate_key)
    if not cores or not rate:
        return None
    return round(cores / rate * 1e6, 3)


def problem(result: dict[str, Any]) -> str:
    """Why a run is not OK, in one line ("" when it is)."""
    if result.get("run_error"):
        return result["run_error"]
    if result.get("status") == "OK":
        return ""
    text = (result.get("error") or result.get("problems") or "").strip().rstrip(";")
    return f"{result.get('status', '?')}: {text}".strip()


def rounded(x: Any, digits: int = 1) -> float | None:
    return None if x is None else round(float(x), digits)


def other_cores(result: dict[str, Any]) -> float | None:
    """Busy cores of the machine beyond the broker and the generator: other work sharing
    the machine during the run (tick-sampled, so rough); noise to judge the figures by."""
    parts = [result.get(k) for k in ("machine_cores", "broker_cores", "gen_cores")]
    if any(p is None for p in parts):
        return None
    return round(max(0.0, parts[0] - parts[1] - parts[2]), 3)


def shape_metrics(prefix: str, result: dict[str, Any], cpu_key: str) -> dict[str, Any]:
    return {
        f"{prefix}_deliveries_per_s": rounded(result.get("out_rate")),
        f"{prefix}_publishes_per_s": rounded(result.get("in_rate")),
        f"{prefix}_{cpu_key}": cpu_us_per(result, "out_rate"),
        f"{prefix}_broker_cores": rounded(result.get("broker_cores"), 3),
        f"{prefix}_gen_cores": rounded(result.get("gen_cores"), 3),
        f"{prefix}_machine_cores": rounded(result.get("machine_cores"), 3),
        f"{prefix}_other_cores": other_cores(result),
        f"{prefix}_published": result.get("published"),
        f"{prefix}_delivered": result.get("delivered"),
        f"{prefix}_expected": result.get("expected"),
        f"{prefix}_max_rss_mib": result.get("max_rss_mib"),
        f"{prefix}_ok": 1 if not problem(result) else 0,
    }


def run_fanout(bench: Path, broker: Broker, n: int) -> dict[str, Any]:
    consumers = min(n, MAX_THREADS)
    count = max(1, DELIVERY_BUDGET // n)
    # Setup is n queue declares and binds plus `consumers` connections; allow for it.
    timeout = DURATION + FANOUT_DRAIN + 30 + n * 0.02
    result = amqpgen(bench, broker, [
        "--exchange", "fanout", "--queues", str(n), "--consumers", str(consumers),
        "--size", "64", "--duration", f"{DURATION:g}", "--count", str(count),
        "--drain", f"{FANOUT_DRAIN:g}", "--label", "fanout"], timeout=timeout)
    metrics = shape_metrics("fanout", result, "cpu_us_per_delivery")
    metrics.update(fanout_queues=n, fanout_consumer_connections=consumers,
                   fanout_publish_cap=count)
    return {"metrics": metrics, "problem": problem(result)}


def run_publishers(bench: Path, broker: Broker, n: int) -> dict[str, Any]:
    if n > MAX_THREADS:
        return run_many_publishers(broker, n)
    result = amqpgen(bench, broker, [
        "--producers", str(n), "--size", "64", "--duration", f"{DURATION:g}",
        "--count", str(PUBLISH_BUDGET), "--drain", f"{DRAIN:g}", "--label", "publishers"],
        timeout=DURATION + DRAIN + 30 + n * 0.02)
    metrics = shape_metrics("publishers", result, "cpu_us_per_msg")
    metrics["publishers_producers"] = n
    return {"metrics": metrics, "problem": problem(result)}


def run_many_publishers(broker: Broker, n: int) -> dict[str, Any]:
    """More producers than amqpgen can start: scale/many_publishers.py, in a session of its
    own (as amqpgen), with the broker's CPU measured around it."""
    timeout = DURATION + DRAIN + 30 + n * 0.05
    cpu0 = broker.cpu_seconds()
    proc = subprocess.run(
        [sys.executable, "-m", "scale.many_publishers", str(broker.port), str(n),
         str(RAW_PUBLISH_BUDGET), f"{timeout:g}"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
        timeout=timeout + 30, start_new_session=True)
    cpu = broker.cpu_seconds() - cpu0
    if proc.returncode != 0:
        return {"metrics": {"publishers_ok": 0},
                "problem": f"many_publishers exited {proc.returncode}: {proc.stderr[-300:]}"}
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    ok = r["delivered"] == r["sent"]
    metrics = {
        "publishers_ok": int(ok), "publishers_producers": n,
        "publishers_generator": "many_publishers (asyncio, raw frames)",
        "publishers_connect_s": r["connected_s"],
        # A small run's writes can all fit in the socket buffers: published in ~0 s.
        "publishers_deliveries_per_s": round(r["delivered"] / r["delivered_s"])
        if r["delivered_s"] else None,
        "publishers_publishes_per_s": round(r["sent"] / r["published_s"])
        if r["published_s"] else None,
        "publishers_cpu_us_per_msg": rounded(cpu / r["delivered"] * 1e6, 2)
        if r["delivered"] else None,
    }
    return {"metrics": metrics,
            "problem": "" if ok else f"delivered {r['delivered']} of {r['sent']}"}


def measure(make, name: str, bench: Path, n: int) -> tuple[Broker, dict[str, Any], str]:
    """One fresh broker, both shapes on it; (broker, metrics, error text)."""
    broker = make(name)
    metrics: dict[str, Any] = {}
    problems: list[str] = []
    try:
        broker.start()
        for shape, fn in (("fanout", run_fanout), ("publishers", run_publishers)):
            try:
                got = fn(bench, broker, n)
            except Exception as exc:  # noqa: BLE001 - one broken run must not end the axis
                got = {"metrics": {f"{shape}_ok": 0}, "problem": f"{type(exc).__name__}: {exc}"}
            metrics.update(got["metrics"])
            if got["problem"]:
                problems.append(f"{shape}: {got['problem']}")
            if getattr(broker, "proc", None) is not None and broker.proc.poll() is not None:
                problems.append("the broker exited")
                break
        try:
            metrics["rss_mib"] = round(broker.rss_mib(), 1)
        except (OSError, KeyError):
            pass
    except Exception as exc:  # noqa: BLE001 - e.g. the broker did not start
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        broker.close()
    return broker, metrics, "; ".join(problems)


def run(make, brokers: list[str], steps: list, out: Path | None, work: Path) -> None:
    bench = build_c_bench(work)
    for step in steps:
        n = int(step)
        for name in brokers:
            if not 1 <= n <= MAX_QUEUES:
                broker = make(name)  # never started: only its name and version are used
                record(out, "fanout", broker, n, fanout_deliveries_per_s=None,
                       error=f"fanout needs 1..{MAX_QUEUES} queues (amqpgen's limit)")
                broker.cleanup()
                continue
            broker, metrics, error = measure(make, name, bench, n)
            if error:
                metrics["error"] = re.sub(r"\s+", " ", error)[:600]
            record(out, "fanout", broker, n, **metrics)
