"""Stream queues (issue 11) with aio-pika: declaration rules, x-stream-offset specs (first,
last, next, numeric, timestamp, interval), several independent consumers, filters,
retention by size and age, LavinMQ-style server-side offset tracking, RabbitMQ's refusals
(basic.get, purge, no-ack, no prefetch, global QoS), deletion, and recovery after a clean
restart and after kill -9 (a subprocess broker) with every confirmed offset."""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
from typing import Any

import aio_pika
import pytest
from aio_pika.exceptions import ChannelPreconditionFailed
from aiormq.exceptions import ConnectionNotImplemented

from amqpbroker.embed import Broker
from amqpbroker.model.queue import queue_key
from amqpbroker.store.stream_store import stream_directory

from test_cli_process import start_broker

STREAM = {"x-queue-type": "stream"}


async def _publish(ch: aio_pika.abc.AbstractChannel, queue: str, bodies: list[bytes],
                   headers: dict[str, Any] | None = None) -> None:
    await asyncio.gather(*(ch.default_exchange.publish(aio_pika.Message(b, headers=headers),
                                                       routing_key=queue) for b in bodies))


async def _consume(conn: aio_pika.abc.AbstractConnection, queue: str, n: int, *,
                   arguments: dict[str, Any] | None = None, prefetch: int = 50,
                   tag: str | None = None, timeout: float = 10.0,
                   ack: bool = True) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Consume n messages (or what arrives within `timeout`, if n is more) and cancel."""
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=prefetch)
    q = await ch.get_queue(queue)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    done = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if len(got) >= n:
            return  # beyond what was asked for: left unacked
        got.append(message)
        if ack:
            await message.ack()
        if len(got) >= n:
            done.set()

    consumer_tag = await q.consume(on_message, arguments=arguments, consumer_tag=tag)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    await q.cancel(consumer_tag)
    await ch.close()
    return got


def _offsets(messages: list[aio_pika.abc.AbstractIncomingMessage]) -> list[int]:
    return [m.headers["x-stream-offset"] for m in messages]


async def test_declaration_rules(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("s", durable=True, arguments=STREAM)
        await ch.declare_queue("s", durable=True, arguments=STREAM)
        where = "for queue 'bad' in vhost '/'"
        for declare, text in (
            (dict(arguments=STREAM), f"invalid property 'non-durable' {where}"),
            (dict(durable=True, arguments={**STREAM, "x-max-priority": 3}),
             f"invalid arg 'x-max-priority' {where} of queue type rabbit_stream_queue"),
            (dict(durable=True, arguments={**STREAM, "x-max-age": "10x"}),
             f"invalid arg 'x-max-age' {where}: invalid_max_age"),
            (dict(durable=True, arguments={**STREAM, "x-message-ttl": 10}),
             f"invalid arg 'x-message-ttl' {where} of queue type rabbit_stream_queue"),
        ):
            ch = await conn.channel()
            with pytest.raises(ChannelPreconditionFailed) as exc:
                await ch.declare_queue("bad", **declare)
            assert text in str(exc.value), declare
        ch = await conn.channel()
        with pytest.raises(ChannelPreconditionFailed) as exc:
            await ch.declare_queue("", durable=True, arguments=STREAM)
        assert "Cannot declare a server-named queue for type rabbit_stream_queue" in str(exc.value)
        ch = await conn.channel()
        with pytest.raises(ChannelPreconditionFailed) as exc:
            await ch.declare_queue("s", durable=True, arguments={"x-queue-type": "quorum"})
        assert ("inequivalent arg 'x-queue-type' for queue 's' in vhost '/': received the value "
                "'quorum' of type 'longstr' but current is the value 'stream'") in str(exc.value)


async def test_replay_from_first_numeric_last_and_next(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("s", durable=True, arguments=STREAM)
        await _publish(ch, "s", [b"m%d" % i for i in range(20)])
        got = await _consume(conn, "s", 20, arguments={"x-stream-offset": "first"}, prefetch=7)
        assert _offsets(got) == list(range(20))
        assert [m.body for m in got] == [b"m%d" % i for i in range(20)]
        assert not any(m.redelivered for m in got)
        got = await _consume(conn, "s", 5, arguments={"x-stream-offset": 15})
        assert _offsets(got) == [15, 16, 17, 18, 19]
        got = await _consume(conn, "s", 100, arguments={"x-stream-offset": 1000}, timeout=0.3)
        assert got == []  # beyond the end: waits for new messages
        got = await _consume(conn, "s", 100, arguments={"x-stream-offset": "last"}, timeout=0.5)
        assert _offsets(got) and _offsets(got)[-1] == 19 and _offsets(got)[0] <= 19

        # "next" (the default): only what is published after the consumer started.
        ch2 = await conn.channel()
        await ch2.set_qos(prefetch_count=10)
        q = await ch2.get_queue("s")
        arrived: asyncio.Queue = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            await arrived.put(message)

        await q.consume(on_message)
        await _publish(ch, "s", [b"new"])
        message = await asyncio.wait_for(arrived.get(), 5)
        assert message.body == b"new" and message.headers["x-stream-offset"] == 20


async def test_replay_from_timestamp_and_interval(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("ts", durable=True, arguments=STREAM)
        await _publish(ch, "ts", [b"old%d" % i for i in range(5)])
        await asyncio.sleep(2.1)
        since = datetime.datetime.now(datetime.timezone.utc)  # sent with second precision
        await _publish(ch, "ts", [b"new%d" % i for i in range(5)])
        got = await _consume(conn, "ts", 5, arguments={"x-stream-offset": since})
        assert [m.body for m in got] == [b"new%d" % i for i in range(5)]
        got = await _consume(conn, "ts", 5, arguments={"x-stream-offset": "2s"})
        assert [m.body for m in got] == [b"new%d" % i for i in range(5)]


async def test_independent_consumers_and_credit(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("s", durable=True, arguments=STREAM)
        await _publish(ch, "s", [b"m%d" % i for i in range(50)])
        first, second = await asyncio.gather(
            _consume(conn, "s", 50, arguments={"x-stream-offset": "first"}, prefetch=3),
            _consume(conn, "s", 50, arguments={"x-stream-offset": "first"}, prefetch=11))
        assert _offsets(first) == _offsets(second) == list(range(50))
        # Without acks a consumer gets its prefetch and no more; a requeue is only credit.
        got = await _consume(conn, "s", 50, arguments={"x-stream-offset": "first"},
                             prefetch=4, timeout=0.5, ack=False)
        assert _offsets(got) == [0, 1, 2, 3]
        ch2 = await conn.channel()
        await ch2.set_qos(prefetch_count=2)
        q = await ch2.get_queue("s")
        seen: list[int] = []
        enough = asyncio.Event()

        async def nack_all(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append(message.headers["x-stream-offset"])
            await message.nack(requeue=True)
            if len(seen) >= 6:
                enough.set()

        await q.consume(nack_all, arguments={"x-stream-offset": "first"})
        await asyncio.wait_for(enough.wait(), 5)
        assert seen[:6] == [0, 1, 2, 3, 4, 5]  # nothing redelivered


async def test_refusals_as_rabbitmq(broker):
    where = "queue 's' in vhost '/'"
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("s", durable=True, arguments=STREAM)

        async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            pass

        with pytest.raises(ChannelPreconditionFailed) as exc:
            await q.consume(ignore)
        assert f"consumer prefetch count is not set for stream {where}" in str(exc.value)
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=10)
        q = await ch.get_queue("s")
        with pytest.raises(ChannelPreconditionFailed) as exc:
            await q.consume(ignore, arguments={"x-stream-offset": "somewhere"})
        assert "invalid arg 'x-stream-offset'" in str(exc.value)
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=10)
        q = await ch.get_queue("s")
        with pytest.raises(ChannelPreconditionFailed) as exc:
            await q.consume(ignore, arguments={"x-priority": 5})
        assert ("invalid arg 'x-priority' for queue 's' in vhost '/' of queue type "
                "rabbit_stream_queue") in str(exc.value)
    for attempt, text in (
        ("get", f"basic.get not supported by stream queues {where}"),
        ("purge", f"queue.purge not supported by stream queues {where}"),
        ("no_ack", f"automatic acknowledgement not supported by stream {where}"),
        ("global", f"{where} does not support global qos"),
    ):
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=10)
            q = await ch.get_queue("s")
            with pytest.raises(ConnectionNotImplemented) as cexc:
                if attempt == "get":
                    await q.get()
                elif attempt == "purge":
                    await q.purge()
                elif attempt == "no_ack":
                    await q.consume(ignore, no_ack=True)
                else:
                    await ch.set_qos(prefetch_count=10, global_=True)
                    await q.consume(ignore)
            assert text in str(cexc.value), attempt


async def test_filters(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("f", durable=True, arguments=STREAM)
        for i in range(12):
            color = ("red", "blue", None)[i % 3]
            headers = {"x-stream-filter-value": color} if color else None
            await ch.default_exchange.publish(aio_pika.Message(b"%d" % i, headers=headers),
                                              routing_key="f")
        red = await _consume(conn, "f", 4, arguments={"x-stream-offset": "first",
                                                      "x-stream-filter": "red"})
        assert [m.body for m in red] == [b"0", b"3", b"6", b"9"]
        both = await _consume(conn, "f", 8, arguments={"x-stream-offset": "first",
                                                       "x-stream-filter": ["red", "blue"]})
        assert [m.body for m in both] == [b"%d" % i for i in range(12) if i % 3 != 2]
        unfiltered = await _consume(conn, "f", 8, arguments={
            "x-stream-offset": "first", "x-stream-filter": "blue",
            "x-stream-match-unfiltered": True})
        assert [m.body for m in unfiltered] == [b"%d" % i for i in range(12) if i % 3 != 0]


async def test_retention_by_size_on_roll_and_by_age_on_a_timer(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("small", durable=True, arguments={
            **STREAM, "x-max-length-bytes": 2000, "x-stream-max-segment-size-bytes": 500})
        await _publish(ch, "small", [b"x" * 100 for _ in range(100)])
        got = await _consume(conn, "small", 100, arguments={"x-stream-offset": "first"},
                             timeout=1.0)
        offsets = _offsets(got)
        assert offsets[-1] == 99 and 0 < offsets[0] <= 95  # old segments are gone
        assert offsets == list(range(offsets[0], 100))

        await ch.declare_queue("aged", durable=True, arguments={
            **STREAM, "x-max-age": "1s", "x-stream-max-segment-size-bytes": 300})
        await _publish(ch, "aged", [b"y" * 100 for _ in range(20)])
        await asyncio.sleep(2.5)  # the retention timer runs every second
        stream = broker.core.vhosts["/"].queues["aged"]
        assert stream.log.first_offset > 0
        got = await _consume(conn, "aged", 20, arguments={"x-stream-offset": "first"},
                             timeout=0.5)
        assert _offsets(got)[0] == stream.log.first_offset


async def test_server_side_offset_tracking(tmp_path):
    async with Broker(data_dir=str(tmp_path)) as broker:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.declare_queue("t", durable=True, arguments=STREAM)
            await _publish(ch, "t", [b"m%d" % i for i in range(10)])
            tracking = {"x-stream-automatic-offset-tracking": True}
            got = await _consume(conn, "t", 4, arguments=tracking, tag="reader", prefetch=1)
            assert _offsets(got) == [0, 1, 2, 3]  # no stored offset: from the start
            got = await _consume(conn, "t", 3, arguments=tracking, tag="reader", prefetch=1)
            assert _offsets(got) == [4, 5, 6]  # resumes after the last ack
            # x-stream-offset null asks for tracking too (LavinMQ); another tag, own offset.
            got = await _consume(conn, "t", 2, arguments={"x-stream-offset": None},
                                 tag="other", prefetch=1)
            assert _offsets(got) == [0, 1]
            # Without tracking the tag means nothing: "next".
            got = await _consume(conn, "t", 1, tag="reader", timeout=0.3)
            assert got == []
    async with Broker(data_dir=str(tmp_path)) as broker:  # tracked offsets survive restarts
        async with await aio_pika.connect(broker.url) as conn:
            got = await _consume(conn, "t", 3, arguments={
                "x-stream-automatic-offset-tracking": True, "x-stream-offset": "first"},
                tag="reader")
            assert _offsets(got) == [7, 8, 9]


async def test_delete_removes_the_files_and_restart_recovers(tmp_path):
    async with Broker(data_dir=str(tmp_path)) as broker:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.declare_queue("keep", durable=True, arguments=STREAM)
            gone = await ch.declare_queue("gone", durable=True, arguments=STREAM)
            await _publish(ch, "keep", [b"k%d" % i for i in range(30)])
            await _publish(ch, "gone", [b"g"])
            directory = stream_directory(tmp_path, queue_key("/", "gone"))
            assert directory.is_dir()
            await gone.delete()
            assert not directory.exists()
    async with Broker(data_dir=str(tmp_path)) as broker:
        assert "gone" not in broker.core.vhosts["/"].queues
        async with await aio_pika.connect(broker.url) as conn:
            got = await _consume(conn, "keep", 30, arguments={"x-stream-offset": "first"})
            assert [m.body for m in got] == [b"k%d" % i for i in range(30)]
            ch = await conn.channel()
            q = await ch.declare_queue("keep", durable=True, arguments=STREAM)
            assert q.declaration_result.message_count == 30


async def test_in_memory_streams_use_a_temporary_directory():
    async with Broker() as broker:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.declare_queue("mem", durable=True, arguments=STREAM)
            await _publish(ch, "mem", [b"a", b"b"])
            got = await _consume(conn, "mem", 2, arguments={"x-stream-offset": "first"})
            assert [m.body for m in got] == [b"a", b"b"]
        root = broker.core.streams.store.root
        assert root.is_dir()
    assert not root.exists()


async def test_kill_9_keeps_every_confirmed_offset(tmp_path):
    proc, port = start_broker(data_dir=str(tmp_path))
    try:
        conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("k", durable=True, arguments={
            **STREAM, "x-stream-max-segment-size-bytes": 20000})
        confirmed = 0
        for start in range(0, 1000, 100):
            await _publish(ch, "k", [b"m%d" % i for i in range(start, start + 100)])
            confirmed += 100
        # Unconfirmed publishes in flight at the kill may or may not survive.
        for i in range(1000, 1050):
            asyncio.ensure_future(ch.default_exchange.publish(
                aio_pika.Message(b"m%d" % i), routing_key="k"))
        await asyncio.sleep(0)
        os.kill(proc.pid, signal.SIGKILL)
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
            got = await _consume(conn, "k", 1050, arguments={"x-stream-offset": "first"},
                                 prefetch=200, timeout=3.0)
            offsets = _offsets(got)
            assert len(offsets) >= confirmed
            assert offsets == list(range(len(offsets)))
            assert [m.body for m in got[:confirmed]] == [b"m%d" % i for i in range(confirmed)]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 10)
        if proc.stderr:
            proc.stderr.close()
