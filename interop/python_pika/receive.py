#!/usr/bin/env python
"""Tutorial 1 ("Hello World!"), consumer.

Interop changes: AMQP_URL; stops after TUTORIAL_COUNT messages (if set) or
with status 3 after TUTORIAL_TIMEOUT seconds.
"""
import os
import sys
import threading

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
# Interop addition: TUTORIAL_QUEUE_TYPE=quorum declares the queue as RabbitMQ's current
# tutorials do, as a durable quorum queue.
QUORUM = os.environ.get("TUTORIAL_QUEUE_TYPE") == "quorum"
COUNT = int(os.environ.get("TUTORIAL_COUNT", "0"))


def exit_after_timeout():
    """Interop addition: never run forever (status 3 after TUTORIAL_TIMEOUT s)."""
    def expire():
        print(" [!] timed out", file=sys.stderr, flush=True)
        os._exit(3)
    timer = threading.Timer(float(os.environ.get("TUTORIAL_TIMEOUT", "60")), expire)
    timer.daemon = True
    timer.start()


def main():
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()

    if QUORUM:
        channel.queue_declare(queue="hello", durable=True,
                              arguments={"x-queue-type": "quorum"})
    else:
        channel.queue_declare(queue="hello")

    received = 0

    def callback(ch, method, properties, body):
        nonlocal received
        print(f" [x] Received {body.decode()}")
        received += 1
        if received == COUNT:
            ch.stop_consuming()

    channel.basic_consume(queue="hello", on_message_callback=callback, auto_ack=True)

    print(" [*] Waiting for messages in hello. To exit press CTRL+C")
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    exit_after_timeout()
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        sys.exit(0)
