#!/usr/bin/env python
"""Tutorial 5 (Topics), emitter with "<facility>.<severity>" routing keys.

Usage: emit_log_topic.py [routing.key] [message]. Interop change: AMQP_URL.
"""
import os
import sys
import threading

import pika

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")


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

    channel.exchange_declare(exchange="topic_logs", exchange_type="topic")

    routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
    message = " ".join(sys.argv[2:]) or "Hello World!"
    channel.basic_publish(exchange="topic_logs", routing_key=routing_key, body=message)
    print(f" [x] Sent {routing_key}:'{message}'")
    connection.close()


if __name__ == "__main__":
    exit_after_timeout()
    main()
