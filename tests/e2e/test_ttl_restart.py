"""TTL deadlines survive a restart (issue 6): time spent down counts against the TTL."""

import time

import pika

from test_cli_process import start_broker


def _channel(port):
    conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/"))
    return conn, conn.channel()


def test_ttl_deadline_survives_restart(tmp_path):
    proc, port = start_broker(data_dir=str(tmp_path))
    try:
        conn, ch = _channel(port)
        ch.queue_declare("ttl-q", durable=True, arguments={"x-message-ttl": 1500})
        ch.queue_declare("keep-q", durable=True, arguments={"x-message-ttl": 60_000})
        props = pika.BasicProperties(delivery_mode=2)
        ch.confirm_delivery()
        ch.basic_publish("", "ttl-q", b"short", props)
        ch.basic_publish("", "keep-q", b"long", props)
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()
    time.sleep(1.6)  # longer than the short TTL, while the broker is down
    proc, port = start_broker(data_dir=str(tmp_path))
    try:
        conn, ch = _channel(port)
        assert ch.basic_get("ttl-q", auto_ack=True)[0] is None  # expired while down
        method, _, body = ch.basic_get("keep-q", auto_ack=True)
        assert body == b"long"
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()
