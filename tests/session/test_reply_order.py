"""Replies and the notifications they can race with, at the byte level (issue 15).

RabbitMQ answers a method on the channel that sent it before that channel, or another
channel of the same connection, gets the notifications the method caused: Queue.DeleteOk
comes before the Basic.Cancel of the deleted queue's consumers (py-amqp, waiting for
DeleteOk, fails on a Cancel that comes first). After Connection.Close nothing but
Close-Ok goes out: messages a closing channel gives back are not delivered to a sibling.
"""

from __future__ import annotations

from pamqp import commands as c


def _consume(client, channel: int, queue: str, tag: str, prefetch: int = 1) -> None:
    if channel not in client.conn.channels:
        client.open_channel(channel)
    client.send(channel, c.Basic.Qos(prefetch_count=prefetch))
    out = client.send(channel, c.Basic.Consume(queue=queue, consumer_tag=tag))
    assert isinstance(out[0][1], c.Basic.ConsumeOk), out


def test_delete_ok_before_cancel_of_own_and_sibling_consumers(client):
    client.open_channel(1)
    client.send(1, c.Queue.Declare(queue="q"))
    _consume(client, 1, "q", "own")
    _consume(client, 2, "q", "sibling")
    out = client.send(1, c.Queue.Delete(queue="q"))
    assert [(ch, type(m).__name__) for ch, m in out] == [
        (1, "DeleteOk"), (1, "Cancel"), (2, "Cancel")]
    assert {m.consumer_tag for _, m in out[1:]} == {"own", "sibling"}


def test_purge_and_cancel_replies_come_alone(client):
    client.open_channel(1)
    client.send(1, c.Queue.Declare(queue="q"))
    client.publish(1, "", "q", b"x")
    out = client.send(1, c.Queue.Purge(queue="q"))
    assert [type(m).__name__ for _, m in out] == ["PurgeOk"] and out[0][1].message_count == 1
    _consume(client, 2, "q", "t")
    out = client.send(2, c.Basic.Cancel(consumer_tag="t"))
    assert [type(m).__name__ for _, m in out] == ["CancelOk"]


def test_nothing_delivered_after_connection_close(client):
    client.open_channel(1)
    client.send(1, c.Queue.Declare(queue="q"))
    for body in (b"a", b"b"):
        client.publish(1, "", "q", body)
    _consume(client, 2, "q", "first")  # holds "a" (prefetch 1)
    _consume(client, 3, "q", "second", prefetch=2)  # holds "b", could take one more
    client.drain()
    out = client.send(0, c.Connection.Close(reply_code=200, reply_text="bye", class_id=0,
                                                method_id=0))
    assert [type(m).__name__ for _, m in out] == ["CloseOk"]
    assert client.core.vhosts["/"].queues["q"].message_count == 2
