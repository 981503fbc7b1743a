#!/usr/bin/env python
"""Tutorial 7 (Publisher Confirms) with aio-pika: three strategies.

On a channel with publisher_confirms=True, ``exchange.publish`` returns once
the broker has confirmed the message (and raises DeliveryError on a nack):

* individually -- await every publish before sending the next one;
* in batch     -- start BATCH_SIZE publishes, then await them all;
* asynchronously -- start every publish at once and handle each confirm in a
  done-callback as it arrives.

Interop changes: AMQP_URL; MESSAGE_COUNT (default 50,000 as in the tutorial);
status 3 after TUTORIAL_TIMEOUT seconds; each strategy also reports how many
messages its queue holds afterwards.
"""
import asyncio
import os
import sys
import time

from aio_pika import Message, connect
from aio_pika.abc import AbstractConnection
from pamqp.commands import Basic

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
MESSAGE_COUNT = int(os.environ.get("MESSAGE_COUNT", "50000"))
BATCH_SIZE = 100
TIMEOUT = float(os.environ.get("TUTORIAL_TIMEOUT", "60"))


def report(what: str, start: float, acked: int, nacked: int, depth: int) -> None:
    elapsed_ms = int((time.monotonic() - start) * 1000)
    print(f"Published {MESSAGE_COUNT} messages {what} in {elapsed_ms} ms "
          f"({acked} acked, {nacked} nacked, {depth} in queue)")


def is_ack(confirmation: object) -> bool:
    return isinstance(confirmation, Basic.Ack)


async def publish_messages_individually(connection: AbstractConnection) -> None:
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue(exclusive=True)
    acked = nacked = 0
    start = time.monotonic()
    for i in range(MESSAGE_COUNT):
        try:
            confirmation = await channel.default_exchange.publish(
                Message(str(i).encode()), routing_key=queue.name, timeout=5,
            )
        except Exception as exc:  # DeliveryError on a nack
            print(f"Message {i} was not confirmed: {exc!r}", file=sys.stderr)
            nacked += 1
        else:
            if is_ack(confirmation):
                acked += 1
            else:
                nacked += 1
    depth = (await channel.declare_queue(queue.name, passive=True)).declaration_result.message_count
    report("individually", start, acked, nacked, depth)
    await queue.delete(if_unused=False, if_empty=False)
    await channel.close()


async def publish_messages_in_batch(connection: AbstractConnection) -> None:
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue(exclusive=True)
    acked = nacked = 0
    start = time.monotonic()
    batch = []

    async def wait_for_batch() -> None:
        nonlocal acked, nacked
        for result in await asyncio.gather(*batch, return_exceptions=True):
            if is_ack(result):
                acked += 1
            else:
                print(f"Message was not confirmed: {result!r}", file=sys.stderr)
                nacked += 1
        batch.clear()

    for i in range(MESSAGE_COUNT):
        batch.append(
            channel.default_exchange.publish(Message(str(i).encode()), routing_key=queue.name),
        )
        if len(batch) == BATCH_SIZE:
            await wait_for_batch()
    if batch:
        await wait_for_batch()
    depth = (await channel.declare_queue(queue.name, passive=True)).declaration_result.message_count
    report("in batch", start, acked, nacked, depth)
    await queue.delete(if_unused=False, if_empty=False)
    await channel.close()


async def handle_publish_confirms_asynchronously(connection: AbstractConnection) -> None:
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue(exclusive=True)
    acked = nacked = 0
    outstanding: set[asyncio.Task] = set()
    all_confirmed = asyncio.get_running_loop().create_future()

    def handle_confirm(task: asyncio.Task) -> None:
        nonlocal acked, nacked
        outstanding.discard(task)
        if not task.cancelled() and task.exception() is None and is_ack(task.result()):
            acked += 1
        else:
            nacked += 1
            print(f"Message {task.get_name()} has been nack-ed", file=sys.stderr)
        if not outstanding and not all_confirmed.done():
            all_confirmed.set_result(None)

    start = time.monotonic()
    for i in range(MESSAGE_COUNT):
        task = asyncio.create_task(
            channel.default_exchange.publish(Message(str(i).encode()), routing_key=queue.name),
            name=str(i),
        )
        outstanding.add(task)
        task.add_done_callback(handle_confirm)
    if outstanding:
        await all_confirmed
    depth = (await channel.declare_queue(queue.name, passive=True)).declaration_result.message_count
    report("and handled confirms asynchronously", start, acked, nacked, depth)
    await queue.delete(if_unused=False, if_empty=False)
    await channel.close()


async def main() -> None:
    connection = await connect(AMQP_URL)
    async with connection:
        await publish_messages_individually(connection)
        await publish_messages_in_batch(connection)
        await handle_publish_confirms_asynchronously(connection)


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
