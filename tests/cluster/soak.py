"""The long failover run (docs/clustering.md): etcd + 3 nodes on loopback, confirmed
publishers and a consumer through a TCP front, then

  --kills N            SIGKILL the leader N times (restart it, wait for a full ISR)
  --freeze S           SIGSTOP the leader for S seconds (past its lease), then SIGCONT
  --follower-down N    SIGKILL a follower, bring it back after N more confirmed messages
  --restart-all        SIGKILL every node at once, restart them all

and the history checker over everything. Prints a JSON report; exit 1 on any violation.

    .venv/bin/python -m tests.cluster.soak --kills 20 --freeze 6 --follower-down 100000 \\
        --restart-all
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time

from tests.cluster.harness import Cluster, Front
from tests.cluster.history import History, check, confirming_from_logs
from tests.cluster.workload import Workload, freeze_leader, kill_leader, wait_until


async def run(args: argparse.Namespace) -> int:
    root = args.dir or tempfile.mkdtemp(prefix="amqpbroker-soak-")
    cluster = Cluster(root, lease_ttl=args.lease_ttl)
    cluster.start()
    loop = asyncio.get_running_loop()
    report: dict = {"dir": root}
    history = History()
    front = Front(cluster)
    started = time.monotonic()
    try:
        await loop.run_in_executor(None, cluster.wait_isr, 3, 90)
        await front.start()
        w = Workload(front, history)
        stop = asyncio.Event()
        tasks = [asyncio.ensure_future(w.publisher()) for _ in range(args.publishers)]
        tasks.append(asyncio.ensure_future(w.consumer(stop)))
        for i in range(args.kills):
            await kill_leader(cluster, w, report)
            print(f"kill {i + 1}/{args.kills}: {report['failover_seconds'][-1]} s",
                  file=sys.stderr, flush=True)
        if args.freeze:
            report["deposed"] = await freeze_leader(cluster, w, report, args.freeze)
            print(f"freeze: {report['freeze_failover_seconds'][-1]} s", file=sys.stderr)
        if args.follower_down:
            leader = await loop.run_in_executor(None, cluster.wait_leader, 30)
            follower = next(n for n in cluster.nodes if n.name != leader)
            follower.kill(signal.SIGKILL)
            target = len(history.confirmed) + args.follower_down
            t0 = time.monotonic()
            await wait_until(lambda: len(history.confirmed) >= target, args.timeout)
            report["follower_down_messages"] = len(history.confirmed) - target + args.follower_down
            report["follower_down_seconds"] = round(time.monotonic() - t0, 1)
            t1 = time.monotonic()
            follower.start()
            await loop.run_in_executor(None, cluster.wait_isr, 3, 600)
            report["follower_rejoin_seconds"] = round(time.monotonic() - t1, 1)
            print(f"follower down: {report}", file=sys.stderr)
        if args.restart_all:
            term = (cluster.leader() or ("", 0))[1]
            for node in cluster.nodes:
                node.kill(signal.SIGKILL)
            t0 = time.monotonic()
            cluster.start()
            await loop.run_in_executor(None, cluster.wait_leader, 60, term)
            report["restart_all_leader_seconds"] = round(time.monotonic() - t0, 1)
            await loop.run_in_executor(None, cluster.wait_isr, 3, 600)
            mark = time.monotonic()
            resumed = await wait_until(lambda: w.first_confirm_after(mark) is not None, 60)
            report["restart_all_publishing_again"] = resumed
            report["restart_all_outage_seconds"] = w.outage(t0)
        w.running = False
        await asyncio.wait(tasks[:-1], timeout=30)
        drained = await wait_until(lambda: history.confirmed <= w.consumed(), args.timeout)
        stop.set()
        await asyncio.wait(tasks[-1:], timeout=30)
        report["drained"] = drained
    finally:
        await front.stop()
        cluster.stop()
    history.confirming = confirming_from_logs(cluster.nodes)
    problems = check(history)
    report.update(confirmed=len(history.confirmed), attempted=len(history.attempted),
                  deliveries=len(history.deliveries),
                  redelivered=sum(1 for _, r in history.deliveries if r),
                  terms=len({t for _, t in history.confirming}),
                  seconds=round(time.monotonic() - started), problems=problems)
    print(json.dumps(report, indent=2))
    return 1 if problems or not report.get("drained") else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--freeze", type=float, default=0, help="SIGSTOP seconds (0: skip)")
    p.add_argument("--follower-down", type=int, default=0, metavar="N")
    p.add_argument("--restart-all", action="store_true")
    p.add_argument("--publishers", type=int, default=8)
    p.add_argument("--lease-ttl", type=int, default=2)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--dir", help="keep data and logs here (default: a new tmp dir)")
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
