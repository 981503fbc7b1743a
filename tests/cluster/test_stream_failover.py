"""Stream queues survive a leader kill (issue 21): their records and tracked consumer
offsets go through the core's one stream of durable changes, so followers hold the same
log; a publish to a stream is confirmed only once the ISR has it.

Three broker processes and etcd on loopback (tests/cluster/harness.py): N messages are
published with confirms to a stream on the leader, a tracked consumer (LavinMQ's
server-side offset tracking) acks part of them, the leader is SIGKILLed, and on the new
leader a consumer with x-stream-offset=first reads all N in order at the same offsets,
while the tracked consumer resumes after its stored offset.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pytest


pytestmark = [pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]

STREAM = {"x-queue-type": "stream", "x-stream-max-segment-size-bytes": 20_000}
N = 600
TRACKED = 250  # messages the tracked consumer acks before the kill


async def _read(conn: aio_pika.abc.AbstractConnection, count: int,
                arguments: dict, tag: str | None = None) -> list[aio_pika.IncomingMessage]:
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=100)
    q = await ch.declare_queue("s", durable=True, arguments=STREAM)
    got: list[aio_pika.IncomingMessage] = []
    async with q.iterator(arguments=arguments, consumer_tag=tag) as it:
        async for m in it:
            got.append(m)
            await m.ack()
            if len(got) == count:
                break
    await ch.close()
    return got


async def test_a_stream_survives_a_leader_kill_with_the_same_offsets(cluster):
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, cluster.wait_isr, 3, 90)
    leader = cluster.wait_leader()
    term = cluster.leader()[1]
    node = cluster.node(leader)
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{node.port}/")
    ch = await conn.channel(publisher_confirms=True)
    await ch.declare_queue("s", durable=True, arguments=STREAM)
    for i in range(N):  # each confirmed: on the disk of every ISR node
        await ch.default_exchange.publish(aio_pika.Message(
            b"m%d" % i, message_id=str(i), headers={"n": i}), "s")
    tracked = await _read(conn, TRACKED, {"x-stream-automatic-offset-tracking": True},
                          tag="reader-1")
    assert [m.headers["x-stream-offset"] for m in tracked] == list(range(TRACKED))
    # One more confirmed publish: its confirm waits for the ISR to hold every change made
    # before it, the tracked offset included (an ack itself gets no confirm).
    await asyncio.sleep(0.2)
    await ch.default_exchange.publish(aio_pika.Message(b"last", message_id=str(N)), "s")
    await conn.close()

    await loop.run_in_executor(None, node.kill)
    new = await loop.run_in_executor(
        None, lambda: cluster.wait_leader(timeout=60, newer_than=term))
    assert new != leader
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{cluster.node(new).port}/")
    try:
        got = await _read(conn, N + 1, {"x-stream-offset": "first"})
        assert [m.body for m in got] == [b"m%d" % i for i in range(N)] + [b"last"]
        assert [m.headers["x-stream-offset"] for m in got] == list(range(N + 1))
        assert [m.headers["n"] for m in got[:N]] == list(range(N))
        assert [m.message_id for m in got] == [str(i) for i in range(N + 1)]
        resumed = await _read(conn, 5, {"x-stream-automatic-offset-tracking": True},
                              tag="reader-1")
        assert [m.headers["x-stream-offset"] for m in resumed] == list(
            range(TRACKED, TRACKED + 5))
        # the new leader appends after the same offsets
        ch = await conn.channel(publisher_confirms=True)
        await ch.default_exchange.publish(aio_pika.Message(b"after"), "s")
        after = await _read(conn, 1, {"x-stream-offset": N + 1})
        assert after[0].body == b"after" and after[0].headers["x-stream-offset"] == N + 1
    finally:
        await conn.close()
