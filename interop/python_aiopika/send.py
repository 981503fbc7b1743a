#!/usr/bin/env python
"""Tutorial 1 ("Hello World!"), producer, with aio-pika. Interop change: AMQP_URL."""
import asyncio
import os
import sys

from aio_pika import Message, connect

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
TIMEOUT = float(os.environ.get("TUTORIAL_TIMEOUT", "60"))


async def main() -> None:
    # Perform connection
    connection = await connect(AMQP_URL)

    async with connection:
        # Creating a channel
        channel = await connection.channel()

        # Declaring queue
        queue = await channel.declare_queue("hello")

        message = " ".join(sys.argv[1:]) or "Hello World!"

        # Sending the message
        await channel.default_exchange.publish(
            Message(message.encode()),
            routing_key=queue.name,
        )

        print(f" [x] Sent '{message}'")


if __name__ == "__main__":
    # Interop addition: never run forever (status 3 after TUTORIAL_TIMEOUT s).
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
