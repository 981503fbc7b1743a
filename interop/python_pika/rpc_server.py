#!/usr/bin/env python
"""Tutorial 6 (RPC), Fibonacci server on rpc_queue.

Interop changes: AMQP_URL; stops after TUTORIAL_COUNT requests (if set), on
CTRL+C, or with status 3 after TUTORIAL_TIMEOUT seconds.
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


def fib(n):
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return fib(n - 1) + fib(n - 2)


def main():
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()

    if QUORUM:
        channel.queue_declare(queue="rpc_queue", durable=True,
                              arguments={"x-queue-type": "quorum"})
    else:
        channel.queue_declare(queue="rpc_queue")

    served = 0

    def on_request(ch, method, props, body):
        nonlocal served
        n = int(body)

        print(f" [.] fib({n})")
        response = fib(n)

        ch.basic_publish(
            exchange="",
            routing_key=props.reply_to,
            properties=pika.BasicProperties(correlation_id=props.correlation_id),
            body=str(response),
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)
        served += 1
        if served == COUNT:
            ch.stop_consuming()

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue="rpc_queue", on_message_callback=on_request)

    print(" [x] Awaiting RPC requests")
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    exit_after_timeout()
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        sys.exit(0)
