#!/usr/bin/env python
"""Tutorial 1 ("Hello World!"), consumer, with aio-pika.

Interop changes: AMQP_URL; stops after TUTORIAL_COUNT messages (if set) or
with status 3 after TUTORIAL_TIMEOUT seconds.
"""
import asyncio
import os
import sys

from aio_pika import connect
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

        # Declaring queue
        queue = await channel.declare_queue("hello")

        received = 0
        enough = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal received
            print(f" [x] Received {message.body.decode()}")
            received += 1
            if received == COUNT:
                enough.set()

        # Start listening the queue with name 'hello'
        await queue.consume(on_message, no_ack=True)

        print(" [*] Waiting for messages in hello. To exit press CTRL+C")
        await enough.wait()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("Interrupted")
