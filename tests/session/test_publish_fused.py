"""A publish whose content arrives in the same read is handled in one pass
(FrameReader's FRAME_PUBLISH, Channel.publish_content). Whatever the client sends, the
broker must answer exactly as when the same bytes arrive one at a time, when no publish
is ever fused: the same frames back, the same messages queued."""

from __future__ import annotations

import dataclasses

import pytest
from pamqp import commands, frame

from amqpbroker.core import BrokerCore
from amqpbroker.settings import Settings
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore
from wire import WireClient, publish_frames


def m(channel: int, method) -> bytes:
    return frame.marshal(method, channel)


def pub(channel: int, body: bytes, exchange: str = "", routing_key: str = "q",
        **props) -> bytes:
    return publish_frames(channel, exchange, routing_key, body,
                          commands.Basic.Properties(**props))


def acks(channel: int, tags) -> list[bytes]:
    return [m(channel, commands.Basic.Ack(delivery_tag=t)) for t in tags]


def nested_headers(depth: int) -> dict:
    table: dict = {"leaf": 1}
    for _ in range(depth):
        table = {"t": table}
    return table


IMMEDIATE = m(1, commands.Basic.Publish(exchange="", routing_key="q", immediate=True))
HEADER_AND_BODY = pub(1, b"abc")[len(m(1, commands.Basic.Publish(routing_key="q"))):]

STREAMS = {
    "plain": pub(1, b"one") + pub(1, b"") + pub(1, b"three", content_type="text/plain",
                                              headers={"a": 1}),
    "confirms": m(1, commands.Confirm.Select()) + pub(1, b"a") + pub(1, b"b", routing_key="x"),
    "mandatory unroutable": publish_frames(1, "", "nowhere", b"m", mandatory=True),
    "tx": m(1, commands.Tx.Select()) + pub(1, b"t1") + m(1, commands.Tx.Commit()) + pub(1, b"t2"),
    "immediate": pub(1, b"ok") + IMMEDIATE + HEADER_AND_BODY + pub(1, b"lost"),
    "unknown channel": pub(1, b"ok") + pub(9, b"x"),
    "unknown exchange, then discarded until close-ok": (
        pub(1, b"a", exchange="missing") + pub(1, b"discarded")
        + m(1, commands.Channel.CloseOk()) + m(1, commands.Channel.Open()) + pub(1, b"after")),
    "over the size limit": pub(1, b"x" * 200) + pub(1, b"discarded") + pub(2, b"other"),
    "method instead of a content header": m(1, commands.Basic.Publish(routing_key="q")) + pub(1, b"x"),
    "headers nested too deep": pub(1, b"deep", headers=nested_headers(200)),
    "headers nested within bounds": pub(1, b"ok", headers=nested_headers(5)),
    "body on another channel's publish": pub(1, b"a") + pub(2, b"b") + HEADER_AND_BODY,
    "acks": (m(2, commands.Basic.Consume(queue="q")) + pub(1, b"a") + pub(1, b"b")
             + m(2, commands.Basic.Ack(delivery_tag=1)) + m(2, commands.Basic.Ack(delivery_tag=1))),
    "ack in the middle of a publish": (
        m(2, commands.Basic.Consume(queue="q")) + pub(1, b"a")
        + m(2, commands.Basic.Publish(routing_key="q")) + m(2, commands.Basic.Ack(delivery_tag=1))),
    "ack on a channel being closed": (
        m(2, commands.Basic.Consume(queue="q")) + pub(1, b"a") + pub(2, b"x", exchange="missing")
        + m(2, commands.Basic.Ack(delivery_tag=1))),
    "ack before open": m(3, commands.Basic.Ack(delivery_tag=1)),
    # Acks in a row are settled together (FRAME_ACK groups, Channel.ack_frames).
    "acks in a row": (m(2, commands.Basic.Qos(prefetch_count=2)) + m(2, commands.Basic.Consume(
        queue="q")) + b"".join(pub(1, bytes([i])) for i in range(6))
        + b"".join(acks(2, range(1, 6)))),
    "acks in a row, multiple in the middle": (
        m(2, commands.Basic.Consume(queue="q")) + b"".join(pub(1, bytes([i])) for i in range(6))
        + b"".join(acks(2, [1])) + m(2, commands.Basic.Ack(delivery_tag=4, multiple=True))
        + b"".join(acks(2, [5]))),
    "acks in a row, an unknown tag in the middle": (
        m(2, commands.Basic.Consume(queue="q")) + b"".join(pub(1, bytes([i])) for i in range(4))
        + b"".join(acks(2, [1, 2, 9, 3]))),
    "acks in a row, global prefetch": (
        m(2, commands.Basic.Qos(prefetch_count=1, global_=True))
        + m(2, commands.Basic.Consume(queue="q")) + b"".join(pub(1, bytes([i])) for i in range(4))
        + b"".join(acks(2, [1]))),
    "acks in a row in a transaction": (
        m(2, commands.Tx.Select()) + m(2, commands.Basic.Consume(queue="q"))
        + b"".join(pub(1, bytes([i])) for i in range(3)) + b"".join(acks(2, [1, 2, 3]))
        + m(2, commands.Tx.Commit())),
}


def run(stream: bytes, one_byte_at_a_time: bool) -> tuple[list, list]:
    core = BrokerCore(dataclasses.replace(Settings(data_dir=None), max_message_size=100),
                      MemoryMessageStore(), MemoryDefinitionStore())
    client = WireClient(core)
    client.handshake()
    client.open_channel(1)
    client.open_channel(2)
    client.send(1, commands.Queue.Declare(queue="q"))
    out = []
    if one_byte_at_a_time:
        for i in range(len(stream)):
            out += client.feed(stream[i:i + 1])
    else:
        out += client.feed(stream)
    queue = core.vhosts["/"].queues["q"]
    bodies = [msg.body for msg, _, _ in queue.ready]
    answers = [(ch, type(method).__name__, getattr(method, "reply_code", None),
                getattr(method, "delivery_tag", None)) for ch, method in out]
    # Confirms are coalesced per read (one Basic.Ack with multiple): keep the last of a run.
    answers = [a for a, b in zip(answers, answers[1:] + [None])
               if not (a[1] == "Ack" and b is not None and b[:2] == a[:2])]
    return answers, bodies


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_one_read_answers_as_byte_by_byte(name: str):
    fused = run(STREAMS[name], one_byte_at_a_time=False)
    assert fused == run(STREAMS[name], one_byte_at_a_time=True)
    assert fused[0] or fused[1]  # something happened


def test_what_the_streams_do():
    """The cases above do what their names say (so that the comparison means something)."""
    assert run(STREAMS["plain"], False)[1] == [b"one", b"", b"three"]
    out, bodies = run(STREAMS["immediate"], False)
    assert bodies == [b"ok"] and ("Close" in out[-1][1] and out[-1][2] == 540)
    out, bodies = run(STREAMS["over the size limit"], False)
    assert bodies == [b"other"] and out[0][1:3] == ("Close", 406)
    out, bodies = run(STREAMS["unknown exchange, then discarded until close-ok"], False)
    assert bodies == [b"after"] and out[0][1:3] == ("Close", 404)
    assert run(STREAMS["headers nested too deep"], False)[0][-1][1:3] == ("Close", 502)
    assert run(STREAMS["headers nested within bounds"], False)[1] == [b"ok"]
    assert run(STREAMS["method instead of a content header"], False)[0][-1][1:3] == ("Close", 505)
    assert run(STREAMS["unknown channel"], False)[0][-1][1:3] == ("Close", 504)
    assert run(STREAMS["acks"], False)[0][-1][1:3] == ("Close", 406)  # the second: unknown tag
    assert run(STREAMS["ack in the middle of a publish"], False)[0][-1][1:3] == ("Close", 505)
    assert run(STREAMS["ack before open"], False)[0][-1][1:3] == ("Close", 504)
    out, bodies = run(STREAMS["acks in a row"], False)
    assert [a[3] for a in out if a[1] == "Deliver"] == [1, 2, 3, 4, 5, 6] and bodies == []
    out, bodies = run(STREAMS["acks in a row, an unknown tag in the middle"], False)
    assert out[-1][1:3] == ("Close", 406)
    assert run(STREAMS["acks in a row, global prefetch"], False)[1] == [b"\x02", b"\x03"]
