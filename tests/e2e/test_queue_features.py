"""Queue features end to end with aio-pika against an embedded broker (issue 6).

TTLs here are 50-200 ms so that the whole module stays fast; waits are bounded.
"""

from __future__ import annotations

import asyncio
import datetime

import aio_pika
import pytest
from aiormq import spec
from aiormq.exceptions import ChannelAccessRefused
from aio_pika.exceptions import (
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    DeliveryError,
)

from amqpbroker.embed import Broker


async def next_message(queue, timeout: float = 3.0) -> aio_pika.abc.AbstractIncomingMessage:
    """Poll basic.get until a message arrives."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        msg = await queue.get(no_ack=True, fail=False)
        if msg is not None:
            return msg
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no message in {queue.name} within {timeout} s")
        await asyncio.sleep(0.01)


async def dead_letter_pair(ch, **args):
    dlx = await ch.declare_exchange("dlx", aio_pika.ExchangeType.FANOUT)
    dlq = await ch.declare_queue("dlq")
    await dlq.bind(dlx)
    q = await ch.declare_queue("work", arguments={"x-dead-letter-exchange": "dlx", **args})
    return q, dlq


async def test_queue_ttl_dead_letters_expired_messages(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q, dlq = await dead_letter_pair(ch, **{"x-message-ttl": 100})
        await ch.default_exchange.publish(
            aio_pika.Message(b"late", headers={"k": "v"}), routing_key="work")
        assert (await q.declare()).message_count == 1
        dead = await next_message(dlq)
        assert dead.body == b"late" and dead.exchange == "dlx" and dead.routing_key == "work"
        death = dead.headers["x-death"][0]
        assert {k: death[k] for k in ("count", "reason", "queue", "exchange",
                                      "routing-keys")} == {
            "count": 1, "reason": "expired", "queue": "work", "exchange": "",
            "routing-keys": ["work"]}
        assert isinstance(death["time"], datetime.datetime)
        assert dead.headers["x-first-death-reason"] == "expired"
        assert dead.headers["x-last-death-queue"] == "work"
        assert dead.headers["k"] == "v"
        assert (await q.declare()).message_count == 0


async def test_per_message_expiration(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("plain")
        await ch.default_exchange.publish(
            aio_pika.Message(b"short", expiration=0.05), routing_key="plain")
        await ch.default_exchange.publish(aio_pika.Message(b"kept"), routing_key="plain")
        await eventually(lambda: message_count(ch, "plain"), 1)
        msg = await q.get(no_ack=True)
        assert msg.body == b"kept"
        assert await q.get(no_ack=True, fail=False) is None


async def test_invalid_expiration_closes_the_channel(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        raw = await ch.get_underlay_channel()
        with pytest.raises(ChannelPreconditionFailed) as exc:  # raised awaiting the confirm
            await raw.basic_publish(b"x", routing_key="q",
                                    properties=spec.Basic.Properties(expiration="soon"))
        assert "invalid expiration 'soon': no_integer" in str(exc.value)


async def test_x_expires_deletes_an_unused_queue(broker):
    """A passive declare renews the lease; unused, the queue goes. Timing on a loaded
    machine is not trusted: an attempt only counts when its timestamps prove it - a
    check that ran after the first lease ran out and before the renewed one did must
    find the queue (only the renewal can have kept it). Stalls make an attempt
    inconclusive (tried again), never a false failure."""
    lease = 0.6
    loop = asyncio.get_running_loop()
    async with await aio_pika.connect(broker.url) as conn:
        for attempt in range(10):
            name = f"lease-{attempt}"
            await (await conn.channel()).declare_queue(name, arguments={"x-expires": 600})
            created = loop.time()  # the lease started before this
            await asyncio.sleep(lease / 2)
            renewed = loop.time()  # the renewal happens after this
            if not await exists(conn, name):
                assert loop.time() - created >= lease, "gone before its lease ran out"
                continue
            await asyncio.sleep(lease * 0.75)
            check_sent = loop.time()
            found = await exists(conn, name)
            check_done = loop.time()
            if check_sent > created + lease and check_done < renewed + lease:
                assert found, "the passive declare did not renew the lease"
                break
        else:
            pytest.fail("no conclusive attempt in 10 (machine too loaded?)")
        # Unused from now on: it goes, not before the lease the last check renewed ran out
        # (watched in the broker: a passive declare would renew the lease again).
        queues = broker.core.vhosts["/"].queues

        async def present() -> bool:
            assert name in queues or loop.time() >= check_sent + lease, "gone too early"
            return name in queues

        await eventually(present, False, timeout=10)


async def exists(conn, name: str) -> bool:
    """Passive declare on a fresh channel (a 404 closes the channel)."""
    try:
        await (await conn.channel()).declare_queue(name, passive=True)
        return True
    except ChannelNotFoundEntity:
        return False


async def message_count(ch, name: str) -> int:
    return (await ch.declare_queue(name, passive=True)).declaration_result.message_count


async def eventually(probe, expected, timeout: float = 10.0) -> None:
    """Poll `await probe()` until it returns `expected` (a generous deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := await probe()) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {value!r} after {timeout} s"
        await asyncio.sleep(0.02)


async def test_reject_without_requeue_dead_letters_with_x_death(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q, dlq = await dead_letter_pair(ch, **{"x-dead-letter-routing-key": "failed"})
        await ch.default_exchange.publish(aio_pika.Message(b"bad", expiration=60),
                                          routing_key="work")
        msg = await next_message_ack(q)
        await msg.reject(requeue=False)
        dead = await next_message(dlq)
        assert dead.routing_key == "failed" and dead.expiration is None
        [death] = dead.headers["x-death"]
        assert death["reason"] == "rejected" and death["original-expiration"] == "60000"
        assert (dead.headers["x-first-death-queue"], dead.headers["x-first-death-reason"],
                dead.headers["x-first-death-exchange"]) == ("work", "rejected", "")


async def next_message_ack(queue, timeout: float = 3.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while (msg := await queue.get(fail=False)) is None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    return msg


async def test_retry_loop_through_a_ttl_queue(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        work_x = await ch.declare_exchange("work.x", aio_pika.ExchangeType.DIRECT)
        retry_x = await ch.declare_exchange("retry.x", aio_pika.ExchangeType.DIRECT)
        work = await ch.declare_queue("work", arguments={"x-dead-letter-exchange": "retry.x"})
        retry = await ch.declare_queue("retry", arguments={
            "x-dead-letter-exchange": "work.x", "x-message-ttl": 50})
        await work.bind(work_x, "job")
        await retry.bind(retry_x, "job")
        await work_x.publish(aio_pika.Message(b"job"), routing_key="job")
        attempts = []
        done = asyncio.Event()

        async def worker(message):
            attempts.append(message)
            if len(attempts) < 3:
                await message.reject(requeue=False)  # fail: retry later
            else:
                await message.ack()
                done.set()

        await work.consume(worker)
        await asyncio.wait_for(done.wait(), 5)
        deaths = attempts[-1].headers["x-death"]
        assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
            ("retry", "expired", 2), ("work", "rejected", 2)]
        assert attempts[1].headers["x-death"][0]["count"] == 1


async def test_max_length_drop_head_and_reject_publish(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()  # publisher confirms on (aio-pika's default)
        q, dlq = await dead_letter_pair(ch, **{"x-max-length": 2})
        for body in (b"1", b"2", b"3"):
            await ch.default_exchange.publish(aio_pika.Message(body), routing_key="work")
        assert [(await q.get(no_ack=True)).body for _ in range(2)] == [b"2", b"3"]
        dead = await next_message(dlq)
        assert dead.body == b"1" and dead.headers["x-death"][0]["reason"] == "maxlen"

        full = await ch.declare_queue("full", arguments={
            "x-max-length-bytes": 4, "x-overflow": "reject-publish"})
        await ch.default_exchange.publish(aio_pika.Message(b"1234"), routing_key="full")
        with pytest.raises(DeliveryError):
            await ch.default_exchange.publish(aio_pika.Message(b"5"), routing_key="full")
        assert (await full.declare()).message_count == 1


async def test_priority_queue(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("prio", arguments={"x-max-priority": 10})
        for body, priority in ((b"low", 1), (b"high", 9), (b"mid", 5), (b"high2", 9),
                               (b"none", None)):
            await ch.default_exchange.publish(aio_pika.Message(body, priority=priority),
                                              routing_key="prio")
        got = [(await q.get(no_ack=True)).body for _ in range(5)]
        assert got == [b"high", b"high2", b"mid", b"low", b"none"]


async def test_single_active_consumer_fails_over(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch1, ch2 = await conn.channel(), await conn.channel()
        await ch1.declare_queue("sac", arguments={"x-single-active-consumer": True})
        seen: dict[str, list[bytes]] = {"one": [], "two": []}
        got_two, five = asyncio.Event(), asyncio.Event()

        def handler(name):
            async def on_message(message):
                await message.ack()
                seen[name].append(message.body)
                if name == "two":
                    got_two.set()
                if sum(map(len, seen.values())) == 5:
                    five.set()
            return on_message

        await (await ch1.get_queue("sac")).consume(handler("one"))
        await (await ch2.get_queue("sac")).consume(handler("two"))
        for i in range(5):
            await ch1.default_exchange.publish(aio_pika.Message(b"%d" % i), routing_key="sac")
        await asyncio.wait_for(five.wait(), 10)  # all five delivered: none went to "two"
        assert seen == {"one": [b"0", b"1", b"2", b"3", b"4"], "two": []}
        await ch1.close()
        await ch2.default_exchange.publish(aio_pika.Message(b"5"), routing_key="sac")
        await asyncio.wait_for(got_two.wait(), 3)
        assert seen["two"] == [b"5"]
        with pytest.raises(ChannelAccessRefused):
            ch3 = await conn.channel()
            await (await ch3.get_queue("sac")).consume(handler("one"), exclusive=True)


async def test_delivery_limit_and_x_delivery_count(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q, dlq = await dead_letter_pair(ch, **{"x-delivery-limit": 2})
        await ch.default_exchange.publish(aio_pika.Message(b"poison"), routing_key="work")
        counts = []
        for _ in range(3):
            msg = await next_message_ack(q)
            counts.append(msg.headers.get("x-delivery-count"))
            await msg.nack(requeue=True)
        assert counts == [None, 1, 2]
        dead = await next_message(dlq)
        assert dead.headers["x-death"][0]["reason"] == "delivery_limit"
        assert (await q.declare()).message_count == 0


async def test_consumer_timeout_closes_the_channel_and_requeues():
    async with Broker(consumer_timeout_ms=150) as broker:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("slow")
            await ch.default_exchange.publish(aio_pika.Message(b"job"), routing_key="slow")
            got = asyncio.Event()

            async def never_acks(message):
                got.set()

            await q.consume(never_acks)
            await asyncio.wait_for(got.wait(), 3)
            closed = asyncio.get_running_loop().create_future()
            ch.close_callbacks.add(lambda _ch, exc: closed.done() or closed.set_result(exc))
            exc = await asyncio.wait_for(closed, 3)
            assert isinstance(exc, ChannelPreconditionFailed)
            assert ("delivery acknowledgement on channel 1 timed out. Timeout value used: "
                    "150 ms") in str(exc)
            ch2 = await conn.channel()
            again = await next_message((await ch2.get_queue("slow")))
            assert again.body == b"job" and again.redelivered


async def test_invalid_arguments_and_queue_types(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        with pytest.raises(ChannelPreconditionFailed) as exc:
            await ch.declare_queue("bad", arguments={"x-message-ttl": -5})
        assert ("PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'bad' in "
                "vhost '/': {value_negative,-5}") in str(exc.value)
        ch = await conn.channel()
        with pytest.raises(ChannelPreconditionFailed) as exc:
            await ch.declare_queue("qq", arguments={"x-queue-type": "fifo"})
        assert "\"unsupported queue type 'fifo'\"" in str(exc.value)
        ch = await conn.channel()
        with pytest.raises(ChannelPreconditionFailed) as exc:  # quorum queues are durable
            await ch.declare_queue("qq", arguments={"x-queue-type": "quorum"})
        assert "invalid property 'non-durable' for queue 'qq' in vhost '/'" in str(exc.value)
        ch = await conn.channel()
        await ch.declare_queue("qq", durable=True, arguments={"x-queue-type": "quorum"})
        q = await ch.declare_queue("cq", arguments={"x-queue-type": "classic"})
        assert q.name == "cq"


async def test_durable_queue_keeps_its_features_across_restart(tmp_path):
    args = {"x-max-length": 2, "x-max-priority": 5, "x-message-ttl": 60000}
    async with Broker(data_dir=str(tmp_path)) as broker:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            await ch.declare_queue("kept", durable=True, arguments=args)
            for body, priority in ((b"a", 1), (b"b", 5)):
                await ch.default_exchange.publish(
                    aio_pika.Message(body, priority=priority,
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key="kept")
    async with Broker(data_dir=str(tmp_path)) as broker:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("kept", durable=True, arguments=args)
            assert q.arguments == args
            await ch.default_exchange.publish(
                aio_pika.Message(b"c", priority=0, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="kept")  # over x-max-length: drops the head (b)
            got = [(await q.get(no_ack=True)).body for _ in range(2)]
            assert got == [b"a", b"c"]



async def test_x_expires_lease_restarts_with_the_broker(tmp_path):
    async with Broker(data_dir=str(tmp_path)) as broker:
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            await ch.declare_queue("leased", durable=True, arguments={"x-expires": 200})
    # The timer armed while definitions are replayed runs once the loop is attached.
    async with Broker(data_dir=str(tmp_path)) as broker:
        assert "leased" in broker.core.vhosts["/"].queues

        async def present() -> bool:
            return "leased" in broker.core.vhosts["/"].queues

        await eventually(present, False, timeout=10)
