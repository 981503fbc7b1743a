#!/usr/bin/env python
"""Tutorial 6 (RPC), Fibonacci server on rpc_queue, with aio-pika.

Interop changes: AMQP_URL; stops after TUTORIAL_COUNT requests (if set), on
CTRL+C, or with status 3 after TUTORIAL_TIMEOUT seconds.
"""
import asyncio
import logging
import os
import sys

from aio_pika import Message, connect
from aio_pika.abc import AbstractIncomingMessage

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
COUNT = int(os.environ.get("TUTORIAL_COUNT", "0"))
TIMEOUT = float(os.environ.get("TUTORIAL_TIMEOUT", "60"))


def fib(n: int) -> int:
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return fib(n - 1) + fib(n - 2)


async def main() -> None:
    # Perform connection
    connection = await connect(AMQP_URL)

    async with connection:
        # Creating a channel
        channel = await connection.channel()
        exchange = channel.default_exchange

        # Declaring queue
        queue = await channel.declare_queue("rpc_queue")

        served = 0

        print(" [x] Awaiting RPC requests")

        # Start listening the queue with name 'rpc_queue'
        async with queue.iterator() as qiterator:
            message: AbstractIncomingMessage
            async for message in qiterator:
                try:
                    async with message.process(requeue=False):
                        assert message.reply_to is not None

                        n = int(message.body.decode())

                        print(f" [.] fib({n})")
                        response = str(fib(n)).encode()

                        await exchange.publish(
                            Message(
                                body=response,
                                correlation_id=message.correlation_id,
                            ),
                            routing_key=message.reply_to,
                        )
                        print("Request complete")
                except Exception:
                    logging.exception("Processing error for message %r", message)
                served += 1
                if served == COUNT:
                    break


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("Interrupted")
