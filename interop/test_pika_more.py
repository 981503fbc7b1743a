"""pika beyond the tutorials: SelectConnection with a 2 s heartbeat kept idle
for three intervals, and basic.get loops (BlockingConnection)."""
from __future__ import annotations

import time

import pika
import pytest

from .ecosystem import pika_params, unique

pytestmark = pytest.mark.interop

HEARTBEAT = 2
IDLE = 3 * HEARTBEAT + 0.5


def test_select_connection_heartbeats(broker_url):
    """Heartbeat 2 s negotiated; the ioloop runs with nothing to do for ~6.5 s: pika
    sends its heartbeats, the broker must send its own (the only bytes arriving
    meanwhile) and must not drop the connection; afterwards it still works."""
    params = pika_params(broker_url)
    params.heartbeat = HEARTBEAT
    state: dict = {"closed_by": None, "events": []}

    def fail(reason):
        state["error"] = reason
        connection.ioloop.stop()

    def on_open(conn):
        state["heartbeat"] = conn.params.heartbeat
        state["bytes_at_open"] = conn.bytes_received
        state["opened"] = time.monotonic()
        conn.ioloop.call_later(IDLE, after_idle)

    def after_idle():
        state["open_after_idle"] = connection.is_open
        state["idle_bytes"] = connection.bytes_received - state["bytes_at_open"]
        state["idle_seconds"] = time.monotonic() - state["opened"]
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        state["channel"] = channel
        channel.queue_declare("", exclusive=True, callback=on_declared)

    def on_declared(frame):
        queue = frame.method.queue
        channel = state["channel"]
        channel.basic_publish("", queue, b"after idle")
        channel.basic_get(queue, callback=lambda ch, method, props, body: on_get(body),
                          auto_ack=True)

    def on_get(body):
        state["body"] = body
        connection.close()

    def on_closed(conn, reason):
        state["closed_by"] = reason
        conn.ioloop.stop()

    connection = pika.SelectConnection(
        params, on_open_callback=on_open,
        on_open_error_callback=lambda conn, err: fail(f"open failed: {err!r}"),
        on_close_callback=on_closed)
    watchdog = connection.ioloop.call_later(IDLE + 15, lambda: fail("timed out"))
    try:
        connection.ioloop.start()
        connection.ioloop.remove_timeout(watchdog)
        if connection.is_open:  # only after a failure
            connection.close()
            connection.ioloop.call_later(5, connection.ioloop.stop)
            connection.ioloop.start()
    finally:
        connection.ioloop.close()  # its wake-up socket pair

    assert "error" not in state, state
    assert state["heartbeat"] == HEARTBEAT
    assert state["open_after_idle"] is True, state
    assert state["idle_seconds"] >= 3 * HEARTBEAT
    # Heartbeat frames are 8 bytes; a broker sends one after half an idle interval.
    assert state["idle_bytes"] >= 2 * 8, f"no heartbeats from the broker while idle: {state}"
    assert state["body"] == b"after idle"
    assert isinstance(state["closed_by"], pika.exceptions.ConnectionClosedByClient), state


def test_basic_get_loops(broker_url):
    connection = pika.BlockingConnection(pika_params(broker_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        queue = channel.queue_declare(unique("pika.get"), exclusive=True).method.queue
        for i in range(10):
            channel.basic_publish("", queue, f"m{i}".encode(),
                                  pika.BasicProperties(message_id=str(i)), mandatory=True)

        # get + ack until empty: message_count counts down, tags count up.
        bodies, counts, tags = [], [], []
        for _ in range(6):
            method, props, body = channel.basic_get(queue)
            assert method is not None
            bodies.append(body.decode())
            counts.append(method.message_count)
            tags.append(method.delivery_tag)
            assert props.message_id == body.decode()[1:]
            channel.basic_ack(method.delivery_tag)
        assert bodies == [f"m{i}" for i in range(6)]
        assert counts == [9, 8, 7, 6, 5, 4]
        assert tags == sorted(tags) and len(set(tags)) == 6

        # Three gets without ack, nack(multiple, requeue): back in their order, redelivered.
        held = [channel.basic_get(queue) for _ in range(3)]
        assert [b for _, _, b in held] == [b"m6", b"m7", b"m8"]
        channel.basic_nack(held[-1][0].delivery_tag, multiple=True, requeue=True)
        again = []
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            again.append((body, method.redelivered))
            assert len(again) <= 10, again
        assert again == [(b"m6", True), (b"m7", True), (b"m8", True), (b"m9", False)]

        # An empty queue answers get-empty every time, and a later publish is found.
        assert channel.basic_get(queue) == (None, None, None)
        assert channel.basic_get(queue, auto_ack=True) == (None, None, None)
        channel.basic_publish("", queue, b"late")
        method, _, body = channel.basic_get(queue)
        assert body == b"late" and method.message_count == 0 and not method.redelivered
        channel.basic_reject(method.delivery_tag, requeue=True)
        method, _, body = channel.basic_get(queue)
        assert body == b"late" and method.redelivered
        channel.basic_reject(method.delivery_tag, requeue=False)
        assert channel.queue_declare(queue, passive=True).method.message_count == 0
    finally:
        connection.close()
