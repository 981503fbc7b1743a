"""Input fairness for MQTT, as for AMQP (tests/session/test_input_turns.py): a read that holds
many packets is handled PACKETS_PER_CHECK at a time, and once one feed has taken its turn the
rest stays in the session's reader (`input_waiting`) for later loop turns, in order, nothing
lost. Packets against the session with a clock the test moves, then real sockets against a
running broker."""

from __future__ import annotations

import asyncio

from amqpbroker.embed import Broker
from amqpbroker.mqtt import packets as p
from amqpbroker.mqtt.codec import decode_packet, encode_packet
from amqpbroker.mqtt.reader import PacketReader
from amqpbroker.mqtt.session import PACKETS_PER_CHECK
from mqtt_harness import Client, make


class SteppingClock:
    """Each reading is `step` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.t = 0.0
        self.step = step
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        self.t += self.step
        return self.t


def publishes(topics: list[str]) -> bytes:
    return b"".join(encode_packet(p.Publish(t, b"x")) for t in topics)


def routed(core) -> list[str]:
    return [m.routing_key for m in core.published]


def test_a_large_read_past_its_turn_keeps_the_rest_for_later_turns():
    core, reg = make()
    c = Client(reg)
    c.connect()
    c.session.clock = SteppingClock(1.0)  # every check after the first ends the turn
    topics = [f"t.{i}" for i in range(3000)]
    c.feed_once(publishes([t.replace(".", "/") for t in topics]))
    assert routed(core) == topics[:2 * PACKETS_PER_CHECK]
    assert c.session.input_waiting
    turns = 1
    while c.session.input_waiting:
        c.feed_once(b"")
        turns += 1
    assert routed(core) == topics  # every publish routed once, in order
    assert turns >= 3 and c.session.reader.buffered == 0


def test_input_arriving_while_some_is_held_goes_after_it():
    core, reg = make()
    c = Client(reg)
    c.connect()
    c.session.clock = SteppingClock(1.0)
    first = [f"a/{i}" for i in range(2000)]
    c.feed_once(publishes(first))
    assert c.session.input_waiting
    c.feed_once(publishes(["late"]))
    while c.session.input_waiting:
        c.feed_once(b"")
    assert routed(core) == [t.replace("/", ".") for t in first] + ["late"]


def test_reads_within_one_check_never_read_the_clock():
    core, reg = make()
    c = Client(reg)
    c.connect()
    clock = c.session.clock = SteppingClock(1.0)
    c.feed_once(publishes([f"s/{i}" for i in range(PACKETS_PER_CHECK - 1)]))
    assert clock.readings == 0 and not c.session.input_waiting
    c.session.clock = SteppingClock(0.0)  # time stands still: the turn never ends
    c.feed_once(publishes([f"b/{i}" for i in range(3000)]))
    assert not c.session.input_waiting and len(core.published) == PACKETS_PER_CHECK - 1 + 3000


def test_a_disconnect_in_the_middle_discards_what_follows():
    core, reg = make()
    c = Client(reg)
    c.connect()
    c.session.clock = SteppingClock(1.0)
    c.feed_once(publishes([f"c/{i}" for i in range(1000)]) + encode_packet(p.Disconnect())
                 + publishes([f"after/{i}" for i in range(1000)]))
    while c.session.input_waiting and not c.session.closed:
        c.feed_once(b"")
    assert c.session.closed
    assert len(core.published) == 1000
    assert not any(m.routing_key.startswith("after") for m in core.published)


async def _mqtt(port: int, client_id: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode_packet(p.Connect(client_id=client_id, username="guest",
                                         password=b"guest")))
    packets = PacketReader()
    return reader, writer, packets


async def _next(reader, packets: PacketReader, pending: list) -> p.Packet:
    while not pending:
        data = await asyncio.wait_for(reader.read(1 << 20), 10)
        assert data, "connection closed"
        pending += [decode_packet(f, b) for f, b in packets.feed(data)]
    return pending.pop(0)


async def test_a_pipelining_publisher_is_served_in_turns_and_others_in_between():
    """20,000 QoS 0 publishes in one write with a 1 ms turn: a subscriber receives every one
    in order, and a third client's PINGREQ round trips complete while the burst is handled."""
    async with Broker(input_turn=0.001, mqtt_port=0) as broker:
        port = broker.mqtt_port
        sr, sw, sp = await _mqtt(port, "sub")
        spending: list = []
        assert isinstance(await _next(sr, sp, spending), p.ConnAck)
        sw.write(encode_packet(p.Subscribe(1, [("burst/#", p.SubOptions(0))])))
        assert isinstance(await _next(sr, sp, spending), p.SubAck)
        pr, pw, pp = await _mqtt(port, "pinger")
        ppending: list = []
        assert isinstance(await _next(pr, pp, ppending), p.ConnAck)
        br, bw, bp = await _mqtt(port, "burst")
        n = 20000
        bw.write(publishes([f"burst/{i}" for i in range(n)]))
        got: list[str] = []
        pings = 0

        async def receive() -> None:
            while len(got) < n:
                m = await _next(sr, sp, spending)
                assert isinstance(m, p.Publish)
                got.append(m.topic)

        receiving = asyncio.ensure_future(receive())
        while not receiving.done():
            pw.write(encode_packet(p.PingReq()))
            assert isinstance(await _next(pr, pp, ppending), p.PingResp)
            pings += 1
        await receiving
        assert got == [f"burst/{i}" for i in range(n)]
        assert pings >= 1
        held = [c for c in broker.server.mqtt.connections
                if getattr(c, "session", None) is not None and c.session.input_waiting]
        assert not held
        for w in (sw, pw, bw):
            w.close()
