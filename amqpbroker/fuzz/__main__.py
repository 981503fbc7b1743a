"""python -m amqpbroker.fuzz run|capture (see amqpbroker/fuzz/__init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m amqpbroker.fuzz")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run (or continue) the campaign")
    r.add_argument("--state", default="fuzz-state.json", help="progress file (resumed)")
    r.add_argument("--sequences", type=int, default=1_000_000, help="target in total")
    r.add_argument("--minutes", type=float, default=20.0, help="budget of this step")
    r.add_argument("--rss-bound-mib", type=float, default=128.0,
                   help="a finding if the process RSS goes over this")
    c = sub.add_parser("capture", help="record real client traffic (the mutation seeds)")
    c.add_argument("directory")
    a = sub.add_parser("attacks", help="resource attacks against a broker process")
    a.add_argument("--scale", type=float, default=1.0, help="fraction of the counts")
    a.add_argument("--json", help="also write the figures here")
    a.add_argument("--probe-inline", action="store_true",
                   help="run the probe in the attackers' process (the old measurement)")
    args = p.parse_args(argv)
    if args.command == "attacks":
        from amqpbroker.fuzz.attacks import main as attacks

        return attacks(args.scale, args.json, args.probe_inline)
    if args.command == "capture":
        from amqpbroker.fuzz.capture import capture

        print("\n".join(asyncio.run(capture(args.directory))))
        return 0
    from amqpbroker.fuzz.campaign import Campaign

    state = Campaign(args.state, args.rss_bound_mib).step(args.sequences, args.minutes)
    summary = {k: v for k, v in state.items() if k != "findings"}
    summary["findings"] = len(state["findings"])
    print(json.dumps(summary, indent=1))
    for f in state["findings"][:20]:
        print(f"finding ({f['generator']}, batch {f['batch']}): {f['problem']}", file=sys.stderr)
    done = state["sequences"] >= args.sequences
    print("target reached" if done else "not finished: run the same command again to continue",
          file=sys.stderr)
    return 1 if state["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
