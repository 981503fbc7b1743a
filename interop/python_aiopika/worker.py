#!/usr/bin/env python
"""Tutorial 2 (Work queues), worker, with aio-pika: one second per dot.

Interop changes: AMQP_URL; stops after TUTORIAL_COUNT tasks (if set), on
CTRL+C, or with status 3 after TUTORIAL_TIMEOUT seconds.
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
        await channel.set_qos(prefetch_count=1)

        # Declaring queue
        queue = await channel.declare_queue("task_queue", durable=True)

        done = 0
        enough = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal done
            # Acknowledged when the block exits without an exception
            async with message.process():
                print(f" [x] Received '{message.body.decode()}'")
                await asyncio.sleep(message.body.count(b"."))
                print(" [x] Done")
            done += 1
            if done == COUNT:
                enough.set()

        # Start listening the queue with name 'task_queue'
        await queue.consume(on_message)

        print(" [*] Waiting for messages in task_queue. To exit press CTRL+C")
        await enough.wait()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    except TimeoutError:
        print(" [!] timed out", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("Interrupted")
