#!/usr/bin/env python
"""Tutorial 5 (Topics), receiver for the given binding keys.

Usage: receive_logs_topic.py [binding_key]...
Interop changes: AMQP_URL; stops after TUTORIAL_COUNT messages (if set) or
with status 3 after TUTORIAL_TIMEOUT seconds.
"""
import os
import sys
import threading

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
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
    binding_keys = sys.argv[1:]
    if not binding_keys:
        sys.stderr.write(f"Usage: {sys.argv[0]} [binding_key]...\n")
        sys.exit(1)

    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()

    channel.exchange_declare(exchange="topic_logs", exchange_type="topic")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue

    for binding_key in binding_keys:
        channel.queue_bind(exchange="topic_logs", queue=queue_name, routing_key=binding_key)

    received = 0

    def callback(ch, method, properties, body):
        nonlocal received
        print(f" [x] {method.routing_key}:'{body.decode()}'")
        received += 1
        if received == COUNT:
            ch.stop_consuming()

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)

    print(" [*] Waiting for logs. To exit press CTRL+C")
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    exit_after_timeout()
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        sys.exit(0)
