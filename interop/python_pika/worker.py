#!/usr/bin/env python
"""Tutorial 2 (Work queues), worker: one second of work per dot in the body.

Interop changes: AMQP_URL; stops after TUTORIAL_COUNT tasks (if set), on
CTRL+C, or with status 3 after TUTORIAL_TIMEOUT seconds.
"""
import os
import sys
import threading
import time

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
        channel.queue_declare(queue="task_queue", durable=True,
                              arguments={"x-queue-type": "quorum"})
    else:
        channel.queue_declare(queue="task_queue", durable=True)

    done = 0

    def callback(ch, method, properties, body):
        nonlocal done
        print(f" [x] Received '{body.decode()}'")
        time.sleep(body.count(b"."))
        print(" [x] Done")
        ch.basic_ack(delivery_tag=method.delivery_tag)
        done += 1
        if done == COUNT:
            ch.stop_consuming()

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue="task_queue", on_message_callback=callback)

    print(" [*] Waiting for messages in task_queue. To exit press CTRL+C")
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    exit_after_timeout()
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        sys.exit(0)
