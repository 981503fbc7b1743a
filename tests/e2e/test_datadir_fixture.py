"""A data directory written by release 0.1.0 recovers unchanged (issue 14, "Done when").

The fixture (`tests/fixtures/datadir-0.1.0`, written by `tests/fixtures/make_datadir.py`
before the broker core redesign) holds a definitions log, a message store segment and a
stream log. Today's broker must read all three: the same topology, the same messages with
the same properties, the same redelivered flags, the same stream.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import aio_pika
import pytest

from amqpbroker.clock import Scheduler
from amqpbroker.embed import Broker

ARGS = {"x-max-length": 100, "x-overflow": "reject-publish",  # as make_datadir.py
        "x-dead-letter-exchange": "fx.fanout", "x-single-active-consumer": True}
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datadir-0.1.0"


@pytest.fixture
async def recovered(tmp_path, monkeypatch):
    # fx.args has a one-hour x-message-ttl and the store keeps each message's enqueue time:
    # recovered later than an hour after the fixture was written, its messages would
    # expire (and be dead-lettered into fx.fanned). The broker recovers "as written".
    monkeypatch.setattr(Scheduler, "wall", lambda self: 0.0)
    data_dir = tmp_path / "data"
    shutil.copytree(FIXTURE, data_dir)
    async with Broker(data_dir=str(data_dir)) as broker:
        conn = await aio_pika.connect(broker.url)
        try:
            yield conn, await conn.channel()
        finally:
            await conn.close()


async def _drain(queue, count):
    got = []
    for _ in range(count):
        m = await queue.get(timeout=5)
        await m.ack()
        got.append(m)
    assert await queue.get(fail=False) is None
    return got


def _check_props(m, i):
    assert m.body == b"body-%d" % i
    assert m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert m.content_type == "text/plain"
    assert m.message_id == f"m{i}"
    assert m.priority == i % 3
    assert m.headers == {"n": i, "kind": "fixture"}


async def test_messages_and_redelivered_flags_come_back(recovered):
    _, ch = recovered
    plain = await ch.declare_queue("fx.plain", durable=True, passive=True)
    got = await _drain(plain, 4)  # message 0 was acked; the transient one is gone
    for m, i in zip(got, range(1, 5)):
        _check_props(m, i)
    assert [m.redelivered for m in got] == [True, False, False, False]
    fanned = await ch.declare_queue("fx.fanned", durable=True, passive=True)
    for m, i in zip(await _drain(fanned, 3), range(5, 8)):
        _check_props(m, i)
    args = await ch.declare_queue("fx.args", durable=True, passive=True)
    for m, i in zip(await _drain(args, 3), range(8, 11)):
        _check_props(m, i)
    quorum = await ch.declare_queue("fx.quorum", durable=True, passive=True)
    for m, i in zip(await _drain(quorum, 3), range(11, 14)):
        _check_props(m, i)


async def test_topology_comes_back(recovered):
    _, ch = recovered
    # Same arguments: an inequivalent redeclare would close the channel with 406.
    await ch.declare_queue("fx.args", durable=True, arguments=ARGS)
    await ch.declare_queue("fx.quorum", durable=True, arguments={"x-queue-type": "quorum"})
    await ch.declare_exchange("fx.topic", "topic", durable=True)
    # The bindings route as before: topic -> queue, topic -> fanout exchange -> queue.
    topic = await ch.get_exchange("fx.topic")
    await topic.publish(aio_pika.Message(b"a"), "plain.z")
    await topic.publish(aio_pika.Message(b"b"), "e2e.z")
    plain = await ch.declare_queue("fx.plain", durable=True, passive=True)
    fanned = await ch.declare_queue("fx.fanned", durable=True, passive=True)
    assert plain.declaration_result.message_count == 5
    assert fanned.declaration_result.message_count == 4
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await ch.declare_queue("fx.transient", passive=True)


async def test_stream_comes_back(recovered):
    _, ch = recovered
    await ch.set_qos(prefetch_count=10)
    stream = await ch.declare_queue("fx.stream", durable=True,
                                    arguments={"x-queue-type": "stream"})
    got = []
    async with stream.iterator(arguments={"x-stream-offset": "first"}) as it:
        async for m in it:
            got.append(m)
            await m.ack()
            if len(got) == 6:
                break
    for m, i in zip(got, range(14, 20)):
        _check_props_stream(m, i)
    assert [m.headers["x-stream-offset"] for m in got] == list(range(6))


def _check_props_stream(m, i):
    assert m.body == b"body-%d" % i
    assert m.message_id == f"m{i}"
    assert m.headers["n"] == i and m.headers["kind"] == "fixture"
