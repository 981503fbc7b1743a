"""`amqpbroker ctl` set_parameter / clear_parameter / list_parameters / shovel_status
(rabbitmqctl's syntax) driving a shovel between two embedded brokers; pika counts the
messages at both ends."""

from __future__ import annotations

import json
import time

import pika

from amqpbroker.embed import run_in_thread
from test_ctl import broker, ctl  # type: ignore[import-not-found]  # noqa: F401


def _depth(url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return -1
    finally:
        if conn.is_open:
            conn.close()


def _until(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)
    return value


def test_ctl_shovel_parameter_lifecycle(broker) -> None:  # noqa: F811
    with run_in_thread() as src:
        conn = pika.BlockingConnection(pika.URLParameters(src.url))
        ch = conn.channel()
        ch.queue_declare("outbox", durable=True)
        for i in range(50):
            ch.basic_publish("", "outbox", str(i).encode())
        conn.close()
        value = json.dumps({"src-uri": src.url, "src-queue": "outbox", "dest-uri": "amqp://",
                            "dest-queue": "inbox"})
        r = ctl(broker, "set_parameter", "shovel", "mover", value)
        assert r.returncode == 0, r.stderr
        assert 'Setting runtime parameter "mover" for component "shovel"' in r.stdout

        def running():
            out = ctl(broker, "shovel_status", "--formatter", "json")
            assert out.returncode == 0, out.stderr
            return [s for s in json.loads(out.stdout) if s["state"] == "running"]

        status = _until(running)
        assert status[0]["name"] == "mover" and status[0]["source"] == "outbox"
        _until(lambda: _depth(broker.url, "inbox") == 50)
        listed = ctl(broker, "list_parameters", "-q").stdout.splitlines()
        assert listed[0] == "component\tname\tvalue" and listed[1].startswith("shovel\tmover\t")
        bad = ctl(broker, "set_parameter", "shovel", "bad", '{"src-queue": "q"}')
        assert bad.returncode == 65 and "src-uri" in bad.stderr
        r = ctl(broker, "clear_parameter", "shovel", "mover")
        assert r.returncode == 0, r.stderr
        assert json.loads(ctl(broker, "shovel_status", "--formatter", "json").stdout) == []
        assert ctl(broker, "clear_parameter", "shovel", "mover").returncode == 65
