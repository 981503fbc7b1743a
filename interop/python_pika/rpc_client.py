#!/usr/bin/env python
"""Tutorial 6 (RPC), client: exclusive callback queue, reply_to and
correlation_id.

Usage: rpc_client.py [n]  (default 30)
Interop changes: AMQP_URL; the number comes from argv; status 3 after
TUTORIAL_TIMEOUT seconds.
"""
import os
import sys
import threading
import uuid

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


class FibonacciRpcClient:
    def __init__(self):
        self.connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        self.channel = self.connection.channel()

        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue

        self.channel.basic_consume(
            queue=self.callback_queue,
            on_message_callback=self.on_response,
            auto_ack=True,
        )

        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key="rpc_queue",
            properties=pika.BasicProperties(
                reply_to=self.callback_queue,
                correlation_id=self.corr_id,
            ),
            body=str(n),
        )
        while self.response is None:
            self.connection.process_data_events(time_limit=1)
        return int(self.response)

    def close(self):
        self.connection.close()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    fibonacci_rpc = FibonacciRpcClient()

    print(f" [x] Requesting fib({n})")
    response = fibonacci_rpc.call(n)
    print(f" [.] Got {response}")
    fibonacci_rpc.close()


if __name__ == "__main__":
    exit_after_timeout()
    main()
