#!/usr/bin/env python3
"""Draw the scale benchmarks' JSON lines (interop/bench_scale.py) as one PNG per axis.

    python interop/plot_scale.py [--out-dir docs/performance] [AXIS ...]

Reads `<out-dir>/<axis>.jsonl` (every `*.jsonl` there when no axis is named; the format is
in interop/scale/common.py) and writes `<out-dir>/<axis>.png`: one figure per axis, one
subplot per key metric (the METRICS table below), x = the step (log scale when the steps
span two decades or more), one line per broker. A step measured several times for a
broker is drawn at its median, with the min..max range as an error bar. Metrics missing
from the data, or only None there (a broker that could not do the step), are skipped with
a note on stderr rather than failing. Needs matplotlib (the `test` extra); draws with the
Agg backend, so no display is needed.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Per axis: (metric key in the records, subplot title with its unit[, y scale]). Edit
# freely: a metric that is not in the data is skipped with a note. The y scale is "log",
# "linear", or left out: then log only when the values span three decades. An axis
# missing here gets its first few numeric metrics.
METRICS: dict[str, list[tuple[str, ...]]] = {
    "connections": [
        ("kb_per_connection", "broker RSS per connection (KB)"),
        ("open_seconds", "time to open all connections (s)"),
        ("probe_active_p99_ms", "probe round trip p99 while held (ms)"),
    ],
    "queues": [
        ("declare_rate", "queue declares per second"),
        ("bytes_per_queue", "broker RSS per queue (bytes)"),
        ("recovery_seconds", "restart: until all are listed again (s)"),
        ("listing_seconds", "management API listing of all queues (s)"),
    ],
    "bindings": [
        ("rss_per_binding_bytes", "broker RSS per binding (bytes)"),
        ("bind_rate", "bindings created per second"),
        ("cold_cpu_us_per_msg", "routing CPU per publish, cold keys (µs)"),
        ("warm_cpu_us_per_msg", "routing CPU per publish, warm keys (µs)"),
    ],
    "sizes": [
        ("mb_per_s", "throughput (MB/s of bodies)"),
        ("rss_per_body", "peak RSS growth / body size (x)"),
        ("cpu_us_per_msg", "broker CPU per message (µs)"),
    ],
    "backlog": [  # backlog.jsonl also holds the `backlog_recovery` records of the last depth
        ("bytes_per_message", "broker RSS per queued message (bytes)"),
        ("publish_rate", "publish rate, confirmed (msg/s)"),
        ("recovery_seconds", "recovery after kill -9 (s)"),
        ("drain_rate", "consume rate while draining (msg/s)"),
    ],
    "fanout": [
        ("fanout_deliveries_per_s", "fanout to N queues: deliveries/s"),
        ("fanout_cpu_us_per_delivery", "fanout: broker CPU per delivery (µs)"),
        ("publishers_deliveries_per_s", "N publishers, one queue: deliveries/s"),
        ("publishers_cpu_us_per_msg", "N publishers: broker CPU per message (µs)"),
    ],
    "latency": [
        ("p50_ms", "latency p50 (ms)", "log"),
        ("p99_ms", "latency p99 (ms)", "log"),
        ("p999_ms", "latency p99.9 (ms)", "log"),
        ("p99_corrected_ms_upper", "p99 + max schedule lag, upper bound (ms)", "log"),
    ],
}
# What the step (x) of each axis counts.
XLABELS = {
    "connections": "connections", "queues": "queues", "bindings": "bindings",
    "sizes": "body size (bytes)", "backlog": "queued messages", "fanout": "N (queues / publishers)",
    "latency": "load (% of the broker's maximum rate)",
}
# Axes whose steps are byte counts get binary units on the x ticks (16 B, 64 KiB, 128 MiB).
BYTE_STEPS = {"sizes"}
COLORS = {"amqpbroker": "tab:blue", "rabbitmq": "tab:orange"}
FALLBACK_METRICS = 4
DPI = 120


def note(msg: str) -> None:
    print(f"plot_scale: {msg}", file=sys.stderr)


def number(x: Any) -> float | None:
    """A plottable number, or None (None, NaN, strings and booleans are not)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x:
        return None
    return float(x)


def load(path: Path) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            note(f"{path}:{i}: not JSON, skipped")
            continue
        if isinstance(row, dict) and number(row.get("step")) is not None and \
                isinstance(row.get("metrics"), dict):
            rows.append(row)
        else:
            note(f"{path}:{i}: no step or metrics, skipped")
    return rows


def series(rows: list[dict[str, Any]], metric: str
           ) -> dict[str, list[tuple[float, float, float, float]]]:
    """broker -> [(step, median, min, max)] over the rows that have `metric` as a number."""
    values: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        v = number(row["metrics"].get(metric))
        if v is not None:
            values[row.get("broker", "?")][float(row["step"])].append(v)
    return {broker: [(step, statistics.median(vs), min(vs), max(vs))
                     for step, vs in sorted(by_step.items())]
            for broker, by_step in values.items()}


def choose_metrics(axis: str, rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    present: list[str] = []
    for row in rows:
        for key, v in row["metrics"].items():
            if key not in present and number(v) is not None:
                present.append(key)
    if axis not in METRICS:
        note(f"{axis}: no metric table, plotting its first {FALLBACK_METRICS} numeric metrics")
        return [(key, key, "") for key in present[:FALLBACK_METRICS]]
    chosen = []
    for key, title, *yscale in METRICS[axis]:
        if key in present:
            chosen.append((key, title, yscale[0] if yscale else ""))
        else:
            note(f"{axis}: metric {key!r} is not in the data (or only None), skipped")
    return chosen


def compact(v: float, binary: bool = False) -> str:
    """A tick label: 950, 10k, 1.5M (or 16 B, 64 KiB, 128 MiB)."""
    if binary:
        for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(v) >= size:
                return f"{v / size:.3g} {unit}"
        return f"{v:.3g} B"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.3g}{unit}"
    return f"{v:.3g}"


def spans_decades(xs: list[float]) -> bool:
    """Positive values over more than about 1.5 decades: worth a log scale."""
    return bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= 30


def plot_axis(axis: str, rows: list[dict[str, Any]], dest: Path) -> bool:
    """Write dest (a PNG); False when there was nothing to draw."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    chosen = choose_metrics(axis, rows)
    if not chosen:
        note(f"{axis}: nothing to plot")
        return False
    ncols = min(2, len(chosen))
    nrows = -(-len(chosen) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows), squeeze=False)
    steps = sorted({float(r["step"]) for r in rows})
    brokers = sorted({r.get("broker", "?") for r in rows})
    for ax, (metric, title, yscale) in zip(axes.flat, chosen):
        data = series(rows, metric)
        ys: list[float] = []
        for broker in brokers:
            points = data.get(broker)
            if not points:
                continue
            x = [p[0] for p in points]
            y = [p[1] for p in points]
            ys += [p[2] for p in points] + [p[3] for p in points]
            spread = any(p[2] != p[3] for p in points)
            yerr = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]] if spread \
                else None
            ax.errorbar(x, y, yerr=yerr, marker="o", markersize=4, capsize=3, linewidth=1.5,
                        color=COLORS.get(broker), label=broker)
        if spans_decades(steps):
            ax.set_xscale("log")
            ax.set_xticks(steps)  # ticks at the measured steps, labelled plainly
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(
            lambda v, _pos: compact(v, binary=axis in BYTE_STEPS)))
        positive = bool(ys) and min(ys) > 0
        if positive and (yscale == "log" or (
                not yscale and spans_decades(ys) and max(ys) / min(ys) >= 1000)):
            ax.set_yscale("log")  # e.g. latency past saturation: keep the low end readable
            if max(ys) / min(ys) < 100:  # few decades: label 2x and 5x too
                ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
                ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: compact(v)))
            else:
                ax.yaxis.set_minor_formatter(NullFormatter())
        elif ys and min(ys) >= 0:
            ax.set_ylim(0, max(ys) * 1.08 or 1)  # from zero, with room above the top point
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: compact(v)))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(XLABELS.get(axis, "step"), fontsize=9)
        ax.tick_params(which="both", labelsize=8)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(chosen):]:
        ax.set_visible(False)
    fig.suptitle(f"scale: {axis}", fontsize=11)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    save_small(buf, dest)
    return True


def save_small(buf: io.BytesIO, dest: Path) -> None:
    """The figure as a 256-colour PNG: a line plot needs few colours, and the file is a
    third of the size for docs/ (Pillow comes with matplotlib)."""
    from PIL import Image

    buf.seek(0)
    with Image.open(buf) as img:
        img.convert("RGB").quantize(256).save(dest, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("axes", nargs="*", help="axes to draw (default: every <axis>.jsonl)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "performance")
    args = ap.parse_args(argv)
    axes = args.axes or sorted(p.stem for p in args.out_dir.glob("*.jsonl"))
    if not axes:
        note(f"no *.jsonl in {args.out_dir}")
    for axis in axes:
        path = args.out_dir / f"{axis}.jsonl"
        if not path.exists():
            note(f"{path} does not exist, skipped")
            continue
        rows = load(path)
        if not rows:
            note(f"{path}: no records, skipped")
            continue
        dest = args.out_dir / f"{axis}.png"
        if plot_axis(axis, rows, dest):
            print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
