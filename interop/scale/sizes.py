"""Sizes axis: throughput and memory as the message body grows from 16 B to 128 MiB.

    python interop/bench_scale.py sizes [--steps 16,1024,65536,1048576,16777216,134217728]

Per body size S and broker, a fresh broker and the C load generator (amqpgen, built from
../shared/bench by common.build_c_bench): one publisher and one auto-ack consumer on one
queue of the default exchange. amqpgen checks every delivery (count, body size, the ids
in the first 16 bytes); its verdict is recorded as `status` (OK / FAIL / ERROR / TIMEOUT)
with its `problems`. rabbitmq-c splits bodies into 128 KiB frames and reassembles them,
so amqpgen handles 128 MiB bodies itself (checked against both brokers).

1. For S >= 1 MiB, a single message first (amqpgen --count 1): the broker's peak RSS growth
   over its baseline, divided by S, is `rss_per_body` (issue 23's target: a 128 MiB message
   costs at most 2x its size). RSS is sampled from /proc every 20 ms by a thread, which can
   miss a peak shorter than that; `hwm_per_body` uses VmHWM (peak since start) instead:
   exact when the message set the high-water mark (`hwm_set_by_message` 1), an
   overstatement when the broker's startup went higher (RabbitMQ's preallocation can).
2. Throughput: min(200,000, max(8, 2 GiB / S)) messages, cut at 20 s of publishing (drain
   30 s, amqpgen's hard timeout 75 s). Recorded: MB/s (10^6 body bytes delivered per
   second, from the first publish to the last delivery), msg/s in and out, broker CPU
   per delivered message, baseline and peak RSS during the run (a backlog of big messages
   shows here: the publisher is not paced).

Bound: about 80 s per broker and step at worst; a full default run of both brokers takes
a few minutes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .common import Broker, build_c_bench, each_step, proc_status

STEPS = (16, 1024, 65536, 1048576, 16777216, 134217728)
AXIS = "sizes"
MAX_COUNT = 200_000
MIN_COUNT = 8
STEP_BYTES = 2 * 2**30        # body bytes moved per throughput step at most
PUBLISH_SECONDS = 20.0
DRAIN_SECONDS = 30.0
GEN_TIMEOUT = 75.0           # amqpgen's own watchdog
SAMPLE_INTERVAL = 0.02
PROBE_FROM = 2**20           # single-message RSS probe for bodies this big and up
MiB = 2**20


class RssSampler:
    """Peak VmRSS of a process while running, from a thread reading /proc every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.samples = pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
                self.samples += 1
            except (OSError, KeyError):
                return  # the process is gone
            self._stop.wait(SAMPLE_INTERVAL)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        try:  # one last look, after the run
            self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
        except (OSError, KeyError):
            pass


def step_count(size: int) -> int:
    return min(MAX_COUNT, max(MIN_COUNT, STEP_BYTES // size))


def amqpgen(gen: Path, broker: Broker, size: int, count: int) -> dict[str, Any]:
    """Run amqpgen once; its JSON result (or a dict with status ERROR and why)."""
    argv = [str(gen), "--host", "127.0.0.1", "--port", str(broker.port), "--size", str(size),
            "--count", str(count), "--duration", str(PUBLISH_SECONDS),
            "--drain", str(DRAIN_SECONDS), "--timeout", str(GEN_TIMEOUT),
            "--broker-pid", str(broker.pid), "--label", f"sizes{size}"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=GEN_TIMEOUT + 30)
    except subprocess.TimeoutExpired:
        return {"status": "ERROR", "error": f"amqpgen ran past {GEN_TIMEOUT + 30:.0f} s"}
    try:
        # TIMEOUT results (exit 3) still print their JSON with the partial counts
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {"status": "ERROR",
                "error": f"exit {proc.returncode}, no JSON: {proc.stderr.strip()[-300:]}"}


def verdict(result: dict[str, Any]) -> str:
    """The generator's reasons, when it has any (empty when OK)."""
    return "; ".join(s for s in (result.get("error"), result.get("problems")) if s)


def probe(gen: Path, broker: Broker, size: int) -> dict[str, Any]:
    """One message of `size` through a fresh broker: peak RSS growth per body byte."""
    time.sleep(0.5)  # the broker just started: let it settle before the baseline
    before = proc_status(broker.pid)
    with RssSampler(broker.pid) as sampler:
        result = amqpgen(gen, broker, size, 1)
    after = proc_status(broker.pid)
    base = before["VmRSS"]
    out: dict[str, Any] = {
        "probe_status": result.get("status"),
        "probe_rss_base_mib": round(base / MiB, 2),
        "probe_rss_peak_mib": round(sampler.peak / MiB, 2),
        "rss_per_body": round((sampler.peak - base) / size, 3),
        # VmHWM is the peak since the process started: exact when the message set it,
        # an overstatement when startup went higher (then hwm_set_by_message is 0)
        "hwm_per_body": round(max(0, after["VmHWM"] - base) / size, 3),
        "hwm_set_by_message": int(after["VmHWM"] > before["VmHWM"]),
    }
    if result.get("status") != "OK":
        out["probe_problems"] = verdict(result)
    return out


def throughput(gen: Path, broker: Broker, size: int) -> dict[str, Any]:
    count = step_count(size)
    time.sleep(0.5)
    base = proc_status(broker.pid)["VmRSS"]
    with RssSampler(broker.pid) as sampler:
        result = amqpgen(gen, broker, size, count)
    delivered = int(result.get("delivered") or 0)
    out_s = result.get("out_s")
    cpu = result.get("broker_cpu_s")
    metrics: dict[str, Any] = {
        "status": result.get("status"),
        "count": count,
        "published": result.get("published"),
        "delivered": delivered,
        "mb_per_s": round(size * delivered / out_s / 1e6, 2) if delivered and out_s else None,
        "msg_per_s": round(delivered / out_s, 1) if delivered and out_s else None,
        "in_msg_per_s": result.get("in_rate"),
        "cpu_us_per_msg": round(cpu / delivered * 1e6, 2) if delivered and cpu is not None
        else None,
        "broker_cores": result.get("broker_cores"),
        "gen_cores": result.get("gen_cores"),
        "rss_base_mib": round(base / MiB, 2),
        "rss_peak_mib": round(sampler.peak / MiB, 2),
        "rss_growth_mib": round((sampler.peak - base) / MiB, 2),
        "rss_samples": sampler.samples,
        "wall_s": result.get("wall_s"),
    }
    if result.get("status") != "OK":
        metrics["error"] = verdict(result) or str(result.get("status"))
    return metrics


def run(make: Callable[[str], Broker], brokers: list[str], steps: list, out: Path | None,
        work: Path) -> None:
    gen = build_c_bench(work) / "amqpgen"

    def one(broker: Broker, size: int) -> dict[str, Any]:
        metrics = probe(gen, broker, size) if size >= PROBE_FROM else {}
        metrics.update(throughput(gen, broker, size))
        return metrics

    each_step(make, brokers, steps, out, AXIS, one, mb_per_s=None)
