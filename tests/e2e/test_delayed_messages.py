"""x-delayed-message with real clients: aio-pika, pika, and a kill -9 of a broker process."""

import asyncio
import os
import signal
import time

import aio_pika
import pika
import pytest
from aio_pika.exceptions import ChannelPreconditionFailed, DeliveryError

from amqpbroker.embed import run_in_thread
from test_cli_process import start_broker


async def _take(queue, n, timeout=10.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = await queue.get(fail=False, no_ack=True)
        if m is None:
            await asyncio.sleep(0.02)
        else:
            got.append(m)
    return got


@pytest.mark.parametrize("inner,key,bind_key,bind_args,headers", [
    ("direct", "k", "k", None, {}),
    ("fanout", "any", "", None, {}),
    ("topic", "eu.orders.new", "*.orders.#", None, {}),
    ("headers", "", "", {"x-match": "any", "kind": "invoice"}, {"kind": "invoice"}),
])
async def test_each_delayed_type_delivers_after_the_delay(broker, inner, key, bind_key,
                                                         bind_args, headers):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange("delayed", "x-delayed-message",
                                       arguments={"x-delayed-type": inner})
        q = await ch.declare_queue("dq")
        await q.bind(ex, routing_key=bind_key, arguments=bind_args)
        started = time.monotonic()
        await ex.publish(aio_pika.Message(b"later", headers={**headers, "x-delay": 400}),
                         routing_key=key)
        await ex.publish(aio_pika.Message(b"now", headers=headers), routing_key=key)
        first = await _take(q, 1)
        assert [m.body for m in first] == [b"now"]  # no x-delay: routed at once
        second = await _take(q, 1)
        assert [m.body for m in second] == [b"later"]
        assert time.monotonic() - started >= 0.38
        assert second[0].headers["x-delay"] == -400


async def test_due_order_confirms_and_mandatory(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        ex = await ch.declare_exchange("dx", "x-delayed-message", durable=True,
                                       arguments={"x-delayed-type": "direct"})
        q = await ch.declare_queue("ordered", durable=True)
        await q.bind(ex, routing_key="k")
        delays = [900, 300, 600, 100, 700, 200]
        for i, d in enumerate(delays):
            await ex.publish(aio_pika.Message(b"%d" % i, headers={"x-delay": d},
                                              delivery_mode=2), routing_key="k", mandatory=True)
        got = await _take(q, len(delays))
        assert [int(m.body) for m in got] == sorted(range(len(delays)), key=lambda i: delays[i])
        # Mandatory and no binding matches now: returned at once (312 NO_ROUTE), not kept.
        with pytest.raises(DeliveryError) as err:
            await ex.publish(aio_pika.Message(b"lost", headers={"x-delay": 100}),
                             routing_key="nobody", mandatory=True)
        assert err.value.frame.reply_code == 312
        await asyncio.sleep(0.3)
        assert broker.core.vhosts["/"].delayed.count(broker.core.vhosts["/"].exchanges["dx"]) == 0


async def test_declare_errors_and_lavinmq_argument(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        with pytest.raises(ChannelPreconditionFailed, match="x-delayed-type"):
            await ch.declare_exchange("bad", "x-delayed-message")
        ch = await conn.channel()
        lx = await ch.declare_exchange("lavin", "fanout", arguments={"x-delayed-exchange": True})
        q = await ch.declare_queue("lq")
        await q.bind(lx)
        await lx.publish(aio_pika.Message(b"d", headers={"x-delay": 300}), routing_key="")
        assert await q.get(fail=False) is None
        vhost = broker.core.vhosts["/"]
        assert vhost.delayed.counts() == {"lavin": 1}
        assert [m.body for m in await _take(q, 1)] == [b"d"]


def test_pika_delayed_publish_with_confirms():
    with run_in_thread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("pdx", "x-delayed-message", durable=True,
                            arguments={"x-delayed-type": "topic"})
        ch.queue_declare("pq", durable=True)
        ch.queue_bind("pq", "pdx", "a.*")
        props = pika.BasicProperties(headers={"x-delay": 300}, delivery_mode=2)
        ch.basic_publish("pdx", "a.b", b"hello", props, mandatory=True)
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish("pdx", "z", b"nope", props, mandatory=True)
        assert ch.queue_declare("pq", passive=True).method.message_count == 0
        deadline = time.monotonic() + 10
        while ch.queue_declare("pq", passive=True).method.message_count == 0:
            assert time.monotonic() < deadline
            conn.sleep(0.05)
        method, _props, body = ch.basic_get("pq", auto_ack=True)
        assert body == b"hello"
        conn.close()


async def test_confirmed_delayed_messages_survive_kill_9(tmp_path):
    proc, port = start_broker(data_dir=str(tmp_path))
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    n = 40
    try:
        conn = await aio_pika.connect(url)
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange("dx", "x-delayed-message", durable=True,
                                       arguments={"x-delayed-type": "direct"})
        q = await ch.declare_queue("after-crash", durable=True)
        await q.bind(ex, routing_key="k")
        # One at a time, each confirmed (on disk) before the next; later publishes fall
        # due sooner (100 ms apart, more than one confirmed publish takes), and each
        # records the due time it asked for.
        for i in range(n):
            delay = 3000 + 100 * (n - i)
            due = int(time.time() * 1000) + delay  # an int: pamqp sends floats as 32-bit
            await ex.publish(aio_pika.Message(b"%d" % i, delivery_mode=2,
                                              headers={"x-delay": delay, "due": due}),
                             routing_key="k", timeout=10)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        try:
            await asyncio.wait_for(conn.close(), 2)
        except Exception:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()

    proc, port = start_broker(data_dir=str(tmp_path))
    try:
        async with await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/") as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("after-crash", durable=True)
            got = await _take(q, n, timeout=20)
            assert sorted(int(m.body) for m in got) == list(range(n))  # each exactly once
            dues = [m.headers["due"] for m in got]
            # In due order; the client's clock reading is a few ms off the broker's.
            assert all(a <= b + 25 for a, b in zip(dues, dues[1:])), dues
            assert got[0].headers["x-delay"] < 0
            assert await q.get(fail=False) is None
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()
