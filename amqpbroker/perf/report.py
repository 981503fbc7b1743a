"""Process statistics from /proc and the two output forms (JSON, table)."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any


def proc_stat(pid: int) -> tuple[float | None, int | None]:
    """(CPU seconds user+sys, RSS in KiB) of a process, (None, None) if unreadable."""
    if not pid:
        return None, None
    cpu = rss = None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                    break
    except (OSError, IndexError, ValueError):
        pass
    return cpu, rss


def machine_busy_s() -> float | None:
    """CPU seconds the whole machine spent busy (tick-sampled, from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or (isinstance(a, float) and math.isnan(a)):
        return None
    return a / b


def emit(res: dict[str, Any], as_json: bool, out: Any = None) -> None:
    out = out or sys.stdout
    if as_json:
        out.write(json.dumps(res, sort_keys=False) + "\n")
    else:
        out.write(render_table(res))
    out.flush()


def _n(v: Any, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}{unit}"
    return f"{int(round(v)):,}{unit}"


def _us(v: int | None) -> str:
    if v is None:
        return "-"
    if v >= 1_000_000:
        return f"{v / 1e6:.2f} s"
    if v >= 1000:
        return f"{v / 1000:.2f} ms"
    return f"{v} us"


def _pl(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def render_table(res: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    add = rows.append
    if res.get("mode") == "connections":
        add(("connections", f"{_n(res.get('opened'))} of {_n(res['params']['connections'])} opened in "
             f"{_n(res.get('open_s'), ' s', 2)} ({_n(res.get('open_rate'), '/s')}); "
             f"{_n(res.get('open_failures'))} failures"))
        o = res.get("open_us") or {}
        add(("open time", f"p50 {_us(o.get('p50'))}  p99 {_us(o.get('p99'))}  max {_us(o.get('max'))}"))
        add(("after hold", f"{_n(res.get('alive_after_hold'))} answered basic.qos; "
             f"{_n(res.get('closed'))} closed in {_n(res.get('close_s'), ' s', 2)}"))
        rss = res.get("broker_rss_kb") or {}
        if rss.get("held"):
            add(("broker", f"RSS {_n(rss.get('before'))} -> {_n(rss.get('held'))} KiB "
                 f"({_n(res.get('broker_rss_growth_kb_per_conn'), ' KiB', 1)} per connection)"))
        add(("tool CPU", f"{_n(res.get('tool_cpu_s'), ' s', 2)}"))
    elif res.get("mode") == "throughput" and res.get("wall_s") is None:
        pass                                   # failed before publishing: the error says it all
    elif res.get("mode") == "throughput":
        p = res["params"]
        add(("scenario", f"{_pl(p['producers'], 'producer')}, {_pl(p['consumers'], 'consumer')}, "
             f"{_pl(p['queues'], 'queue')}, "
             f"{p['exchange']} exchange, {p['size']} B, ack {p['ack']}"
             + (f", prefetch {p['prefetch']}" if p["prefetch"] else "")
             + (f", confirm {p['confirm']}" if p["confirm"] else "")
             + (", persistent" if p["persistent"] else "") + (", durable" if p["durable"] else "")
             + (f", rate {_n(p['rate'])}/s" if p["rate"] else "")))
        add(("published", f"{_n(res.get('published'))} msg in {_n(res.get('pub_s'), ' s', 2)}  "
             f"= {_n(res.get('in_rate'))} msg/s"
             + (f"  (confirmed {_n(res.get('confirmed'))}, nacked {_n(res.get('nacked'))})" if p["confirm"] else "")))
        if p["consumers"]:
            add(("delivered", f"{_n(res.get('delivered'))} of {_n(res.get('expected'))} expected in "
                 f"{_n(res.get('out_s'), ' s', 2)}  = {_n(res.get('out_rate'))} msg/s"))
        else:
            add(("queued", f"{_n(res.get('queued'))} of {_n(res.get('expected'))} expected"))
        lat = res.get("lat_us") or {}
        if lat.get("n"):
            add(("latency", f"p50 {_us(lat.get('p50'))}  p95 {_us(lat.get('p95'))}  "
                 f"p99 {_us(lat.get('p99'))}  max {_us(lat.get('max'))}  (n={_n(lat.get('n'))})"))
        if p["rate"]:
            add(("schedule", f"max lag {_us(res.get('sched_lag_max_us'))}, {_n(res.get('late'))} publishes >1 ms late"))
        add(("tool CPU", f"{_n(res.get('tool_cores'), ' cores', 2)} ({_n(res.get('tool_cpu_s'), ' s', 2)} over "
             f"{_n(res.get('wall_s'), ' s', 2)}); busiest producer {_pct(res.get('producer_busy_max'))}, "
             f"busiest consumer {_pct(res.get('consumer_busy_max'))}"))
        if res.get("broker_cores") is not None:
            rss = res.get("broker_rss_kb") or [None, None]
            add(("broker", f"{_n(res.get('broker_cores'), ' cores', 2)}, RSS {_n(rss[0])} -> {_n(rss[1])} KiB"))
        if res.get("machine_cores") is not None:
            add(("machine", f"{_n(res.get('machine_cores'), ' cores busy', 2)}"))
    if res.get("error"):
        add(("error", res["error"]))
    for w in res.get("warnings") or []:
        add(("warning", w))
    for w in res.get("problems") or []:
        add(("problem", w))
    width = max(len(k) for k, _ in rows) if rows else 0
    head = f"amqpbroker perf [{res.get('label', '')}]: {res.get('status')}"
    return head + "\n" + "".join(f"  {k:<{width}}  {v}\n" for k, v in rows)
