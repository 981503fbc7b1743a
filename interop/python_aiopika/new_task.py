#!/usr/bin/env python
"""Tutorial 2 (Work queues), task producer, with aio-pika. Interop change: AMQP_URL."""
import asyncio
import os
import sys

from aio_pika import DeliveryMode, Message, connect

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
TIMEOUT = float(os.environ.get("TUTORIAL_TIMEOUT", "60"))


async def main() -> None:
    # Perform connection
    connection = await connect(AMQP_URL)

    async with connection:
        # Creating a channel
        channel = await connection.channel()

        # The queue survives a broker restart
        await channel.declare_queue("task_queue", durable=True)

        message_body = " ".join(sys.argv[1:]) or "Hello World!"

        message = Message(
            message_body.encode(), delivery_mode=DeliveryMode.PERSISTENT,
        )

        # Sending the message
        await channel.default_exchange.publish(message, routing_key="task_queue")

        print(f" [x] Sent '{message_body}'")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
