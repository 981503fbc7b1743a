"""Requeued messages go back to their original position, with aio-pika (issue 15).

RabbitMQ: "when a message is requeued, it will be placed in its original position in its
queue, if possible" (https://www.rabbitmq.com/docs/confirms), whichever way it comes back.
One test per path - reject, nack (single then multiple), basic.recover, a cancelled
consumer's messages nacked in any order, channel close, connection close, consumer timeout
- for a classic queue, a priority queue and a quorum queue, in memory and across restarts
(messages recovered before the path runs, the resulting order recovered after it).

Quorum queues follow rabbit_fifo instead: returned messages are delivered before the rest,
in the order they were returned. After a restart this broker can only give the
returned-before-the-rest part: they come back in enqueue order (docs/compatibility.md).

Each scenario returns the bodies in the order the broker got them back and the bodies it
acked; the expected queue order follows from the queue kind's rule.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from amqpbroker.embed import Broker

Q = "order"
N = 6
# Message i's priority. A priority queue hands out 1, 3 (priority 3), 2, 5 (1), 0, 4 (0);
# quorum queues treat priorities 0-4 alike (FIFO); classic queues ignore them.
PRIORITIES = [0, 3, 1, 3, 0, 1]
KINDS: dict[str, dict[str, Any]] = {
    "classic": {},
    "priority": {"x-max-priority": 5},
    "quorum": {"x-queue-type": "quorum"},
}
DEADLINE = 10.0  # generous: the CI machine is shared


def body(i: int) -> bytes:
    return b"m%d" % i


def initial_order(kind: str) -> list[bytes]:
    if kind == "priority":
        return [body(i) for i in sorted(range(N), key=lambda i: -PRIORITIES[i])]
    return [body(i) for i in range(N)]


def expected(kind: str, restarted: bool, returned: list[bytes], acked: set[bytes]) -> list[bytes]:
    original = [b for b in initial_order(kind) if b not in acked]
    if kind != "quorum" or restarted:
        return original  # back in its original position (quorum after restart: see above)
    return returned + [b for b in original if b not in returned]


class Env:
    """An embedded broker; `restart()` stops it and starts it again on the same data dir
    (a no-op for the in-memory variant)."""

    def __init__(self, tmp_path: Any, durable: bool, **settings: Any) -> None:
        self.data_dir = str(tmp_path) if durable else None
        self.settings = settings
        self.broker: Broker | None = None

    async def __aenter__(self) -> "Env":
        self.broker = await Broker(data_dir=self.data_dir, **self.settings).start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.broker is not None
        await self.broker.stop()

    @property
    def url(self) -> str:
        assert self.broker is not None
        return self.broker.url

    async def restart(self) -> None:
        if self.data_dir is None:
            return
        assert self.broker is not None
        await self.broker.stop()
        self.broker = await Broker(data_dir=self.data_dir, **self.settings).start()


async def declare(ch: aio_pika.abc.AbstractChannel, kind: str, durable: bool) -> Any:
    return await ch.declare_queue(Q, durable=durable or kind == "quorum",
                                  arguments=KINDS[kind] or None)


async def publish_all(url: str, kind: str, durable: bool) -> None:
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        await declare(ch, kind, durable)
        mode = aio_pika.DeliveryMode.PERSISTENT if durable else aio_pika.DeliveryMode.NOT_PERSISTENT
        for i in range(N):
            await ch.default_exchange.publish(
                aio_pika.Message(body(i), priority=PRIORITIES[i], delivery_mode=mode),
                routing_key=Q)


async def drain(url: str, kind: str, durable: bool) -> list[bytes]:
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        q = await declare(ch, kind, durable)
        got = []
        while (m := await q.get(no_ack=True, fail=False)) is not None:
            got.append(m.body)
        return got


async def peek(url: str, kind: str) -> list[bytes]:
    """The queue's order, left unchanged: get everything, then close the channel."""
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        q = await declare(ch, kind, True)
        got = []
        while (m := await q.get(no_ack=False, fail=False)) is not None:
            got.append(m.body)
        await ch.close()
        return got


async def get_all(q: Any) -> list[AbstractIncomingMessage]:
    got = []
    for _ in range(N):
        got.append(await q.get(no_ack=False, timeout=DEADLINE))
    assert await q.get(no_ack=False, fail=False) is None
    return got


class Holder:
    """A consumer that keeps what it gets, never acking; `wait(n)` until it holds n."""

    def __init__(self) -> None:
        self.held: list[AbstractIncomingMessage] = []
        self.changed = asyncio.Event()

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        self.held.append(message)
        self.changed.set()

    async def wait(self, n: int) -> None:
        async def enough() -> None:
            while len(self.held) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), DEADLINE)
        assert len(self.held) == n

    def bodies(self) -> list[bytes]:
        return [m.body for m in self.held]


async def holders_on(conns: list[Any], kind: str, durable: bool,
                     arguments: list[dict[str, Any] | None]) -> tuple[list[Any], list[Holder]]:
    """One channel per holder (prefetch 2 each), subscribed one after another so that
    holder k holds the queue's messages 2k and 2k+1 (in its delivery order)."""
    channels, holders = [], []
    for k, conn in enumerate(conns):
        ch = await conn.channel()
        ch.closed_with = asyncio.get_running_loop().create_future()  # type: ignore[attr-defined]
        ch.close_callbacks.add(
            lambda c, exc: c.closed_with.done() or c.closed_with.set_result(exc))
        await ch.set_qos(prefetch_count=2)
        q = await declare(ch, kind, durable)
        holder = Holder()
        await q.consume(holder, arguments=arguments[k])
        await holder.wait(2)
        channels.append(ch)
        holders.append(holder)
    return channels, holders


# -- the paths: each returns (bodies in the order they went back, bodies acked) ----------

Scenario = Callable[[Env, str, bool], Awaitable[tuple[list[bytes], set[bytes]]]]


async def reject_one_by_one(env: Env, kind: str, durable: bool) -> tuple[list[bytes], set[bytes]]:
    async with await aio_pika.connect(env.url) as conn:
        ch = await conn.channel()
        got = await get_all(await declare(ch, kind, durable))
        await got[0].ack()
        returned = []
        for k in (3, 1, 5, 2, 4):
            await got[k].reject(requeue=True)
            returned.append(got[k].body)
        return returned, {got[0].body}


async def nack_single_then_multiple(env: Env, kind: str, durable: bool
                                    ) -> tuple[list[bytes], set[bytes]]:
    async with await aio_pika.connect(env.url) as conn:
        ch = await conn.channel()
        got = await get_all(await declare(ch, kind, durable))
        await got[3].nack(requeue=True)
        await got[5].nack(multiple=True, requeue=True)  # 0, 1, 2, 4, 5 in delivery order
        return [got[k].body for k in (3, 0, 1, 2, 4, 5)], set()


async def recover(env: Env, kind: str, durable: bool) -> tuple[list[bytes], set[bytes]]:
    async with await aio_pika.connect(env.url) as conn:
        ch = await conn.channel()
        q = await declare(ch, kind, durable)
        got = await get_all(q)
        await got[4].reject(requeue=True)
        await got[1].reject(requeue=True)
        await (await ch.get_underlay_channel()).basic_recover(requeue=True)  # 0, 2, 3, 5
        return [got[k].body for k in (4, 1, 0, 2, 3, 5)], set()


async def cancel_then_nack(env: Env, kind: str, durable: bool) -> tuple[list[bytes], set[bytes]]:
    async with await aio_pika.connect(env.url) as conn:
        ch = await conn.channel()
        q = await declare(ch, kind, durable)
        holder = Holder()
        tag = await q.consume(holder)
        await holder.wait(N)
        await q.cancel(tag)  # its messages stay unacked until settled (as in RabbitMQ)
        returned = []
        for k in (2, 5, 0, 4, 1):
            await holder.held[k].nack(requeue=True)
            returned.append(holder.held[k].body)
        await holder.held[3].ack()
        return returned, {holder.held[3].body}


async def channel_close(env: Env, kind: str, durable: bool) -> tuple[list[bytes], set[bytes]]:
    async with await aio_pika.connect(env.url) as conn:
        channels, holders = await holders_on([conn] * 3, kind, durable, [None] * 3)
        returned = []
        for k in (1, 2, 0):
            await channels[k].close()
            returned += holders[k].bodies()
        return returned, set()


async def connection_close(env: Env, kind: str, durable: bool
                           ) -> tuple[list[bytes], set[bytes]]:
    conns = [await aio_pika.connect(env.url) for _ in range(3)]
    try:
        _, holders = await holders_on(conns, kind, durable, [None] * 3)
        returned = []
        for k in (2, 0, 1):
            await conns[k].close()
            returned += holders[k].bodies()
        return returned, set()
    finally:
        for c in conns:
            await c.close()


async def consumer_timeout(env: Env, kind: str, durable: bool
                           ) -> tuple[list[bytes], set[bytes]]:
    async with await aio_pika.connect(env.url) as conn:
        channels, holders = await holders_on(
            [conn] * 3, kind, durable, [{"x-consumer-timeout": 300}, None, None])
        # (the future is set up when the channel opens: it may time out at once)
        exc = await asyncio.wait_for(channels[0].closed_with, DEADLINE)
        assert "delivery acknowledgement on channel" in str(exc)
        returned = holders[0].bodies()
        for k in (2, 1):
            await channels[k].close()
            returned += holders[k].bodies()
        return returned, set()


PATHS: dict[str, Scenario] = {
    "reject": reject_one_by_one,
    "nack-multiple": nack_single_then_multiple,
    "recover": recover,
    "cancel": cancel_then_nack,
    "channel-close": channel_close,
    "connection-close": connection_close,
    "consumer-timeout": consumer_timeout,
}


@pytest.mark.parametrize("restart", [False, True], ids=["memory", "restart"])
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("path", list(PATHS))
async def test_requeued_messages_keep_their_place(tmp_path, path: str, kind: str,
                                                  restart: bool) -> None:
    async with Env(tmp_path, durable=restart) as env:
        await publish_all(env.url, kind, restart)
        await env.restart()  # the path runs on recovered messages
        returned, acked = await PATHS[path](env, kind, restart)
        assert sorted(returned + list(acked)) == sorted(initial_order(kind))
        if restart:  # the order in memory first (peeking requeues them all in that order)
            assert await peek(env.url, kind) == expected(kind, False, returned, acked)
        await env.restart()  # the order it left is recovered
        got = await drain(env.url, kind, restart)
    assert got == expected(kind, restart, returned, acked)


async def test_aio_pika_queue_iterator_left_early(tmp_path) -> None:
    """The issue's reproduction: take and ack the first message from `queue.iterator()`,
    leave it (aio-pika cancels and nacks the prefetched rest one by one), then get."""
    async with Broker() as broker, await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(Q)
        for i in range(5):
            await ch.default_exchange.publish(aio_pika.Message(body(i)), routing_key=Q)
        async with q.iterator() as it:
            async for message in it:
                await message.ack()
                break
        got = [(await q.get(timeout=DEADLINE)) for _ in range(4)]
        assert [m.body for m in got] == [body(i) for i in range(1, 5)]
        assert all(m.redelivered for m in got)
