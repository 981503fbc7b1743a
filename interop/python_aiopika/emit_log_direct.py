#!/usr/bin/env python
"""Tutorial 4 (Routing), emitter, with aio-pika: the severity is the routing key.

Usage: emit_log_direct.py [severity] [message]. Interop change: AMQP_URL.
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

        direct_logs_exchange = await channel.declare_exchange(
            "direct_logs", ExchangeType.DIRECT,
        )

        severity = sys.argv[1] if len(sys.argv) > 1 else "info"
        message_body = " ".join(sys.argv[2:]) or "Hello World!"

        message = Message(
            message_body.encode(), delivery_mode=DeliveryMode.PERSISTENT,
        )

        # Sending the message
        await direct_logs_exchange.publish(message, routing_key=severity)

        print(f" [x] Sent {severity}:'{message_body}'")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
