"""Record what real clients send (the seed corpus of the mutation engine).

    python -m amqpbroker.fuzz capture amqpbroker/fuzz/captures

Runs an embedded broker, taps every connection's received bytes, and drives aio-pika and
pika through a broad session: declares with arguments, bindings, publishes with
properties and headers (small, multi-frame), confirms, consumers, acks/nacks/rejects,
basic.get, qos, transactions, purge, deletes, closes. One file per client connection.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from amqpbroker import server


async def _aiopika(url: str) -> None:
    import aio_pika

    conn = await aio_pika.connect(url)
    ch = await conn.channel(publisher_confirms=True)
    await ch.set_qos(prefetch_count=5)
    ex = await ch.declare_exchange("cap.topic", aio_pika.ExchangeType.TOPIC,
                                   arguments={"alternate-exchange": "cap.ae"})
    q = await ch.declare_queue("cap.q", arguments={"x-max-length": 100, "x-message-ttl": 60000,
                                                   "x-dead-letter-exchange": "cap.dlx"})
    await q.bind(ex, "a.#", arguments={"x-match": "any"})
    for i, size in enumerate((0, 10, 5000, 140_000)):
        await ex.publish(aio_pika.Message(
            b"x" * size, headers={"n": i, "nested": {"l": [1, "two", {"t": True}]}},
            content_type="text/plain", priority=3, correlation_id=str(i), expiration=60,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="a.b")
    msg = await q.get(no_ack=False)
    await msg.ack()
    msg = await q.get(no_ack=False)
    await msg.nack(requeue=True)
    msg = await q.get(no_ack=False)
    await msg.reject(requeue=False)
    async with q.iterator() as it:
        async for m in it:
            await m.ack()
            break
    tx_ch = await conn.channel(publisher_confirms=False)
    tx = tx_ch.transaction()
    await tx.select()
    await tx_ch.default_exchange.publish(aio_pika.Message(b"in tx"), "cap.q")
    await tx.commit()
    await q.purge()
    await q.unbind(ex, "a.#")
    await q.delete(if_unused=False, if_empty=False)
    await ex.delete()
    await conn.close()


def _pika(host: str, port: int) -> None:
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters(host, port))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("cap.direct", "direct", durable=True)
    ch.exchange_declare("cap.e2e", "fanout")
    ch.exchange_bind("cap.e2e", "cap.direct", "k")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "cap.direct", "k")
    ch.basic_publish("cap.direct", "k", b"pika" * 100,
                     pika.BasicProperties(headers={"h": 1}, reply_to="somewhere"))
    ch.basic_get(q, auto_ack=True)
    tag = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(tag)
    ch.basic_recover(requeue=True)
    ch.exchange_unbind("cap.e2e", "cap.direct", "k")
    ch.exchange_delete("cap.e2e")
    ch.queue_delete(q)
    conn.close()


async def capture(directory: str) -> list[str]:
    from amqpbroker.embed import Broker

    recorded: list[bytearray] = []
    original = server.AMQPProtocol.data_received

    def tap(self: Any, data: bytes) -> None:
        if not hasattr(self, "_capture"):
            self._capture = bytearray()
            recorded.append(self._capture)
        self._capture += data
        original(self, data)

    server.AMQPProtocol.data_received = tap  # type: ignore[method-assign]
    try:
        async with Broker() as broker:
            await _aiopika(broker.url)
            await asyncio.to_thread(_pika, "127.0.0.1", broker.port)
    finally:
        server.AMQPProtocol.data_received = original  # type: ignore[method-assign]
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, data in enumerate(recorded):
        path = os.path.join(directory, f"client-{i}.amqp")
        with open(path, "wb") as f:
            f.write(bytes(data))
        paths.append(path)
    return paths


def load(directory: str) -> list[bytes]:
    out = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".amqp"):
            with open(os.path.join(directory, name), "rb") as f:
                out.append(f.read())
    return out
