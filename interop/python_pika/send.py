#!/usr/bin/env python
"""Tutorial 1 ("Hello World!"), producer. Interop change: AMQP_URL."""
import os
import sys
import threading

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
# Interop addition: TUTORIAL_QUEUE_TYPE=quorum declares the queue as RabbitMQ's current
# tutorials do, as a durable quorum queue.
QUORUM = os.environ.get("TUTORIAL_QUEUE_TYPE") == "quorum"


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

    message = " ".join(sys.argv[1:]) or "Hello World!"
    channel.basic_publish(exchange="", routing_key="hello", body=message)
    print(f" [x] Sent '{message}'")
    connection.close()


if __name__ == "__main__":
    exit_after_timeout()
    main()
