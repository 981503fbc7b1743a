"""N publishers into one queue with one consumer, from one asyncio process: the fan-out
axis's "publishers" shape beyond what amqpgen can start (one thread per connection, about
100 here; see scale/fanout.py).

    python -m scale.many_publishers PORT N COUNT TIMEOUT   # run from interop/; prints JSON

Raw AMQP connections (scale.backlog.RawClient: pre-marshalled frames, so the client costs
little per message): one no-ack consumer on a transient queue, then N publisher
connections (opened at most OPENING at a time), each writing COUNT / N transient 64 B
messages in blocks of BLOCK publishes. Prints connected/published/delivered seconds and
counts; the caller measures the broker's CPU around it. Bounded: every step by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from pamqp import commands, frame, header
from pamqp import body as pbody

from scale.backlog import RawClient

QUEUE = "scale-publishers"
SIZE = 64
BLOCK = 100
OPENING = 50


def block_of(n: int) -> bytes:
    one = (frame.marshal(commands.Basic.Publish(exchange="", routing_key=QUEUE), 1)
           + frame.marshal(header.ContentHeader(0, SIZE, commands.Basic.Properties()), 1)
           + frame.marshal(pbody.ContentBody(b"p" * SIZE), 1))
    return one * n


async def count_deliveries(client: RawClient, total: int, deadline: float) -> int:
    got = 0
    while got < total and time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(client.r.read(1 << 20), deadline - time.monotonic())
        except asyncio.TimeoutError:
            break
        if not data:
            break
        for ftype, _, payload in client.reader.feed(data):  # deliveries by their method frame
            if ftype == 1 and payload[:4] == b"\x00\x3c\x00\x3c":
                got += 1
    return got


async def main(port: int, n: int, count: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    consumer = await RawClient().connect(port)
    await consumer.call(commands.Queue.Declare(queue=QUEUE), commands.Queue.DeclareOk)
    await consumer.call(commands.Basic.Consume(queue=QUEUE, no_ack=True),
                        commands.Basic.ConsumeOk)
    opening = asyncio.Semaphore(OPENING)

    async def open_one() -> RawClient:
        async with opening:
            return await RawClient().connect(port, timeout=max(1.0, deadline - time.monotonic()))

    t0 = time.monotonic()
    publishers = await asyncio.gather(*(open_one() for _ in range(n)))
    connected_s = time.monotonic() - t0
    per = max(BLOCK, count // n // BLOCK * BLOCK)
    total = per * n
    block = block_of(BLOCK)

    async def publish(client: RawClient) -> None:
        for _ in range(per // BLOCK):
            client.w.write(block)
            await asyncio.wait_for(client.w.drain(), max(0.1, deadline - time.monotonic()))

    start = time.monotonic()
    counting = asyncio.create_task(count_deliveries(consumer, total, deadline))
    await asyncio.gather(*(publish(c) for c in publishers))
    published_s = time.monotonic() - start
    delivered = await counting
    delivered_s = time.monotonic() - start
    for c in (*publishers, consumer):
        c.close()
    return {"producers": n, "connected_s": round(connected_s, 2), "sent": total,
            "published_s": round(published_s, 4), "delivered": delivered,
            "delivered_s": round(delivered_s, 4)}


if __name__ == "__main__":
    port, n, count, timeout = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                               float(sys.argv[4]))
    print(json.dumps(asyncio.run(main(port, n, count, timeout))))
