"""Queue features at the byte level, with a manual clock: consumer timeout, publish-time
checks (expiration, overflow nacks), argument errors and dead lettering on reject."""

from __future__ import annotations

import dataclasses

import pytest
from pamqp import commands as c

from amqpbroker.clock import ManualScheduler
from amqpbroker.core import BrokerCore
from amqpbroker.settings import Settings
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore
from wire import WireClient

TIMEOUT_TEXT = ("PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. "
                "Timeout value used: {} ms. This timeout value can be configured, see "
                "consumers doc guide to learn more")


@pytest.fixture
def clock() -> ManualScheduler:
    return ManualScheduler()


def make_client(clock: ManualScheduler, **settings) -> WireClient:
    core = BrokerCore(dataclasses.replace(Settings(data_dir=None), **settings),
                      MemoryMessageStore(), MemoryDefinitionStore(), scheduler=clock)
    client = WireClient(core)
    client.handshake()
    client.open_channel(1)
    return client


def frames(out, cls):
    return [f for _, f in out if isinstance(f, cls)]


def consume(client, queue="q", **kwargs):
    out = client.send(1, c.Basic.Consume(queue=queue, consumer_tag="ct", **kwargs))
    assert frames(out, c.Basic.ConsumeOk)
    return out


# -- consumer timeout ---------------------------------------------------------------------

def test_consumer_timeout_closes_the_channel_and_requeues(clock):
    client = make_client(clock, consumer_timeout_ms=1000)
    client.send(1, c.Queue.Declare(queue="q"))
    consume(client)
    out = client.publish(1, "", "q", b"slow")
    assert frames(out, c.Basic.Deliver)
    clock.advance(0.9)
    assert client.drain() == []
    clock.advance(0.2)
    [close] = frames(client.drain(), c.Channel.Close)
    assert close.reply_code == 406
    assert close.reply_text == TIMEOUT_TEXT.format(1000)
    assert (close.class_id, close.method_id) == (0, 0)
    q = client.core.vhosts["/"].queues["q"]
    assert q.message_count == 1 and q.consumer_count == 0 and q.unacked == 0


def test_acked_deliveries_never_time_out(clock):
    client = make_client(clock, consumer_timeout_ms=1000)
    client.send(1, c.Queue.Declare(queue="q"))
    consume(client)
    for i in range(1, 30):
        client.publish(1, "", "q", b"m")
        clock.advance(0.1)
        client.send(1, c.Basic.Ack(delivery_tag=i))
    assert client.drain() == []
    assert client.conn.channels[1].closed is False


def test_the_oldest_unacked_delivery_decides(clock):
    client = make_client(clock, consumer_timeout_ms=1000)
    client.send(1, c.Queue.Declare(queue="q"))
    consume(client)
    client.publish(1, "", "q", b"1")
    clock.advance(0.6)
    client.publish(1, "", "q", b"2")
    client.send(1, c.Basic.Ack(delivery_tag=1))
    clock.advance(0.6)  # 1.2 s since the first delivery, but it was acked
    assert client.drain() == []
    clock.advance(0.5)  # the second is 1.1 s old
    assert frames(client.drain(), c.Channel.Close)


def test_queue_and_consumer_x_consumer_timeout_override_the_default(clock):
    client = make_client(clock)  # default 30 minutes
    client.send(1, c.Queue.Declare(queue="q", arguments={"x-consumer-timeout": 500}))
    consume(client)
    client.publish(1, "", "q", b"m")
    clock.advance(0.6)
    [close] = frames(client.drain(), c.Channel.Close)
    assert close.reply_text == TIMEOUT_TEXT.format(500)

    client.send(1, c.Channel.CloseOk())
    client.open_channel(1)
    consume(client, arguments={"x-consumer-timeout": 2000})  # redelivers the message
    clock.advance(1.0)
    assert frames(client.drain(), c.Channel.Close) == []
    clock.advance(1.2)
    [close] = frames(client.drain(), c.Channel.Close)
    assert close.reply_text == TIMEOUT_TEXT.format(2000)


def test_basic_get_deliveries_time_out_too(clock):
    client = make_client(clock, consumer_timeout_ms=1000)
    client.send(1, c.Queue.Declare(queue="q"))
    client.publish(1, "", "q", b"m")
    assert frames(client.send(1, c.Basic.Get(queue="q")), c.Basic.GetOk)
    clock.advance(1.2)
    assert frames(client.drain(), c.Channel.Close)


# -- publish-time checks ----------------------------------------------------------------------

@pytest.mark.parametrize("expiration, reason", [
    ("abc", "no_integer"), ("-1", "{value_negative,-1}"), ("10s", '{leftover_string,"s"}'),
    ("4294967296", "{value_too_big,4294967296}"),
])
def test_invalid_expiration_is_406(clock, expiration, reason):
    client = make_client(clock)
    out = client.publish(1, "", "q", b"m", c.Basic.Properties(expiration=expiration))
    [close] = frames(out, c.Channel.Close)
    assert close.reply_code == 406
    assert close.reply_text == f"PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}"
    assert (close.class_id, close.method_id) == (60, 40)


def test_reject_publish_nacks_in_confirm_mode(clock):
    client = make_client(clock)
    client.send(1, c.Queue.Declare(queue="q", arguments={"x-max-length": 1,
                                                          "x-overflow": "reject-publish"}))
    client.send(1, c.Queue.Declare(queue="other"))
    client.send(1, c.Exchange.Declare(exchange="fan", exchange_type="fanout"))
    client.send(1, c.Queue.Bind(queue="q", exchange="fan"))
    client.send(1, c.Queue.Bind(queue="other", exchange="fan"))
    client.send(1, c.Confirm.Select())
    [ack] = frames(client.publish(1, "fan", "", b"1"), c.Basic.Ack)
    assert ack.delivery_tag == 1
    [nack] = frames(client.publish(1, "fan", "", b"2"), c.Basic.Nack)
    assert nack.delivery_tag == 2 and not nack.multiple
    vhost = client.core.vhosts["/"]
    # rejected by one queue: still enqueued in the others (RabbitMQ)
    assert vhost.queues["q"].message_count == 1 and vhost.queues["other"].message_count == 2


def test_invalid_queue_argument_closes_the_channel(clock):
    client = make_client(clock)
    out = client.send(1, c.Queue.Declare(queue="q", arguments={"x-max-priority": 300}))
    [close] = frames(out, c.Channel.Close)
    assert close.reply_code == 406
    assert close.reply_text == ("PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue "
                                "'q' in vhost '/': {max_value_exceeded,300}")
    assert (close.class_id, close.method_id) == (50, 10)


def test_exclusive_consumer_on_a_single_active_consumer_queue_is_refused(clock):
    client = make_client(clock)
    client.send(1, c.Queue.Declare(queue="q", arguments={"x-single-active-consumer": True}))
    out = client.send(1, c.Basic.Consume(queue="q", exclusive=True))
    [close] = frames(out, c.Channel.Close)
    assert close.reply_code == 403
    assert close.reply_text == "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use"


def test_nack_without_requeue_dead_letters(clock):
    client = make_client(clock)
    client.send(1, c.Exchange.Declare(exchange="dlx", exchange_type="fanout"))
    client.send(1, c.Queue.Declare(queue="dlq"))
    client.send(1, c.Queue.Bind(queue="dlq", exchange="dlx"))
    client.send(1, c.Queue.Declare(queue="q", arguments={"x-dead-letter-exchange": "dlx"}))
    client.publish(1, "", "q", b"a")
    client.publish(1, "", "q", b"b")
    consume(client)
    client.send(1, c.Basic.Nack(delivery_tag=2, multiple=True, requeue=False))
    dlq = client.core.vhosts["/"].queues["dlq"]
    assert [e[0].body for e in dlq.ready] == [b"a", b"b"]


def test_single_active_consumer_takes_over_when_the_channel_closes(clock):
    client = make_client(clock)
    client.send(1, c.Queue.Declare(queue="q", arguments={"x-single-active-consumer": True}))
    client.send(1, c.Basic.Qos(prefetch_count=1))
    consume(client)
    client.open_channel(2)
    client.send(2, c.Basic.Consume(queue="q", consumer_tag="second"))
    out = client.publish(1, "", "q", b"1") + client.publish(1, "", "q", b"2")
    assert [ch for ch, f in out if isinstance(f, c.Basic.Deliver)] == [1]
    out = client.send(1, c.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    delivers = [(ch, f) for ch, f in out if isinstance(f, c.Basic.Deliver)]
    assert [(ch, f.consumer_tag, f.redelivered) for ch, f in delivers] == [
        (2, "second", True), (2, "second", False)]
