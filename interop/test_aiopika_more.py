"""aio-pika beyond the tutorials: the ``aio_pika.patterns`` Master/Worker and
RPC patterns, and ``connect_robust`` reconnecting after a broker restart
(consumers resume; durable queues keep their persistent messages)."""
from __future__ import annotations

import asyncio

import aio_pika
import pytest
from aio_pika.patterns import RPC, JsonMaster, Master, NackMessage, RejectMessage
from aio_pika.patterns.rpc import MessageProcessError

from .ecosystem import restartable_broker, unique  # noqa: F401  (fixture)
from .harness import WAIT

pytestmark = pytest.mark.interop

TIMEOUT = 10


async def wait_for_value(predicate, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := predicate()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)
    return value


def proxy_method(proxy, dotted: str):
    """proxy.a.b.c for the name "a.b.c"."""
    for part in dotted.split("."):
        proxy = getattr(proxy, part)
    return proxy


async def test_master_worker(broker_url):
    """Master publishes persistent, mandatory tasks to a queue; two workers (own
    connections, prefetch 1) share them; NackMessage(requeue=True) redelivers,
    RejectMessage(requeue=False) drops."""
    name = unique("aiopika.master")
    master_conn = await aio_pika.connect(broker_url)
    worker_conns = [await aio_pika.connect(broker_url) for _ in range(2)]
    done: list[tuple[int, int]] = []
    attempts: dict[int, int] = {}
    rejected: list[int] = []
    try:
        workers = []
        for index, conn in enumerate(worker_conns):
            channel = await conn.channel()
            await channel.set_qos(prefetch_count=1)

            async def handle(*, n: int, index: int = index) -> None:
                attempts[n] = attempts.get(n, 0) + 1
                if n == 3 and attempts[n] == 1:
                    raise NackMessage(requeue=True)
                if n == 7:
                    rejected.append(n)
                    raise RejectMessage(requeue=False)
                await asyncio.sleep(0.01)
                done.append((n, index))

            workers.append(await Master(channel).create_worker(name, handle, auto_delete=True))
        master = Master(await master_conn.channel())
        for n in range(12):
            await master.create_task(name, kwargs={"n": n})
        await wait_for_value(lambda: len(done) == 11 and rejected, TIMEOUT, "11 tasks done")
        assert sorted(n for n, _ in done) == [n for n in range(12) if n != 7]
        assert attempts[3] == 2 and attempts[7] == 1
        assert {index for _, index in done} == {0, 1}, f"one worker did everything: {done}"
        for worker in workers:
            await worker.close()
    finally:
        for conn in (master_conn, *worker_conns):
            await conn.close()


async def test_master_proxy_json(broker_url):
    """JsonMaster and the attribute proxy: master.proxy.a.b(...) publishes to queue "a.b"."""
    prefix = unique("aiopika.proxy")
    connection = await aio_pika.connect(broker_url)
    try:
        got: asyncio.Queue = asyncio.Queue()
        channel = await connection.channel()
        master = JsonMaster(channel)

        async def handle(**kwargs) -> None:
            await got.put(kwargs)

        worker = await master.create_worker(f"{prefix}.jobs", handle, auto_delete=True)
        await proxy_method(master.proxy, f"{prefix}.jobs")(text="héllo", items=[1, 2])
        assert await asyncio.wait_for(got.get(), TIMEOUT) == {"text": "héllo", "items": [1, 2]}
        await worker.close()
    finally:
        await connection.close()


async def test_rpc_pattern(broker_url):
    """aio_pika.patterns.RPC: calls with reply_to (the caller's exclusive result
    queue) and correlation_id, results and remote exceptions come back; a call to
    a method nobody registered is returned (mandatory) and fails."""
    method = unique("aiopika.rpc")
    server_conn = await aio_pika.connect(broker_url)
    client_conn = await aio_pika.connect(broker_url)
    try:
        server = await RPC.create(await server_conn.channel())
        client = await RPC.create(await client_conn.channel())

        async def multiply(*, x: int, y: int) -> int:
            if x < 0:
                raise ValueError(f"negative: {x}")
            await asyncio.sleep(0.01)
            return x * y

        await server.register(method, multiply, auto_delete=True)
        results = await asyncio.wait_for(asyncio.gather(
            *(client.call(method, kwargs={"x": i, "y": 3}) for i in range(20))), TIMEOUT)
        assert results == [i * 3 for i in range(20)]
        assert await proxy_method(client.proxy, method)(x=6, y=7) == 42
        with pytest.raises(ValueError, match="negative: -1"):
            await asyncio.wait_for(client.call(method, kwargs={"x": -1, "y": 1}), TIMEOUT)
        with pytest.raises(MessageProcessError):
            await asyncio.wait_for(client.call(unique("aiopika.nobody"), kwargs={}), TIMEOUT)
    finally:
        await client_conn.close()
        await server_conn.close()


async def test_rpc_pattern_close(broker_url):
    """RPC.unregister() and RPC.close() on both sides end cleanly."""
    method = unique("aiopika.rpc.close")
    connection = await aio_pika.connect(broker_url)
    try:
        server = await RPC.create(await connection.channel())
        client = await RPC.create(await connection.channel())

        async def echo(*, text: str) -> str:
            return text

        await server.register(method, echo, auto_delete=True)
        assert await asyncio.wait_for(client.call(method, kwargs={"text": "hi"}), TIMEOUT) == "hi"
        await server.unregister(echo)
        await client.close()
        await server.close()
    finally:
        await connection.close()


async def test_connect_robust_survives_broker_restart(restartable_broker):  # noqa: F811
    broker = restartable_broker
    durable_name = unique("aiopika.robust.durable")
    live_name = unique("aiopika.robust.live")
    connection = await aio_pika.connect_robust(broker.url, reconnect_interval=0.5)
    reconnected = asyncio.Event()
    connection.reconnect_callbacks.add(lambda *args: reconnected.set())
    received: list[str] = []
    try:
        channel = await connection.channel(publisher_confirms=True)
        durable = await channel.declare_queue(durable_name, durable=True)
        live = await channel.declare_queue(live_name, durable=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                received.append(message.body.decode())

        await live.consume(on_message)
        for i in range(3):
            await channel.default_exchange.publish(
                aio_pika.Message(f"kept-{i}".encode(),
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 message_id=f"m{i}"),
                routing_key=durable_name)
        await channel.default_exchange.publish(aio_pika.Message(b"live-before"),
                                               routing_key=live_name)
        await wait_for_value(lambda: received == ["live-before"], TIMEOUT, "live-before")

        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
        await asyncio.wait_for(reconnected.wait(), WAIT)

        # The robust channel re-declared the queue and restarted the consumer.
        await channel.default_exchange.publish(aio_pika.Message(b"live-after"),
                                               routing_key=live_name)
        await wait_for_value(lambda: "live-after" in received, TIMEOUT,
                             "the resumed consumer to get live-after")
        assert received == ["live-before", "live-after"]

        # The durable queue and its persistent messages survived the restart.
        check = await connection.channel()
        kept = await check.declare_queue(durable_name, passive=True)
        assert kept.declaration_result.message_count == 3
        bodies = []
        for _ in range(3):
            message = await kept.get(timeout=5)
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            bodies.append((message.message_id, message.body.decode()))
            await message.ack()
        assert bodies == [(f"m{i}", f"kept-{i}") for i in range(3)]
        await check.queue_delete(durable_name)
        await check.queue_delete(live_name)
    finally:
        await connection.close()
