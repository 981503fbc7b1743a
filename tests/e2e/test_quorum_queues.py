"""Quorum queues on one node (issue 10) with aio-pika: RabbitMQ 4.x's declaration rules and
wording, every message stored whatever its delivery mode, the default delivery limit of 20
with x-delivery-count, two priorities, global QoS refused, and durability across restarts
and kill -9 (a subprocess broker)."""

from __future__ import annotations

import asyncio
import signal

import aio_pika
import pytest
from aio_pika.exceptions import ChannelPreconditionFailed
from aiormq.exceptions import ChannelNotFoundEntity, ConnectionNotImplemented

from amqpbroker.embed import Broker

from test_cli_process import start_broker

QUORUM = {"x-queue-type": "quorum"}


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    pass


async def _error_of(conn: aio_pika.abc.AbstractConnection, **declare) -> str:
    ch = await conn.channel()
    name = declare.pop("name")
    with pytest.raises(ChannelPreconditionFailed) as exc:
        await ch.declare_queue(name, **declare)
    return str(exc.value)


async def test_declaration_rules_and_wording(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("qq", durable=True, arguments=QUORUM)
        assert broker.core.vhosts["/"].queues["qq"].is_quorum
        await ch.declare_queue("qq", durable=True, arguments=QUORUM)  # equivalent
        await ch.declare_queue("qq", passive=True)
        assert q.name == "qq"
        where = "for queue 'bad' in vhost '/'"
        for declare, text in (
            (dict(arguments=QUORUM), f"invalid property 'non-durable' {where}"),
            (dict(durable=True, exclusive=True, arguments=QUORUM),
             f"invalid property 'exclusive-owner' {where}"),
            (dict(durable=True, auto_delete=True, arguments=QUORUM),
             f"invalid property 'auto-delete' {where}"),
            (dict(durable=True, arguments={**QUORUM, "x-max-priority": 10}),
             f"invalid arg 'x-max-priority' {where} of queue type rabbit_quorum_queue"),
            (dict(durable=True, arguments={**QUORUM, "x-queue-mode": "lazy"}),
             f"invalid arg 'x-queue-mode' {where} of queue type rabbit_quorum_queue"),
            (dict(durable=True, arguments={**QUORUM, "x-max-age": "1D"}),
             f"invalid arg 'x-max-age' {where} of queue type rabbit_quorum_queue"),
            (dict(durable=True, arguments={**QUORUM, "x-dead-letter-strategy": "maybe"}),
             f"invalid arg 'x-dead-letter-strategy' {where}: invalid_dlx_strategy"),
            (dict(durable=True, arguments={**QUORUM, "x-quorum-initial-group-size": 0}),
             f"invalid arg 'x-quorum-initial-group-size' {where}: {{value_zero,0}}"),
            (dict(durable=True, arguments={**QUORUM, "x-max-length": -1}),
             f"invalid arg 'x-max-length' {where}: {{value_negative,-1}}"),
        ):
            assert text in await _error_of(conn, name="bad", **declare), declare
        assert "bad" not in broker.core.vhosts["/"].queues
        # Another type for an existing queue is inequivalent (a missing type is classic).
        text = await _error_of(conn, name="qq", durable=True, arguments={"x-queue-type": "classic"})
        assert ("inequivalent arg 'x-queue-type' for queue 'qq' in vhost '/': received the value "
                "'classic' of type 'longstr' but current is the value 'quorum' of type "
                "'longstr'") in text
        text = await _error_of(conn, name="qq", durable=True)
        assert "inequivalent arg 'x-queue-type'" in text
        # Quorum queues are never server-named.
        text = await _error_of(conn, name="", durable=True, arguments=QUORUM)
        assert "Cannot declare a server-named queue for type rabbit_quorum_queue" in text
        # Accepted as RabbitMQ 4.x accepts them on one node.
        ch = await conn.channel()
        await ch.declare_queue("qq2", durable=True, arguments={
            **QUORUM, "x-quorum-initial-group-size": 3, "x-queue-leader-locator": "balanced",
            "x-overflow": "reject-publish-dlx", "x-dead-letter-strategy": "at-least-once",
            "x-max-length": 10})


async def test_missing_queue_type_and_classic_are_equivalent(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("plain", durable=True)
        await ch.declare_queue("plain", durable=True, arguments={"x-queue-type": "classic"})
        await ch.declare_queue("typed", arguments={"x-queue-type": "classic"})
        await ch.declare_queue("typed")
        text = await _error_of(conn, name="plain", durable=True, arguments=QUORUM)
        assert ("received the value 'quorum' of type 'longstr' but current is the value "
                "'classic' of type 'longstr'") in text


async def test_transient_messages_are_stored_and_keep_their_delivery_mode(tmp_path):
    async with Broker(data_dir=str(tmp_path)) as broker:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.declare_queue("qq", durable=True, arguments=QUORUM)
            await ch.declare_queue("cq", durable=True)
            for body in (b"t1", b"t2"):
                await ch.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT),
                    routing_key="qq")
            await ch.default_exchange.publish(aio_pika.Message(b"lost"), routing_key="cq")
    async with Broker(data_dir=str(tmp_path)) as broker:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("qq", durable=True, arguments=QUORUM)
            got = [await q.get(no_ack=True) for _ in range(2)]
            assert [m.body for m in got] == [b"t1", b"t2"]
            assert [m.delivery_mode for m in got] == [aio_pika.DeliveryMode.NOT_PERSISTENT] * 2
            cq = await ch.declare_queue("cq", durable=True)
            assert cq.declaration_result.message_count == 0  # a classic queue drops them


async def test_default_delivery_limit_is_20_with_x_delivery_count(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        dlx = await ch.declare_exchange("dlx", aio_pika.ExchangeType.FANOUT)
        dead = await ch.declare_queue("dead")
        await dead.bind(dlx)
        q = await ch.declare_queue("poison", durable=True,
                                   arguments={**QUORUM, "x-dead-letter-exchange": "dlx"})
        await ch.default_exchange.publish(aio_pika.Message(b"bad"), routing_key="poison")
        counts = []
        for _ in range(21):
            m = await q.get()
            counts.append((m.headers or {}).get("x-delivery-count"))
            await m.reject(requeue=True)
        assert counts == [None] + list(range(1, 21))
        assert await q.get(fail=False) is None
        m = await dead.get()
        death = m.headers["x-death"][0]
        assert death["reason"] == "delivery_limit" and death["queue"] == "poison"
        assert m.headers["x-first-death-reason"] == "delivery_limit"


async def test_explicit_delivery_limit_and_unlimited(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("lim", durable=True,
                                   arguments={**QUORUM, "x-delivery-limit": 1})
        unlimited = await ch.declare_queue("unl", durable=True,
                                           arguments={**QUORUM, "x-delivery-limit": -1})
        for name in ("lim", "unl"):
            await ch.default_exchange.publish(aio_pika.Message(b"x"), routing_key=name)
        for _ in range(2):
            await (await q.get()).nack(requeue=True)
        assert await q.get(fail=False) is None  # dropped: no dead letter exchange
        for _ in range(30):
            await (await unlimited.get()).nack(requeue=True)
        m = await unlimited.get()
        assert m.headers["x-delivery-count"] == 30
        await m.ack()


async def test_two_priorities_high_favoured_two_to_one(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("prio", durable=True, arguments=QUORUM)
        for body, priority in ((b"n0", 0), (b"n1", 4), (b"h0", 5), (b"h1", 9), (b"h2", 255),
                               (b"h3", 7)):
            await ch.default_exchange.publish(aio_pika.Message(body, priority=priority),
                                              routing_key="prio")
        got = [(await q.get(no_ack=True)).body for _ in range(6)]
        assert got == [b"h0", b"h1", b"n0", b"h2", b"h3", b"n1"]


async def test_global_qos_is_not_implemented(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("gq", durable=True, arguments=QUORUM)
        await ch.set_qos(prefetch_count=10, global_=True)
        with pytest.raises(ConnectionNotImplemented) as exc:
            await q.consume(_ignore)
        assert "NOT_IMPLEMENTED - queue 'gq' in vhost '/' does not support global qos" in str(
            exc.value)


async def test_consumer_arguments_conditional_delete_and_basic_get(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("cq2", durable=True, arguments=QUORUM)
        await ch.set_qos(prefetch_count=5)
        with pytest.raises(ChannelPreconditionFailed) as exc:
            await q.consume(_ignore, arguments={"x-stream-offset": "first"})
        assert ("invalid arg 'x-stream-offset' for queue 'cq2' in vhost '/' of queue type "
                "rabbit_quorum_queue") in str(exc.value)
        ch = await conn.channel()
        q = await ch.declare_queue("cq2", durable=True, arguments=QUORUM)
        await ch.default_exchange.publish(aio_pika.Message(b"g"), routing_key="cq2")
        assert (await q.get(no_ack=True)).body == b"g"
        with pytest.raises(ConnectionNotImplemented) as cexc:
            await q.delete(if_unused=True)
        assert ("cannot delete queue 'cq2' in vhost '/'. queue.delete operations with "
                "if-unused flag set are not supported by quorum queues") in str(cexc.value)
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.queue_delete("cq2")
        ch = await conn.channel()
        with pytest.raises(ChannelNotFoundEntity):
            await ch.declare_queue("cq2", passive=True)


async def test_confirmed_messages_survive_kill_9(tmp_path):
    proc, port = start_broker(data_dir=str(tmp_path))
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    try:
        conn = await aio_pika.connect(url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("kq", durable=True, arguments={**QUORUM, "x-delivery-limit": 3})
        await asyncio.gather(*(
            ch.default_exchange.publish(aio_pika.Message(b"m%d" % i), routing_key="kq")
            for i in range(300)))  # transient messages, all confirmed
        got = await (await ch.declare_queue("kq", passive=True)).get()
        await got.ack()
        # An ack is made durable by the next group commit (here: that of this publish).
        await ch.default_exchange.publish(aio_pika.Message(b"last"), routing_key="kq")
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    proc, port = start_broker(data_dir=str(tmp_path))
    try:
        async with await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/") as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("kq", durable=True,
                                       arguments={**QUORUM, "x-delivery-limit": 3})
            assert q.declaration_result.message_count == 300
            bodies = [(await q.get(no_ack=True)).body for _ in range(300)]
            assert sorted(bodies[:-1]) == sorted(b"m%d" % i for i in range(1, 300))
            assert bodies[-1] == b"last"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 10)
        if proc.stderr:
            proc.stderr.close()
