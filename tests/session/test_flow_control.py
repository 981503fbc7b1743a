"""Publisher flow control: queue backlog limits and the memory alarm (sans-IO)."""

from pamqp import commands as c

from amqpbroker.model.queue import FLOW_HIGH, FLOW_LOW
from wire import WireClient, publish_frames


def _client(core, capabilities=True):
    cl = WireClient(core)
    cl.handshake()
    cl.conn.capabilities["connection.blocked"] = capabilities
    flow = []
    cl.conn.on_flow = flow.append
    return cl, flow


def test_memory_alarm_blocks_publishers_and_tells_them(core):
    publisher, flow = _client(core)
    consumer_only, flow2 = _client(core)
    publisher.open_channel(1)
    publisher.send(1, c.Queue.Declare(queue="q"))
    publisher.publish(1, "", "q", b"x")
    core.set_memory_alarm(True)
    (_, blocked), = publisher.drain()
    assert isinstance(blocked, c.Connection.Blocked) and blocked.reason == "low on memory"
    assert flow == [True]
    assert consumer_only.drain() == [] and flow2 == []  # has not published: not blocked
    core.set_memory_alarm(False)
    (_, unblocked), = publisher.drain()
    assert isinstance(unblocked, c.Connection.Unblocked)
    assert flow == [True, False]


def test_connection_publishing_during_alarm_gets_blocked(core):
    core.set_memory_alarm(True)
    publisher, flow = _client(core)
    publisher.open_channel(1)
    out = publisher.publish(1, "", "nowhere", b"x")
    assert any(isinstance(f, c.Connection.Blocked) for _, f in out)
    assert flow == [True]


def test_queue_backlog_pauses_pure_publisher_until_drained(core):
    consumer, _ = _client(core)
    consumer.open_channel(1)
    consumer.send(1, c.Queue.Declare(queue="q"))
    consumer.send(1, c.Basic.Qos(prefetch_count=1))
    consumer.send(1, c.Basic.Consume(queue="q", consumer_tag="t"))
    publisher, flow = _client(core)
    publisher.open_channel(1)
    publisher.feed(b"".join(publish_frames(1, "", "q", b"m") for _ in range(FLOW_HIGH + 10)))
    assert flow == [True]
    q = core.vhosts["/"].queues["q"]
    tag = 1
    while len(q.ready) > FLOW_LOW:
        consumer.send(1, c.Basic.Ack(delivery_tag=tag))
        tag += 1
    assert flow == [True, False]


def test_disk_alarm_blocks_publishers_like_memory(core):
    publisher, flow = _client(core)
    publisher.open_channel(1)
    publisher.publish(1, "", "nowhere", b"x")
    core.set_alarm("disk", True, free=1)
    core.set_memory_alarm(True)
    assert flow == [True]
    core.set_alarm("disk", False)
    assert flow == [True]  # memory alarm still on
    core.set_memory_alarm(False)
    assert flow == [True, False]
