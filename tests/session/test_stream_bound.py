"""A stream bound to an exchange receives what is routed to it (issue 14's crash:
AttributeError 'StreamQueue' object has no attribute 'route', 541 to the publisher)."""

import pytest
from pamqp import commands as c


@pytest.mark.parametrize("exchange,key,args", [
    ("amq.direct", "k", {}),
    ("amq.fanout", "", {}),
    ("amq.topic", "a.*", {}),
    ("amq.headers", "", {"x-match": "all", "h": "v"}),
])
def test_stream_bound_to_exchange_gets_the_message(client, exchange, key, args):
    client.open_channel(1)
    client.send(1, c.Queue.Declare(queue="s", durable=True,
                                   arguments={"x-queue-type": "stream"}))
    client.send(1, c.Queue.Bind(queue="s", exchange=exchange, routing_key=key,
                                arguments=args))
    out = client.publish(1, exchange, "a.b" if exchange == "amq.topic" else key, b"m",
                         c.Basic.Properties(headers={"h": "v"}))
    assert not [f for _, f in out if isinstance(f, (c.Connection.Close, c.Channel.Close))]
    out = client.send(1, c.Queue.Declare(queue="s", passive=True))
    assert out[0][1].message_count == 1
