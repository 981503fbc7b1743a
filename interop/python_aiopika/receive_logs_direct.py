#!/usr/bin/env python
"""Tutorial 4 (Routing), receiver of the given severities, with aio-pika.

Usage: receive_logs_direct.py [info] [warning] [error]
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
    severities = sys.argv[1:]
    if not severities:
        sys.stderr.write(f"Usage: {sys.argv[0]} [info] [warning] [error]\n")
        sys.exit(1)

    # Perform connection
    connection = await connect(AMQP_URL)

    async with connection:
        # Creating a channel
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)

        direct_logs_exchange = await channel.declare_exchange(
            "direct_logs", ExchangeType.DIRECT,
        )

        # Declaring an exclusive, server-named queue
        queue = await channel.declare_queue(exclusive=True)

        for severity in severities:
            await queue.bind(direct_logs_exchange, routing_key=severity)

        received = 0
        enough = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal received
            async with message.process():
                print(f" [x] {message.routing_key}:'{message.body.decode()}'")
            received += 1
            if received == COUNT:
                enough.set()

        await queue.consume(on_message)

        print(" [*] Waiting for logs. To exit press CTRL+C")
        await enough.wait()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("Interrupted")
