#!/usr/bin/env python
"""Tutorial 3 (Publish/Subscribe), log receiver, with aio-pika: an exclusive
server-named queue bound to the fanout exchange.

Interop changes: AMQP_URL; stops after TUTORIAL_COUNT messages (if set) or
with status 3 after TUTORIAL_TIMEOUT seconds.
"""
import asyncio
import os
import sys

from aio_pika import ExchangeType, connect
from aio_pika.abc import AbstractIncomingMessage

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
COUNT = int(os.environ.get("TUTORIAL_COUNT", "0"))
TIMEOUT = float(os.environ.get("TUTORIAL_TIMEOUT", "60"))


async def main() -> None:
    # Perform connection
    connection = await connect(AMQP_URL)

    async with connection:
        # Creating a channel
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)

        logs_exchange = await channel.declare_exchange("logs", ExchangeType.FANOUT)

        # Declaring queue
        queue = await channel.declare_queue(exclusive=True)

        # Binding the queue to the exchange
        await queue.bind(logs_exchange)

        received = 0
        enough = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal received
            async with message.process():
                print(f" [x] {message.body.decode()}")
            received += 1
            if received == COUNT:
                enough.set()

        # Start listening the queue
        await queue.consume(on_message)

        print(f" [*] Waiting for logs in {queue.name}. To exit press CTRL+C")
        await enough.wait()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("Interrupted")
