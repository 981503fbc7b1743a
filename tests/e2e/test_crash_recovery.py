"""kill -9 at random moments loses no confirmed message and resurrects no acked one (issue 4)."""

import asyncio
import os
import random
import signal

import aio_pika
import pytest

from test_cli_process import start_broker

ROUNDS = 3


async def _publish_confirmed(ch, ids):
    async def one(i):
        try:
            await ch.default_exchange.publish(
                aio_pika.Message(b"%d" % i, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="durable-q", timeout=5)
            return i
        except Exception:
            return None

    return {i for i in await asyncio.gather(*(one(i) for i in ids)) if i is not None}


async def _drain(url):
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("durable-q", durable=True)
        seen = []
        while (m := await q.get(fail=False, no_ack=True)) is not None:
            seen.append(int(m.body))
        return seen


@pytest.mark.parametrize("seed", range(ROUNDS))
async def test_kill_9_keeps_every_confirmed_message_exactly_once(tmp_path, seed):
    rnd = random.Random(seed)
    proc, port = start_broker(data_dir=str(tmp_path))
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    try:
        conn = await aio_pika.connect(url)
        ch = await conn.channel()  # publisher confirms on
        q = await ch.declare_queue("durable-q", durable=True)
        batch_a = set(range(0, 300))
        assert await _publish_confirmed(ch, sorted(batch_a)) == batch_a
        acked = set()
        for _ in range(50):
            m = await q.get(timeout=5)
            await m.ack()
            acked.add(int(m.body))
        # A confirmed publish after the acks: its fsync also makes the acks durable.
        assert await _publish_confirmed(ch, [10_000]) == {10_000}

        batch_b = list(range(1000, 4000))
        publishing = asyncio.ensure_future(_publish_confirmed(ch, batch_b))
        await asyncio.sleep(rnd.uniform(0.02, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        confirmed_b = await asyncio.wait_for(publishing, 30)
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
        seen = await _drain(f"amqp://guest:guest@127.0.0.1:{port}/")
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()
    assert len(seen) == len(set(seen)), "a message came back twice"
    must = (batch_a - acked) | confirmed_b | {10_000}
    assert must <= set(seen), f"lost confirmed messages: {sorted(must - set(seen))[:10]}"
    assert not (acked & set(seen)), "acknowledged messages came back"
    assert set(seen) <= (batch_a - acked) | set(batch_b) | {10_000}
