"""Shovels against a real RabbitMQ (Debian's rabbitmq-server, a private node per module):
RabbitMQ -> amqpbroker and back, and a migration with both brokers restarted mid-way.

The migration moves MIGRATION_COUNT messages here (10,000; keeps CI short); the 100,000
run is `AMQPBROKER_MIGRATION_COUNT=100000 pytest tests/e2e/test_shovel_rabbitmq.py -k
migration` (docs/shovel.md)."""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aio_pika
import pytest

from amqpbroker.embed import Broker
from test_cli_process import start_broker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rabbitmq_node import RabbitNode  # noqa: E402

MIGRATION_COUNT = int(os.environ.get("AMQPBROKER_MIGRATION_COUNT", "10000"))


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory):
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    node.start()
    yield node
    node.stop()


async def _connect(url, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await aio_pika.connect(url)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _count(url, queue):
    conn = await _connect(url)
    async with conn:
        ch = await conn.channel()
        try:
            q = await ch.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return -1
        return q.declaration_result.message_count


async def _until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _publish_confirmed(url, queue, n, start=0, batch=500):
    conn = await _connect(url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue(queue, durable=True)
        for lo in range(start, start + n, batch):
            await asyncio.gather(*(
                ch.default_exchange.publish(
                    aio_pika.Message(b"%d" % i, delivery_mode=2, headers={"id": i}),
                    routing_key=queue)
                for i in range(lo, min(start + n, lo + batch))))


async def test_rabbitmq_to_amqpbroker_and_back(rabbit):
    async with Broker() as ours:
        await _publish_confirmed(rabbit.url, "from-rabbit", 300)
        ours.admin.put_parameter("shovel", "/", "in", {
            "src-uri": rabbit.url, "src-queue": "from-rabbit", "dest-uri": "amqp://",
            "dest-queue": "arrived", "dest-add-forward-headers": True})
        await _until(lambda: _eq(_count(ours.url, "arrived"), 300), 60, "300 in amqpbroker")
        assert await _count(rabbit.url, "from-rabbit") == 0
        # ... and out again, to an exchange on RabbitMQ, with on-publish.
        conn = await _connect(rabbit.url)
        async with conn:
            ch = await conn.channel()
            ex = await ch.declare_exchange("back", "direct", durable=True)
            q = await ch.declare_queue("returned", durable=True)
            await q.bind(ex, "r")
        ours.admin.put_parameter("shovel", "/", "out", {
            "src-uri": "amqp://", "src-queue": "arrived", "dest-uri": rabbit.url,
            "dest-exchange": "back", "dest-exchange-key": "r", "ack-mode": "on-publish"})
        await _until(lambda: _eq(_count(rabbit.url, "returned"), 300), 60, "300 back in RabbitMQ")
        conn = await _connect(rabbit.url)
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue("returned", passive=True)
            m = await q.get()
            assert m.headers["x-shovelled"][0]["shovel-name"] == "in"
            assert m.delivery_mode == 2
        status = {s["name"]: s["state"] for s in ours.shovels.status()}
        assert status == {"in": "running", "out": "running"}


async def _eq(coro, n):
    return await coro == n


async def test_migration_on_confirm_with_both_brokers_restarted(rabbit, tmp_path):
    """MIGRATION_COUNT messages from a RabbitMQ queue into amqpbroker (declared in the
    YAML config, on-confirm); RabbitMQ restarted after a third, amqpbroker after two
    thirds; every message arrives (at-least-once: duplicates counted, none lost)."""
    n = MIGRATION_COUNT
    await _publish_confirmed(rabbit.url, "legacy", n)
    config = tmp_path / "amqpbroker.yaml"
    config.write_text(json.dumps({"parameters": [{
        "vhost": "/", "component": "shovel", "name": "migrate",
        "value": {"src-uri": rabbit.url, "src-queue": "legacy", "src-prefetch-count": 500,
                  "dest-uri": "amqp://", "dest-queue": "legacy", "ack-mode": "on-confirm",
                  "reconnect-delay": 0.5}}]}))
    data = str(tmp_path / "data")
    started = time.monotonic()
    proc, port = start_broker("--config", str(config), data_dir=data)
    ours = f"amqp://guest:guest@127.0.0.1:{port}/"
    try:
        await _until(lambda: _above(_count(ours, "legacy"), n // 3), 120, "a third moved")
        rabbit.restart()
        await _until(lambda: _above(_count(ours, "legacy"), 2 * n // 3), 120, "2/3 moved")
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()
        proc, port = start_broker("--config", str(config), data_dir=data)
        ours = f"amqp://guest:guest@127.0.0.1:{port}/"
        await _until(lambda: _eq(_count(rabbit.url, "legacy"), 0), 180, "RabbitMQ drained")
        await asyncio.sleep(1)  # the last confirms and acks
        conn = await _connect(ours)
        async with conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=1000)
            q = await ch.declare_queue("legacy", passive=True)
            seen = []
            while (m := await q.get(fail=False, no_ack=True)) is not None:
                seen.append(m.headers["id"])
        assert await _count(rabbit.url, "legacy") == 0
        unique = set(seen)
        assert unique == set(range(n)), f"missing {len(set(range(n)) - unique)}"
        duplicates = len(seen) - len(unique)
        # At-least-once: only what was in flight at a restart may come twice.
        assert duplicates <= 2 * 500, duplicates
        print(f"migration: {n} messages, {duplicates} duplicates, "
              f"{time.monotonic() - started:.1f} s including two restarts")
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()


async def _above(coro, n):
    return await coro > n
