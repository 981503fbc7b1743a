#!/usr/bin/env python
"""Tutorial 5 (Topics), emitter, with aio-pika.

Usage: emit_log_topic.py [routing.key] [message]. Interop change: AMQP_URL.
"""
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

        topic_logs_exchange = await channel.declare_exchange(
            "topic_logs", ExchangeType.TOPIC,
        )

        routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
        message_body = " ".join(sys.argv[2:]) or "Hello World!"

        message = Message(
            message_body.encode(), delivery_mode=DeliveryMode.PERSISTENT,
        )

        # Sending the message
        await topic_logs_exchange.publish(message, routing_key=routing_key)

        print(f" [x] Sent {routing_key}:'{message_body}'")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
