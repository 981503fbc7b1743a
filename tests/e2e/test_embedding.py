"""The embedded broker (issue 9): in-process API, thread runner, pytest fixtures."""

import asyncio
import gc
import os
import time

import aio_pika
import pika
import pytest

from amqpbroker import Broker


async def test_async_with_broker_serves_aio_pika():
    async with Broker() as broker:
        assert broker.port > 0 and broker.url.endswith(f":{broker.port}/")
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("embedded")
            await ch.default_exchange.publish(aio_pika.Message(b"hi"), "embedded")
            assert (await q.get(no_ack=True, timeout=2)).body == b"hi"


async def test_stop_closes_clients_with_320():
    broker = await Broker().start()
    conn = await aio_pika.connect(broker.url)
    closed = asyncio.get_running_loop().create_future()
    conn.close_callbacks.add(lambda _c, exc: closed.done() or closed.set_result(exc))
    await broker.stop()
    exc = await asyncio.wait_for(closed, 5)
    assert "320" in str(exc) or "CONNECTION_FORCED" in str(exc)


def test_amqp_broker_fixture_with_pika(amqp_broker):
    conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    ch = conn.channel()
    ch.queue_declare("fixture-q")
    ch.basic_publish("", "fixture-q", b"x")
    assert ch.basic_get("fixture-q", auto_ack=True)[2] == b"x"
    conn.close()


@pytest.mark.parametrize("n", [1, 2])
def test_amqp_url_gives_each_test_its_own_vhost(amqp_url, n):
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    # The same queue name in every test: isolated by vhost, so always empty at first.
    ok = ch.queue_declare("shared-name")
    assert ok.method.message_count == 0
    ch.basic_publish("", "shared-name", b"%d" % n)
    conn.close()


async def test_amqp_url_works_for_aio_pika(amqp_url):
    async with await aio_pika.connect(amqp_url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("shared-name")
        assert q.declaration_result.message_count == 0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def test_hundred_brokers_leak_neither_fds_nor_memory():
    async def cycle():
        async with Broker() as broker:
            async with await aio_pika.connect(broker.url) as conn:
                await conn.channel()

    await cycle()  # warm up imports and caches
    gc.collect()
    fds, rss = _open_fds(), _rss_kb()
    for _ in range(100):
        await cycle()
    gc.collect()
    assert _open_fds() <= fds + 2
    assert _rss_kb() - rss < 20_000  # KiB: no per-broker growth worth speaking of


async def test_embedded_start_is_fast():
    # Reported in docs/performance.md; the assertion is only a sanity bound, not a benchmark.
    started = time.perf_counter()
    broker = await Broker().start()
    elapsed = time.perf_counter() - started
    await broker.stop()
    assert elapsed < 2.0
