"""A tiny application: an order service that publishes events and a worker that bills them."""

from __future__ import annotations

import json

import aio_pika
import pika

EXCHANGE = "orders"


async def place_order(url: str, order_id: int, amount: float) -> None:
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        body = json.dumps({"id": order_id, "amount": amount}).encode()
        await ex.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                         routing_key="order.placed")


def bill_pending(url: str) -> list[dict]:
    """A blocking worker (pika) that bills every placed order waiting in its queue."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, "topic", durable=True)
    ch.queue_declare("billing", durable=True)
    ch.queue_bind("billing", EXCHANGE, "order.placed")
    billed = []
    while True:
        method, _props, body = ch.basic_get("billing")
        if method is None:
            break
        billed.append(json.loads(body))
        ch.basic_ack(method.delivery_tag)
    conn.close()
    return billed


def setup_billing(url: str) -> None:
    bill_pending(url)
