"""kombu (py-amqp transport) used directly: SimpleQueue, producers and consumers
on exchanges of every type, maybe_declare, and connection retry across a
broker restart (a broker of the test's own, restarted on the same port)."""
from __future__ import annotations

import threading
import time

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.mixins import ConsumerMixin
from kombu.simple import SimpleQueue

from .ecosystem import delete_entities, restartable_broker, unique, wait_until  # noqa: F401
from .harness import WAIT

pytestmark = pytest.mark.interop


@pytest.fixture
def connection(broker_url):
    with Connection(broker_url, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=1)
        yield conn


def drain(conn: Connection, consumer: Consumer, received: list, count: int,
          timeout: float = 5) -> list:
    """Drain events until `received` has `count` items; then a short pause to
    catch extra deliveries."""
    deadline = time.monotonic() + timeout
    with consumer:
        while len(received) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{len(received)} of {count} messages within {timeout} s"
            try:
                conn.drain_events(timeout=remaining)
            except TimeoutError:
                pass
        try:
            conn.drain_events(timeout=0.2)
        except TimeoutError:
            pass
    return received


def test_simple_queue(connection, broker_url):
    name = unique("kombu.simple")
    queue: SimpleQueue = connection.SimpleQueue(name)
    try:
        for i in range(5):
            queue.put({"n": i, "text": f"message {i}"})
        wait_until(lambda: queue.qsize() == 5, 5, "qsize() == 5")
        first = queue.get(block=True, timeout=5)
        assert first.payload == {"n": 0, "text": "message 0"}
        assert first.content_type == "application/json"
        first.ack()
        rest = []
        for _ in range(4):
            message = queue.get(block=True, timeout=5)
            rest.append(message.payload["n"])
            message.ack()
        assert rest == [1, 2, 3, 4]
        with pytest.raises(queue.Empty):
            queue.get(block=True, timeout=0.3)
        with pytest.raises(queue.Empty):
            queue.get_nowait()
    finally:
        queue.close()
        delete_entities(broker_url, queues=(name,), exchanges=(name,))


def test_simple_queue_clear(connection, broker_url):
    name = unique("kombu.clear")
    queue = connection.SimpleQueue(name)
    try:
        for i in range(3):
            queue.put(f"purge me {i}")
        wait_until(lambda: queue.qsize() == 3, 5, "qsize() == 3")
        assert queue.clear() == 3      # queue.purge-ok reports the count
        assert queue.qsize() == 0
        assert len(queue) == 0
    finally:
        queue.close()
        delete_entities(broker_url, queues=(name,), exchanges=(name,))


def test_simple_queue_reject_requeue(connection, broker_url):
    name = unique("kombu.requeue")
    queue = connection.SimpleQueue(name)
    try:
        queue.put("again")
        message = queue.get(timeout=5)
        assert message.delivery_info["redelivered"] is False
        message.requeue()
        again = queue.get(timeout=5)
        assert again.payload == "again"
        assert again.delivery_info["redelivered"] is True
        again.ack()
    finally:
        queue.close()
        delete_entities(broker_url, queues=(name,), exchanges=(name,))


def test_direct_exchange(connection, broker_url):
    exchange = Exchange(unique("kombu.direct"), type="direct", auto_delete=True)
    queues = [Queue(unique(f"kombu.direct.{c}"), exchange, routing_key=c, auto_delete=True)
              for c in ("red", "green")]
    received: list[tuple[str, str]] = []

    def on_message(body, message):
        received.append((message.delivery_info["routing_key"], body))
        message.ack()

    consumer = Consumer(connection, queues, accept=["json"], callbacks=[on_message])
    consumer.declare()
    producer = Producer(connection, exchange=exchange, serializer="json")
    for key, body in [("red", "r1"), ("green", "g1"), ("blue", "lost"), ("red", "r2")]:
        producer.publish(body, routing_key=key)
    drain(connection, consumer, received, 3)
    # One consumer on two queues: the order across queues is not defined, the
    # order within a queue is; "blue" has no binding and is dropped.
    assert sorted(received) == [("green", "g1"), ("red", "r1"), ("red", "r2")]
    assert [b for k, b in received if k == "red"] == ["r1", "r2"]


def test_fanout_exchange(connection):
    exchange = Exchange(unique("kombu.fanout"), type="fanout", auto_delete=True)
    queues = [Queue(unique(f"kombu.fanout.{i}"), exchange, auto_delete=True) for i in range(3)]
    got: dict[str, list] = {q.name: [] for q in queues}
    received: list = []
    consumers = []
    for q in queues:
        def callback(body, message, name=q.name):
            got[name].append(body)
            received.append(body)
            message.ack()
        consumers.append(Consumer(connection, [q], callbacks=[callback]))
    for c in consumers:
        c.declare()
    producer = Producer(connection, exchange=exchange, serializer="json")
    producer.publish({"n": 1}, routing_key="ignored")
    producer.publish({"n": 2}, routing_key="")
    for c in consumers[:-1]:
        c.consume()
    drain(connection, consumers[-1], received, 6)
    for c in consumers[:-1]:
        c.cancel()
    assert all(bodies == [{"n": 1}, {"n": 2}] for bodies in got.values()), got


def test_topic_exchange(connection):
    exchange = Exchange(unique("kombu.topic"), type="topic", auto_delete=True)
    patterns = {"*.orange.*": [], "*.*.rabbit": [], "lazy.#": []}
    queues = {p: Queue(unique("kombu.topic.q"), exchange, routing_key=p, auto_delete=True)
              for p in patterns}
    received: list = []
    consumers = []
    for pattern, q in queues.items():
        def callback(body, message, pattern=pattern):
            patterns[pattern].append(message.delivery_info["routing_key"])
            received.append(body)
            message.ack()
        consumers.append(Consumer(connection, [q], callbacks=[callback]))
    for c in consumers:
        c.declare()
    producer = Producer(connection, exchange=exchange, serializer="json")
    keys = ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox",
            "lazy.brown.fox", "lazy.pink.rabbit", "quick.brown.fox", "orange",
            "quick.orange.male.rabbit", "lazy.orange.male.rabbit", "lazy"]
    for key in keys:
        producer.publish(key, routing_key=key)
    for c in consumers[:-1]:
        c.consume()
    # 2 + 1 + 2 matches for the orange/rabbit patterns, 5 for lazy.#
    drain(connection, consumers[-1], received, 10)
    for c in consumers[:-1]:
        c.cancel()
    assert patterns["*.orange.*"] == ["quick.orange.rabbit", "lazy.orange.elephant",
                                      "quick.orange.fox"]
    assert patterns["*.*.rabbit"] == ["quick.orange.rabbit", "lazy.pink.rabbit"]
    assert patterns["lazy.#"] == ["lazy.orange.elephant", "lazy.brown.fox", "lazy.pink.rabbit",
                                  "lazy.orange.male.rabbit", "lazy"]


def test_headers_exchange(connection):
    exchange = Exchange(unique("kombu.headers"), type="headers", auto_delete=True)
    bindings = {
        "all": {"x-match": "all", "format": "pdf", "type": "report"},
        "any": {"x-match": "any", "format": "zip", "type": "log"},
    }
    queues = {k: Queue(unique(f"kombu.headers.{k}"), exchange, binding_arguments=args,
                       auto_delete=True) for k, args in bindings.items()}
    got: dict[str, list] = {k: [] for k in queues}
    received: list = []
    consumers = []
    for kind, q in queues.items():
        def callback(body, message, kind=kind):
            got[kind].append(body)
            received.append(body)
            message.ack()
        consumers.append(Consumer(connection, [q], callbacks=[callback]))
    for c in consumers:
        c.declare()
    producer = Producer(connection, exchange=exchange, serializer="json")
    messages = [
        ("pdf-report", {"format": "pdf", "type": "report"}),       # all, not any
        ("pdf-log", {"format": "pdf", "type": "log"}),             # any
        ("zip", {"format": "zip"}),                                # any
        ("pdf-only", {"format": "pdf"}),                           # none
        ("extra", {"format": "pdf", "type": "report", "x": 1}),    # all
        ("nothing", {}),                                           # none
    ]
    for body, headers in messages:
        producer.publish(body, headers=headers)
    consumers[0].consume()
    drain(connection, consumers[1], received, 4)
    consumers[0].cancel()
    assert got == {"all": ["pdf-report", "extra"], "any": ["pdf-log", "zip"]}


def test_maybe_declare(connection, broker_url):
    exchange = Exchange(unique("kombu.declare"), type="topic", durable=False)
    queue = Queue(unique("kombu.declare.q"), exchange, routing_key="a.#", durable=False)
    try:
        producer = Producer(connection)
        assert producer.maybe_declare(queue) is True      # declares exchange, queue, binding
        assert producer.maybe_declare(queue) is False     # cached: nothing sent
        assert producer.maybe_declare(exchange) is True   # the exchange is cached on its own
        assert producer.maybe_declare(exchange) is False
        # They exist on the broker: passive declares succeed, and the binding routes.
        channel = connection.channel()
        try:
            exchange(channel).declare(passive=True)
            _, count, _ = queue(channel).queue_declare(passive=True)
            assert count == 0
        finally:
            channel.close()
        producer.publish({"k": "v"}, exchange=exchange, routing_key="a.b.c",
                         declare=[queue], retry=True)
        message = wait_until(lambda: queue(connection.default_channel).get(no_ack=True), 5,
                             "the message through the binding")
        assert message.payload == {"k": "v"}
    finally:
        delete_entities(broker_url, queues=(queue.name,), exchanges=(exchange.name,))


# --- connection retry across a broker restart --------------------------------------

class Collector(ConsumerMixin):
    """kombu's reconnecting consumer loop (the one Celery's worker is built like)."""

    connect_max_retries = 60  # bounded: about 30 s of reconnect attempts

    def __init__(self, connection: Connection, queue: Queue) -> None:
        self.connection = connection
        self.queue = queue
        self.bodies: list[str] = []
        self.consumers_started = 0

    def get_consumers(self, Consumer, channel):  # noqa: N803 - kombu's signature
        return [Consumer(queues=[self.queue], callbacks=[self.on_message], accept=["json"])]

    def on_message(self, body, message):
        self.bodies.append(body)
        message.ack()

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self.consumers_started += 1


def test_connection_retry_across_broker_restart(restartable_broker):  # noqa: F811
    broker = restartable_broker
    exchange = Exchange(unique("kombu.restart"), type="direct", durable=True)
    durable = Queue(unique("kombu.restart.durable"), exchange, routing_key="keep",
                    durable=True)
    live = Queue(unique("kombu.restart.live"), exchange, routing_key="live", durable=True)
    retry_policy = {"max_retries": 60, "interval_start": 0.1, "interval_step": 0.2,
                    "interval_max": 0.5}
    producer_conn = Connection(broker.url, connect_timeout=5,
                               transport_options={"confirm_publish": True})
    consumer_conn = Connection(broker.url, connect_timeout=5)
    collector = Collector(consumer_conn, live)
    thread = threading.Thread(target=collector.run, name="kombu-collector", daemon=True)
    try:
        producer = producer_conn.Producer(serializer="json")
        publish = producer_conn.ensure(producer, producer.publish, **retry_policy)
        publish("before", exchange=exchange, routing_key="keep", declare=[durable, live],
                delivery_mode=2)
        thread.start()
        wait_until(lambda: collector.consumers_started >= 1, WAIT, "the consumer to start")
        publish("live-1", exchange=exchange, routing_key="live", delivery_mode=2)
        wait_until(lambda: collector.bodies == ["live-1"], 5, "live-1")

        broker.stop()
        restarter = threading.Timer(1.0, broker.start)
        restarter.start()
        # Publishing while the broker is down: kombu's ensure() reconnects (with the
        # retry policy) and publishes again once the broker is back.
        publish("after", exchange=exchange, routing_key="keep", delivery_mode=2)
        restarter.join(WAIT)
        assert broker.running

        publish("live-2", exchange=exchange, routing_key="live", delivery_mode=2)
        wait_until(lambda: "live-2" in collector.bodies, WAIT,
                   "the reconnected consumer to get live-2")
        assert collector.consumers_started >= 2, "the consumer did not re-subscribe"
        assert collector.bodies[0] == "live-1" and collector.bodies[-1] == "live-2"

        # The durable queue kept the persistent message published before the restart.
        with Connection(broker.url, connect_timeout=5) as conn:
            channel = conn.channel()
            bound = durable(channel)
            bodies = []
            for _ in range(2):
                message = bound.get(no_ack=True)
                assert message is not None, f"only {bodies} in {durable.name} after restart"
                bodies.append(message.payload)
            assert bodies == ["before", "after"]
            assert bound.get(no_ack=True) is None
            bound.delete()
            live(channel).delete()
            exchange(channel).delete()
    finally:
        collector.should_stop = True
        thread.join(10)
        producer_conn.release()
        consumer_conn.release()
