#!/usr/bin/env python
"""Tutorial 7 (Publisher Confirms) with pika: three strategies.

* individually -- BlockingConnection with confirm_delivery(): every
  basic_publish blocks until the broker confirms it (or raises on a nack);
* in batch     -- SelectConnection: publish BATCH_SIZE messages, wait until all
  of them are confirmed, publish the next batch;
* asynchronously -- SelectConnection: publish everything, track outstanding
  delivery tags and clear them as acks (possibly multiple=True) come in.

BlockingConnection can only wait for one confirm at a time, so the batch and
asynchronous strategies use pika's asynchronous SelectConnection.

Interop changes: AMQP_URL; MESSAGE_COUNT (default 50,000 as in the tutorial);
status 3 after TUTORIAL_TIMEOUT seconds; each strategy also reports how many
messages its queue holds afterwards.
"""
import os
import sys
import threading
import time

import pika
from pika.spec import Basic

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
MESSAGE_COUNT = int(os.environ.get("MESSAGE_COUNT", "50000"))
BATCH_SIZE = 100


def exit_after_timeout():
    """Interop addition: never run forever (status 3 after TUTORIAL_TIMEOUT s)."""
    def expire():
        print(" [!] timed out", file=sys.stderr, flush=True)
        os._exit(3)
    timer = threading.Timer(float(os.environ.get("TUTORIAL_TIMEOUT", "60")), expire)
    timer.daemon = True
    timer.start()


def report(what, start, acked, nacked, depth):
    elapsed_ms = int((time.monotonic() - start) * 1000)
    print(f"Published {MESSAGE_COUNT} messages {what} in {elapsed_ms} ms "
          f"({acked} acked, {nacked} nacked, {depth} in queue)")


def publish_messages_individually():
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    queue = channel.queue_declare(queue="", exclusive=True).method.queue
    channel.confirm_delivery()

    acked = nacked = 0
    start = time.monotonic()
    for i in range(MESSAGE_COUNT):
        try:
            channel.basic_publish(exchange="", routing_key=queue, body=str(i))
            acked += 1
        except pika.exceptions.NackError:
            nacked += 1
    depth = channel.queue_declare(queue=queue, passive=True).method.message_count
    report("individually", start, acked, nacked, depth)
    channel.queue_delete(queue=queue)
    connection.close()


class AsyncConfirmPublisher:
    """Publishes MESSAGE_COUNT messages on a SelectConnection and tracks confirms.

    batch_size=None publishes everything at once (the asynchronous strategy);
    otherwise the next batch is published once the previous one is confirmed.
    """

    def __init__(self, batch_size=None):
        self.batch_size = batch_size
        self.connection = None
        self.channel = None
        self.queue = None
        self.published = 0
        self.next_tag = 1
        self.outstanding = {}  # delivery tag -> body
        self.acked = 0
        self.nacked = 0
        self.depth = None
        self.start = None
        self.error = None

    def run(self):
        self.connection = pika.SelectConnection(
            pika.URLParameters(AMQP_URL),
            on_open_callback=self.on_connection_open,
            on_open_error_callback=self.on_connection_error,
            on_close_callback=self.on_connection_closed,
        )
        self.connection.ioloop.start()
        if self.error is not None:
            raise RuntimeError(self.error)
        return self.acked, self.nacked, self.depth

    def on_connection_open(self, connection):
        connection.channel(on_open_callback=self.on_channel_open)

    def on_connection_error(self, connection, error):
        self.error = f"connection failed: {error!r}"
        connection.ioloop.stop()

    def on_connection_closed(self, connection, reason):
        connection.ioloop.stop()

    def on_channel_open(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self.on_channel_closed)
        channel.queue_declare(queue="", exclusive=True, callback=self.on_queue_declared)

    def on_channel_closed(self, channel, reason):
        if self.depth is None:
            self.error = f"channel closed: {reason!r}"
            self.connection.close()

    def on_queue_declared(self, frame):
        self.queue = frame.method.queue
        self.channel.confirm_delivery(
            ack_nack_callback=self.on_delivery_confirmation,
            callback=self.on_confirm_select_ok,
        )

    def on_confirm_select_ok(self, frame):
        self.start = time.monotonic()
        self.publish_some()

    def publish_some(self):
        n = MESSAGE_COUNT - self.published
        if self.batch_size is not None:
            n = min(n, self.batch_size)
        for _ in range(n):
            body = str(self.published)
            self.channel.basic_publish(exchange="", routing_key=self.queue, body=body)
            self.outstanding[self.next_tag] = body
            self.next_tag += 1
            self.published += 1
        if n == 0:
            self.finish()

    def on_delivery_confirmation(self, frame):
        method = frame.method
        if method.multiple:
            tags = [tag for tag in self.outstanding if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag] if method.delivery_tag in self.outstanding else []
        for tag in tags:
            body = self.outstanding.pop(tag)
            if isinstance(method, Basic.Ack):
                self.acked += 1
            else:
                self.nacked += 1
                print(f"Message with body {body} has been nack-ed", file=sys.stderr)
        if not self.outstanding:
            if self.published < MESSAGE_COUNT:
                self.publish_some()
            else:
                self.finish()

    def finish(self):
        self.channel.queue_declare(queue=self.queue, passive=True, callback=self.on_depth)

    def on_depth(self, frame):
        self.depth = frame.method.message_count
        self.channel.queue_delete(queue=self.queue, callback=lambda _frame: self.connection.close())


def publish_messages_in_batch():
    start = time.monotonic()
    acked, nacked, depth = AsyncConfirmPublisher(batch_size=BATCH_SIZE).run()
    report("in batch", start, acked, nacked, depth)


def handle_publish_confirms_asynchronously():
    start = time.monotonic()
    acked, nacked, depth = AsyncConfirmPublisher(batch_size=None).run()
    report("and handled confirms asynchronously", start, acked, nacked, depth)


def main():
    publish_messages_individually()
    publish_messages_in_batch()
    handle_publish_confirms_asynchronously()


if __name__ == "__main__":
    exit_after_timeout()
    main()
