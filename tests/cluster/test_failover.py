"""Three broker processes and etcd on loopback: failover under a confirmed publisher and a
consumer (aio-pika), with a checker over the whole history. The short version for CI; the
long one is tests/cluster/soak.py (docs/clustering.md)."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import time

import aio_pika
import pytest

from amqpbroker.cluster import wire

from .harness import Front
from .history import History, check, confirming_from_logs
from .workload import Workload, freeze_leader, kill_leader, wait_until

# aio-pika/aiormq leave warnings behind when the broker under one of their connections is
# SIGKILLed mid-operation (a close coroutine dropped with its cancelled task); they are the
# client library's noise, not what these tests check.
pytestmark = [pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]


async def test_leader_kills_and_freeze_keep_every_confirmed_message(cluster):
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, cluster.wait_isr, 3, 90)
    await _members_only_and_followers_forward(cluster)
    front = Front(cluster)
    await front.start()
    history = History()
    w = Workload(front, history)
    stop_consuming = asyncio.Event()
    tasks = [asyncio.ensure_future(w.publisher()),
             asyncio.ensure_future(w.consumer(stop_consuming))]
    report: dict[str, list[float]] = {}
    try:
        for _ in range(2):
            await kill_leader(cluster, w, report)
        deposed = await freeze_leader(cluster, w, report, seconds=5)
        await kill_leader(cluster, w, report)
        w.running = False
        await asyncio.wait_for(tasks[0], 30)
        drained = await wait_until(lambda: history.confirmed <= w.consumed(), 60)
        stop_consuming.set()
        await asyncio.wait_for(tasks[1], 30)
    finally:
        w.running = False
        stop_consuming.set()
        for t in tasks:
            t.cancel()
        await front.stop()
    history.confirming = confirming_from_logs(cluster.nodes)
    print(f"\nconfirmed={len(history.confirmed)} attempted={len(history.attempted)} "
          f"deliveries={len(history.deliveries)} {report}")
    assert drained, "not every confirmed message was consumed"
    assert len(history.confirmed) > 100
    assert check(history) == []
    # The frozen leader noticed it lost its lease and stepped down instead of confirming.
    events = [e for e in cluster.node(deposed).log_events() if e.get("event") == "cluster.step_down"]
    assert events, f"{deposed} did not step down after SIGCONT"
    # Every failover let publishers confirm again (target: within 5 s; generous here).
    assert all(0 < s < 20 for s in report["failover_seconds"]), report


async def _members_only_and_followers_forward(cluster):
    leader = cluster.node(cluster.wait_leader(30))
    # The replication port: a peer without the cluster secret gets nothing but the nonce.
    reader, writer = await asyncio.open_connection("127.0.0.1", leader.repl_port)
    challenge = await reader.readexactly(16)
    writer.write(struct.pack(">H", 8) + b"intruder" + os.urandom(16)
                 + wire.proof("not-the-secret", b"F", challenge, "intruder"))
    assert await asyncio.wait_for(reader.read(100), 10) == b""
    writer.close()
    assert any(e.get("event") == "cluster.replication_refused" for e in leader.log_events())
    # An AMQP client of a follower is forwarded to the leader.
    follower = next(n for n in cluster.nodes if n is not leader)
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{follower.port}/")
    ch = await conn.channel()
    await ch.declare_queue("declared-via-follower", durable=True)
    await conn.close()
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{leader.port}/")
    ch = await conn.channel()
    await ch.declare_queue("declared-via-follower", passive=True)
    await conn.close()
    # `amqpbroker cluster status` shows the leader, the ISR and both followers connected.
    deadline = time.monotonic() + 20
    while True:
        out = subprocess.run([sys.executable, "-m", "amqpbroker", "cluster", "status", "--json",
                              "--cluster", cluster.etcd.url.replace("http://", "etcd://")],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        status = json.loads(out.stdout)
        followers = [n for n in status["nodes"] if n["role"] == "follower"]
        if all(n.get("connected") for n in followers) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert status["leader"] == leader.name and sorted(status["isr"]) == ["n1", "n2", "n3"]
    assert len(followers) == 2 and all(n["connected"] and n["lag"] >= 0 for n in followers)


def test_checker_finds_each_kind_of_violation():
    h = History(attempted={1, 2, 3}, confirmed={1, 2}, deliveries=[(1, False), (1, False),
                                                                    (4, False)],
                confirming=[("n1", 5), ("n2", 5), ("n2", 7)])
    problems = check(h)
    assert len(problems) == 4, problems
    assert "never consumed: [2]" in problems[0]
    assert "never published: [4]" in problems[1]
    assert "redelivered flag: [1]" in problems[2]
    assert "same term: {5: ['n1', 'n2']}" in problems[3]
    ok = History(attempted={1, 2}, confirmed={1}, deliveries=[(1, False), (1, True), (2, False)],
                 confirming=[("n1", 5), ("n1", 5), ("n2", 9)])
    assert check(ok) == []
