"""Messages over fastcodec.LARGE_BODY (1 MiB) are delivered from views of their body, not
from a copy joined for the delivery (ContentParts, written with `writelines`): the frames
are byte-identical to pamqp's, and real clients get the bodies intact through `serve`
(uvloop) and the embedded broker (asyncio), by basic.consume and basic.get."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time

import aio_pika
from pamqp import body as pbody
from pamqp import commands, frame, header

from amqpbroker.embed import Broker
from amqpbroker.protocol import fastcodec


def test_a_large_delivery_is_parts_equal_to_pamqps_frames():
    body = bytes(range(256)) * (5 * 4096 + 3)  # 5 MiB and change: 41 body frames
    props = b"\x10\x00\x02"  # delivery_mode 2
    out = fastcodec.encode_deliver(1, "ctag", 7, False, "ex", "rk", props, body, 131072)
    assert type(out) is fastcodec.ContentParts
    assert out.size == sum(map(len, out))
    assert not any(isinstance(p, bytes) and len(p) > 131072 for p in out)  # no body copy
    expected = [frame.marshal(commands.Basic.Deliver("ctag", 7, False, "ex", "rk"), 1),
                frame.marshal(header.ContentHeader(0, len(body), commands.Basic.Properties(
                    delivery_mode=2)), 1)]
    expected += [frame.marshal(pbody.ContentBody(body[i:i + 131064]), 1)
                 for i in range(0, len(body), 131064)]
    assert b"".join(out) == b"".join(expected)
    small = fastcodec.encode_deliver(1, "ctag", 7, False, "ex", "rk", props, body[:900_000],
                                     131072)
    assert type(small) is bytes


async def _round_trip(url: str) -> None:
    bodies = [hashlib.sha256(str(i).encode()).digest() * (i * 40_000 + 50_000)
              for i in range(1, 4)]  # 2.9, 4.2 and 5.4 MB
    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        for b in bodies:
            await ch.default_exchange.publish(aio_pika.Message(b), q.name)
        got = []
        async with q.iterator() as it:
            async for msg in it:
                await msg.ack()
                got.append(msg.body)
                if len(got) == 2:
                    break
        assert got == bodies[:2]
        await ch.default_exchange.publish(aio_pika.Message(bodies[2]), q.name)
        msg = await q.get(timeout=10, fail=True)
        assert msg.body == bodies[2]
        await msg.ack()
        msg = await q.get(timeout=10, fail=True)
        assert msg.body == bodies[2]
    finally:
        await conn.close()


async def test_large_messages_through_the_embedded_broker():
    async with Broker() as broker:
        await _round_trip(broker.url)


async def test_large_messages_through_serve():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "amqpbroker", "serve", "--in-memory", "--host", "127.0.0.1",
         "--port", str(port), "--management-port", "0", "--prometheus-port", "0",
         "--mqtt-port", "0", "--mqtt-ws-port", "0", "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "broker did not start"
                time.sleep(0.1)
        await _round_trip(f"amqp://guest:guest@127.0.0.1:{port}/")
    finally:
        proc.terminate()
        proc.wait(10)
