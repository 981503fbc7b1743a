#!/usr/bin/env python
"""Tutorial 6 (RPC), client, with aio-pika: exclusive callback queue,
reply_to and correlation_id.

Usage: rpc_client.py [n]  (default 30)
Interop changes: AMQP_URL; the number comes from argv; status 3 after
TUTORIAL_TIMEOUT seconds.
"""
import asyncio
import os
import sys
import uuid
from typing import MutableMapping

from aio_pika import Message, connect
from aio_pika.abc import (
    AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue,
)

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
TIMEOUT = float(os.environ.get("TUTORIAL_TIMEOUT", "60"))


class FibonacciRpcClient:
    connection: AbstractConnection
    channel: AbstractChannel
    callback_queue: AbstractQueue

    def __init__(self) -> None:
        self.futures: MutableMapping[str, asyncio.Future] = {}

    async def connect(self) -> "FibonacciRpcClient":
        self.connection = await connect(AMQP_URL)
        self.channel = await self.connection.channel()
        self.callback_queue = await self.channel.declare_queue(exclusive=True)
        await self.callback_queue.consume(self.on_response, no_ack=True)

        return self

    async def on_response(self, message: AbstractIncomingMessage) -> None:
        if message.correlation_id is None:
            print(f"Bad message {message!r}")
            return

        future: asyncio.Future = self.futures.pop(message.correlation_id)
        future.set_result(message.body)

    async def call(self, n: int) -> int:
        correlation_id = str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        self.futures[correlation_id] = future

        await self.channel.default_exchange.publish(
            Message(
                str(n).encode(),
                content_type="text/plain",
                correlation_id=correlation_id,
                reply_to=self.callback_queue.name,
            ),
            routing_key="rpc_queue",
        )

        return int(await future)


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    fibonacci_rpc = await FibonacciRpcClient().connect()
    async with fibonacci_rpc.connection:
        print(f" [x] Requesting fib({n})")
        response = await fibonacci_rpc.call(n)
        print(f" [.] Got {response}")


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
