"""A pipelined flood on one connection (5,000 queue.declare nowait in one write, as in the
resource attacks): every frame is handled, in order, and another client is served
meanwhile. The latency effect is measured by `python -m amqpbroker.fuzz attacks`."""

from __future__ import annotations

import asyncio

import aio_pika
from pamqp import commands, frame

from amqpbroker.embed import Broker
from amqpbroker.fuzz.oracle import handshake_bytes

DECLARE_OK = b"\x00\x32\x00\x0b"  # queue.declare-ok: class 50, method 11


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    buf = b""
    while marker not in buf:
        chunk = await asyncio.wait_for(reader.read(65536), 60)
        assert chunk, buf[-200:]
        buf += chunk
    return buf


async def test_a_pipelined_flood_is_handled_whole_and_in_order_in_slices():
    n = 5000
    flood = b"".join(frame.marshal(commands.Queue.Declare(queue=f"flood-{i}", nowait=True), 1)
                     for i in range(n))
    # a passive declare of the last one: answered only if every declare before it ran
    flood += frame.marshal(commands.Queue.Declare(queue=f"flood-{n - 1}", passive=True), 1)
    async with Broker() as broker:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        writer.write(handshake_bytes())
        writer.write(flood)
        other = await aio_pika.connect(broker.url)
        try:
            ch = await other.channel()
            q = await ch.declare_queue("", exclusive=True)
            await ch.default_exchange.publish(aio_pika.Message(b"served"), routing_key=q.name)
            got = None
            for _ in range(200):
                got = await q.get(no_ack=True, fail=False)
                if got is not None:
                    break
                await asyncio.sleep(0.02)
            assert got is not None and got.body == b"served"
            out = await _read_until(reader, DECLARE_OK)
            assert b"\x00\x0a\x00\x32" not in out  # no connection.close
            queues = broker.core.vhosts["/"].queues
            assert all(f"flood-{i}" in queues for i in range(n))
        finally:
            writer.close()
            await other.close()
