#!/usr/bin/env python
"""Tutorial 3 (Publish/Subscribe), log emitter (fanout), with aio-pika.
Interop change: AMQP_URL."""
import asyncio
import os
import sys

from aio_pika import DeliveryMode, ExchangeType, Message, connect

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
TIMEOUT = float(os.environ.get("TUTORIAL_TIMEOUT", "60"))


async def main() -> None:
    # Perform connection
    connection = await connect(AMQP_URL)

    async with connection:
        # Creating a channel
        channel = await connection.channel()

        logs_exchange = await channel.declare_exchange("logs", ExchangeType.FANOUT)

        message_body = " ".join(sys.argv[1:]) or "info: Hello World!"

        message = Message(
            message_body.encode(), delivery_mode=DeliveryMode.PERSISTENT,
        )

        # Sending the message
        await logs_exchange.publish(message, routing_key="info")

        print(f" [x] Sent '{message_body}'")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
