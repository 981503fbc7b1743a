#!/usr/bin/env python3
"""How cost grows with the work: one axis at a time, amqpbroker against RabbitMQ.

    python interop/bench_scale.py AXIS [AXIS ...] [--brokers rabbitmq,amqpbroker]
                                  [--steps 100,1000,10000] [--out-dir docs/performance]
    python interop/plot_scale.py [--out-dir docs/performance]

Axes (each a module of interop/scale/ with its own default steps and time bounds):
connections, queues, bindings, backlog, sizes, fanout, latency. Every broker is started fresh by
the axis (interop/scale/common.py: same flags, management on, open-files limit raised,
512 MiB message limit) on free ports; brokers alternate step by step where the axis
allows it. Each measured step is one JSON line appended to `<out-dir>/<axis>.jsonl`
(the format is in interop/scale/common.py); plot_scale.py draws them as PNGs next to it.
A broker that cannot do a step records the error and the run goes on.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale.common import ROOT, make_broker, raise_nofile  # noqa: E402

AXES = ("connections", "queues", "bindings", "backlog", "sizes", "fanout", "latency")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("axes", nargs="+", choices=AXES)
    ap.add_argument("--brokers", default="rabbitmq,amqpbroker",
                    help="comma-separated, in the order they alternate")
    ap.add_argument("--steps", default="", help="comma-separated x values (default: the axis's)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "performance")
    ap.add_argument("--no-out", action="store_true", help="print only, write no JSON lines")
    args = ap.parse_args(argv)
    raise_nofile()
    brokers = [b for b in args.brokers.split(",") if b]
    if "rabbitmq" in brokers and shutil.which("rabbitmq-server") is None and \
            not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists():
        print("rabbitmq-server is not installed: measuring amqpbroker only", file=sys.stderr)
        brokers.remove("rabbitmq")
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    try:
        for axis in args.axes:
            module = importlib.import_module(f"scale.{axis}")
            steps = ([float(s) if "." in s else int(s) for s in args.steps.split(",")]
                     if args.steps else list(module.STEPS))
            out = None if args.no_out else args.out_dir / f"{axis}.jsonl"
            started = time.monotonic()
            module.run(lambda name: make_broker(name, work), brokers, steps, out, work)
            print(f"# {axis}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
