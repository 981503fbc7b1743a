"""Turn a finished (or timed-out) throughput run into the report dict."""

from __future__ import annotations

import resource
import time
from typing import TYPE_CHECKING, Any

from . import hist, report, verify

if TYPE_CHECKING:
    from .runner import ThroughputRun


def _sum(rows: list[dict[str, Any]], key: str) -> int:
    return sum(int(r.get(key) or 0) for r in rows)


def tool_cpu_total_s() -> float:
    """CPU of this process plus its waited-for children, setup included."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def totals(r: "ThroughputRun") -> verify.Totals:
    cfg, sh = r.cfg, r.sh
    prods = r.results["producer"]
    cons = list(r.results["consumer"].values())
    t = verify.Totals(consumers=cfg.consumers, confirm=bool(cfg.confirm), ids_checked=cfg.stamped,
                      residual=r.residual, queued=r.queued, settled=r.settled)
    for i in range(cfg.producers):
        sent = prods[i]["sent"] if i in prods else int(sh.published[i])
        e, s = verify.expected_totals(sent, i, r.topo.reach)
        t.published += sent
        t.expected += e
        t.expected_id_sum += s
    t.confirmed = _sum(list(prods.values()), "confirmed")
    t.nacked = _sum(list(prods.values()), "nacked")
    if len(cons) == cfg.consumers:
        t.delivered = _sum(cons, "got")
    else:
        t.delivered = sum(sh.delivered[: cfg.consumers])
    t.delivered_id_sum = _sum(cons, "id_sum")
    t.bad_body = _sum(cons, "bad")
    t.redelivered = _sum(cons, "redelivered")
    return t


def throughput_report(r: "ThroughputRun", error: str, forced: str | None) -> dict[str, Any]:
    cfg = r.cfg
    prods = list(r.results["producer"].values())
    cons = list(r.results["consumer"].values())
    t = totals(r)
    problems = [] if error or forced or not r.t0 else verify.problems(t)
    status = forced or ("ERROR" if error else "FAIL" if problems else "OK")
    warnings = list(r.warnings)
    t0 = r.t0
    t_stop = r.t_stop or time.monotonic_ns()
    wall = (t_stop - t0) / 1e9 if t0 else None
    pub_end = max((p["t_end"] for p in prods), default=0)
    pub_s = (pub_end - t0) / 1e9 if t0 and pub_end else wall     # wall: partial (timeout)
    last = max((c["t_last"] for c in cons if c.get("t_last")), default=0)
    out_s = (last - t0) / 1e9 if t0 and last else wall
    h = hist.merge(c["hist"] for c in cons)
    lat = hist.summary(h, max((c["lat_max_us"] for c in cons), default=None) if h else None)
    cpu0, mach0, bcpu0, rss0 = r.start_stats
    cpu1, mach1, bcpu1, rss1 = r.end_stats if r.end_stats else (time.process_time(), report.machine_busy_s(),
                                                                   *report.proc_stat(cfg.broker_pid))
    tool_cpu = (cpu1 - cpu0) + sum(p["cpu_s"] for p in prods + cons) if t0 else None
    lag_max = max((p["lag_max_ns"] for p in prods), default=0)
    late = _sum(prods, "late")
    if cfg.rate and t.published and late > t.published / 100:
        warnings.append(f"{late} of {t.published} publishes started over 1 ms late "
                        f"(max lag {lag_max / 1e6:.1f} ms): the rate was not kept")
    for kind, rows in (("producer", r.results["producer"]), ("consumer", r.results["consumer"])):
        for i, row in rows.items():
            if row.get("busy", 0) > 0.9:
                warnings.append(f"{kind} {i} was {100 * row['busy']:.0f}% busy: the tool may be the bottleneck")
    if _sum(prods, "blocked"):
        warnings.append(f"the broker sent connection.blocked {_sum(prods, 'blocked')} times")
    return {
        "label": cfg.label, "mode": "throughput", "status": status, "error": error,
        "problems": problems, "warnings": warnings,
        "params": {"producers": cfg.producers, "consumers": cfg.consumers, "queues": cfg.queues,
                   "exchange": cfg.exchange, "bindings": len(r.topo.bindings), "size": cfg.size,
                   "persistent": cfg.persistent, "durable": cfg.durable, "confirm": cfg.confirm,
                   "ack": cfg.ack, "prefetch": cfg.prefetch, "multi_ack": cfg.multi_ack,
                   "count": cfg.count, "duration": cfg.duration, "rate": cfg.rate},
        "published": t.published, "confirmed": t.confirmed, "nacked": t.nacked,
        "expected": t.expected, "delivered": t.delivered, "queued": t.queued, "residual": t.residual,
        "delivered_per_consumer": [int(n) for n in r.sh.delivered[: cfg.consumers]],
        "redelivered": t.redelivered, "bad_body": t.bad_body,
        "pub_s": pub_s, "in_rate": report.ratio(t.published, pub_s),
        "out_s": out_s, "out_rate": report.ratio(t.delivered, out_s) if cfg.consumers else None,
        "lat_us": lat, "sched_lag_max_us": lag_max // 1000, "late": late,
        "wall_s": wall, "setup_s": r.setup_s,
        "tool_cpu_s": tool_cpu, "tool_cores": report.ratio(tool_cpu, wall),
        "tool_cpu_total_s": tool_cpu_total_s(), "tool_processes": 1 + len(r.procs),
        "producer_busy_max": max((p["busy"] for p in prods), default=None),
        "consumer_busy_max": max((c["busy"] for c in cons), default=None),
        "machine_cores": report.ratio(None if mach0 is None or mach1 is None else mach1 - mach0, wall),
        "broker_cpu_s": None if bcpu0 is None or bcpu1 is None else bcpu1 - bcpu0,
        "broker_cores": report.ratio(None if bcpu0 is None or bcpu1 is None else bcpu1 - bcpu0, wall),
        "broker_rss_kb": [rss0, rss1],
    }
