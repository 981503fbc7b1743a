"""pika (BlockingConnection) against a broker running in a thread."""

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, UnroutableError

from amqpbroker.embed import run_in_thread


@pytest.fixture(scope="module")
def thread_broker():
    with run_in_thread() as broker:
        yield broker


def _connect(broker):
    return pika.BlockingConnection(pika.URLParameters(broker.url))


def test_confirm_delivery_and_unroutable_error(thread_broker):
    conn = _connect(thread_broker)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("pika-q")
    ch.basic_publish("", "pika-q", b"ok", mandatory=True)
    with pytest.raises(UnroutableError):
        ch.basic_publish("", "nowhere", b"lost", mandatory=True)
    method, props, body = ch.basic_get("pika-q", auto_ack=True)
    assert body == b"ok" and method.message_count == 0
    conn.close()


def test_basic_get_loop_and_properties(thread_broker):
    conn = _connect(thread_broker)
    ch = conn.channel()
    ch.queue_declare("pika-get", auto_delete=False)
    props = pika.BasicProperties(content_type="text/plain", headers={"k": "v", "n": 3},
                                 correlation_id="c1", reply_to="r", delivery_mode=2)
    for i in range(20):
        ch.basic_publish("", "pika-get", b"%d" % i, props)
    seen = []
    while True:
        method, p, body = ch.basic_get("pika-get")
        if method is None:
            break
        ch.basic_ack(method.delivery_tag)
        seen.append(body)
        assert p.headers == {"k": "v", "n": 3} and p.correlation_id == "c1"
    assert seen == [b"%d" % i for i in range(20)]
    conn.close()


def test_channel_error_surfaces_with_code(thread_broker):
    conn = _connect(thread_broker)
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as exc:
        ch.exchange_declare("amq.custom", "direct")
    assert exc.value.reply_code == 403
    ch = conn.channel()
    ch.exchange_declare("pe", "direct")
    with pytest.raises(ChannelClosedByBroker) as exc:
        ch.exchange_declare("pe", "fanout")
    assert exc.value.reply_code == 406
    conn.close()


def test_consume_with_prefetch_and_cancel(thread_broker):
    conn = _connect(thread_broker)
    ch = conn.channel()
    ch.queue_declare("pika-c")
    for i in range(5):
        ch.basic_publish("", "pika-c", b"%d" % i)
    ch.basic_qos(prefetch_count=2)
    got = []
    for method, _props, body in ch.consume("pika-c", inactivity_timeout=2):
        if method is None:
            break
        got.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(got) == 5:
            break
    ch.cancel()
    assert got == [b"%d" % i for i in range(5)]
    conn.close()
