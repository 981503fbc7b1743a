"""Latency axis: publish-to-delivery latency as the load approaches the broker's maximum.

    python interop/bench_scale.py latency [--brokers rabbitmq,amqpbroker] [--steps 25,50,75]

The step is a percentage of the broker's own maximum rate. Per broker, one fresh broker:

1. its maximum rate in the shape of the steps below (one producer, one consumer, 16 B,
   manual acks, prefetch 100, no rate limit, 10 s): amqpgen's `out_rate`, deliveries/s.
   (An auto-ack maximum overstates it: RabbitMQ sustains about half its S1 rate with
   manual acks, and 50 % of S1 built a backlog of seconds there.)
   (On this 2-core machine the rate can be near amqpgen's own ceiling of one publishing thread,
   ~100-150k msg/s; `max_gen_producer_busy` near 1.0 says so.)
2. for each step P, 15 s at a fixed rate R = P% of that maximum, 16 B bodies (exactly the
   send stamp and an id, so every message's latency is measured), manual acks:
   `amqpgen --size 16 --rate R --ack manual --prefetch 100 --duration 15 --drain 20`.
   Recorded: p50/p95/p99/p99.9/max latency in ms from amqpgen's histogram (1 µs steps
   below 2 ms, ~0.1% above), the rate used, the achieved rates and the broker's CPU per
   message.

Schedule lag. amqpgen publishes on a fixed schedule (t0 + i/R) but stamps each message at
the moment it is actually sent, so a publish that starts late (the producer thread was
blocked by TCP back-pressure or not scheduled) hides its wait from the latency figures.
amqpgen reports the largest lag (`sched_lag_max_us`) and, only when more than 1% of the
publishes started over 1 ms late, their count (in its `warnings` text). Recorded:
`sched_lag_max_ms`; `late_share` (the exact share, present only when amqpgen reported it)
and `late_share_upper` (that share, or 0.01 when amqpgen stayed silent); and the upper
bounds `p99_corrected_ms_upper` = p99 + sched_lag_max (likewise for p99.9): a message's
latency counted from its scheduled time is its measured latency plus its own lag, at most
the largest lag, so the p99 counted that way is at most this.

Tail latency here is very sensitive to other work on the machine: with ~1.2 cores of other
load (`other_cores`), even 2,000 msg/s showed a p99 of 144 ms against amqpbroker, where a
quiet machine gives ~1 ms (../shared/bench/README.md, S6). Judge each step by its
`other_cores` and `late_share_upper`, and repeat runs.

Time bound: 10 s + 3 x 15 s of load plus drains and broker start: 63 s for amqpbroker here,
RabbitMQ ~10 s more (its start); a broker's remaining steps are recorded as errors once
BROKER_BUDGET (120 s) has passed (a broker that builds a backlog can use its drains), so a
step started before then can end the axis at most ~95 s later.
Each amqpgen run is also bounded by its own `--timeout` and killed 30 s after that.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from .common import Broker, build_c_bench, record
from .fanout import amqpgen, cpu_us_per, other_cores, problem, rounded

STEPS = (25, 50, 75)
MAX_DURATION = 10.0     # seconds of the unlimited run that finds the maximum rate
STEP_DURATION = 15.0    # seconds at each fixed rate
DRAIN = 20.0
BROKER_BUDGET = 120.0   # seconds per broker, start included; later steps become errors
LATE_RE = re.compile(r"(\d+) of (\d+) publishes started >1 ms behind")


def ms(us: Any) -> float | None:
    return None if us is None else round(float(us) / 1000, 3)


def max_rate(bench: Path, broker: Broker) -> tuple[float | None, dict[str, Any]]:
    result = amqpgen(bench, broker, [
        "--size", "16", "--ack", "manual", "--prefetch", "100", "--duration",
        f"{MAX_DURATION:g}", "--drain", f"{DRAIN:g}", "--label", "latency-max"],
        timeout=MAX_DURATION + DRAIN + 30)
    rate = result.get("out_rate")
    return (float(rate) if rate and not problem(result) else None), result


def step_metrics(result: dict[str, Any]) -> dict[str, Any]:
    lat = result.get("lat_us") or {}
    lag_ms = ms(result.get("sched_lag_max_us"))
    late = LATE_RE.search(result.get("warnings") or "")
    late_share = round(int(late.group(1)) / max(1, int(late.group(2))), 4) if late else None
    metrics: dict[str, Any] = {
        "p50_ms": ms(lat.get("p50")), "p95_ms": ms(lat.get("p95")),
        "p99_ms": ms(lat.get("p99")), "p999_ms": ms(lat.get("p999")),
        "max_ms": ms(lat.get("max")), "latency_samples": lat.get("n"),
        "sched_lag_max_ms": lag_ms,
        "late_share_upper": late_share if late_share is not None else 0.01,
        "achieved_in_rate": rounded(result.get("in_rate")),
        "achieved_out_rate": rounded(result.get("out_rate")),
        "broker_cpu_us_per_msg": cpu_us_per(result, "out_rate"),
        "broker_cores": rounded(result.get("broker_cores"), 3),
        "gen_cores": rounded(result.get("gen_cores"), 3),
        "machine_cores": rounded(result.get("machine_cores"), 3),
        "other_cores": other_cores(result),
        "ok": 0 if problem(result) else 1,
    }
    if late_share is not None:
        metrics["late_share"] = late_share
    for p in ("p99", "p999"):
        if metrics[f"{p}_ms"] is not None and lag_ms is not None:
            metrics[f"{p}_corrected_ms_upper"] = round(metrics[f"{p}_ms"] + lag_ms, 3)
    if not lat.get("n"):  # no stamped delivery at all: the percentiles are amqpgen's zeros
        for k in ("p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms",
                  "p99_corrected_ms_upper", "p999_corrected_ms_upper"):
            metrics[k] = None
    return metrics


def run_broker(make, name: str, bench: Path, steps: list, out: Path | None) -> None:
    started = time.monotonic()
    broker = make(name)
    try:
        try:
            broker.start()
            top, top_result = max_rate(bench, broker)
            why = "" if top else f"no maximum rate: {problem(top_result) or 'no deliveries'}"
        except Exception as exc:  # noqa: BLE001 - e.g. the broker did not start
            top, top_result, why = None, {}, f"{type(exc).__name__}: {exc}"
        common = {"max_rate_msgs_per_s": rounded(top),
                  "max_broker_cpu_us_per_msg": cpu_us_per(top_result, "out_rate"),
                  "max_gen_producer_busy": rounded(top_result.get("gen_producer_busy"), 3)}
        for step in steps:
            pct = float(step)
            if why:
                record(out, "latency", broker, step, p99_ms=None, percent=pct, **common,
                       error=why)
                continue
            if time.monotonic() - started > BROKER_BUDGET:
                record(out, "latency", broker, step, p99_ms=None, percent=pct, **common,
                       error=f"skipped: over the {BROKER_BUDGET:.0f} s budget per broker")
                continue
            rate = max(1, round(top * pct / 100))
            try:
                result = amqpgen(bench, broker, [
                    "--size", "16", "--rate", str(rate), "--ack", "manual",
                    "--prefetch", "100", "--duration", f"{STEP_DURATION:g}",
                    "--drain", f"{DRAIN:g}", "--label", "latency"],
                    timeout=STEP_DURATION + DRAIN + 30)
                metrics = step_metrics(result)
                error = problem(result)
            except Exception as exc:  # noqa: BLE001 - one broken run must not end the axis
                metrics, error = {"p99_ms": None}, f"{type(exc).__name__}: {exc}"
            metrics.update(percent=pct, rate_msgs_per_s=rate, **common)
            if error:
                metrics["error"] = re.sub(r"\s+", " ", error)[:600]
            record(out, "latency", broker, step, **metrics)
            if broker.proc.poll() is not None:
                why = "the broker exited"
    finally:
        broker.close()


def run(make, brokers: list[str], steps: list, out: Path | None, work: Path) -> None:
    bench = build_c_bench(work)
    # Each broker's steps share one maximum and one broker, so brokers take turns per
    # broker here, not per step (two brokers under load at once would measure each other).
    for name in brokers:
        run_broker(make, name, bench, steps, out)
