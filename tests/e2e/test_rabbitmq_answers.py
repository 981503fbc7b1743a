"""Three answers as RabbitMQ gives them, with aio-pika (issue 15).

* Redeclaring an exclusive queue with another `exclusive` flag, even from its owning
  connection: 405 RESOURCE_LOCKED (rabbit_amqqueue:check_exclusive_access, strict).
* channel_max limits how many channels are open at once, not the channel number
  (rabbit_reader:create_channel): 530 NOT_ALLOWED on the (channel_max + 1)th.
* exchange.declare of the default exchange "", passive or not: 403 ACCESS_REFUSED.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelLockedResource,
    ConnectionNotAllowed,
)

from amqpbroker.embed import Broker

LOCKED = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{}' in vhost "
          "'/'. It could be originally declared on another connection or the exclusive "
          "property value does not match that of the original declaration.")


@pytest.mark.parametrize("first, second", [(True, False), (False, True)])
async def test_redeclare_with_another_exclusive_flag_is_resource_locked(broker, first, second):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("ex-q", exclusive=first)
        ch = await conn.channel()  # the same (owning) connection
        with pytest.raises(ChannelLockedResource) as exc:
            await ch.declare_queue("ex-q", exclusive=second)
        assert str(exc.value.args[0]) == LOCKED.format("ex-q")
        ch = await conn.channel()  # the same flag is fine
        await ch.declare_queue("ex-q", exclusive=first)


async def test_channel_max_counts_open_channels_not_numbers():
    async with Broker(channel_max=3) as broker:
        conn = await aio_pika.connect(broker.url)
        try:
            for number in (65535, 4000, 7):  # numbers above channel_max are fine
                await conn.channel(channel_number=number)
            closed = asyncio.get_running_loop().create_future()
            conn.close_callbacks.add(lambda _c, exc: closed.done() or closed.set_result(exc))
            with pytest.raises(ConnectionNotAllowed) as raised:
                await conn.channel(channel_number=1)  # the 4th open channel
            exc = await asyncio.wait_for(closed, 10)
            assert isinstance(exc, ConnectionNotAllowed), repr(exc)
            assert str(raised.value.args[0]) == str(exc.args[0])
            assert str(exc.args[0]) == ("NOT_ALLOWED - number of channels opened (3) has "
                                        "reached the negotiated channel_max (3)")
        finally:
            await conn.close()


async def test_closed_channels_make_room_under_channel_max():
    async with Broker(channel_max=2) as broker, await aio_pika.connect(broker.url) as conn:
        for _ in range(5):
            ch = await conn.channel()
            await ch.close()
        a, b = await conn.channel(), await conn.channel()
        assert not a.is_closed and not b.is_closed


@pytest.mark.parametrize("passive", [False, True])
async def test_declaring_the_default_exchange_is_access_refused(broker, passive):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        with pytest.raises(ChannelAccessRefused) as exc:
            await ch.declare_exchange("", aio_pika.ExchangeType.DIRECT, passive=passive)
        assert str(exc.value.args[0]) == ("ACCESS_REFUSED - operation not permitted on the "
                                          "default exchange")
