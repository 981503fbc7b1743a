"""Random and mutated frame streams never crash the broker or leave it half-closed.

Whatever bytes arrive, `feed()` must return normally; the connection either keeps going
or has sent a Connection.Close / closed itself, and the broker state stays consistent.
"""

from hypothesis import HealthCheck, example, given, settings, strategies as st
from pamqp import commands as c
from pamqp import frame

from amqpbroker.protocol.frames import PROTOCOL_HEADER, FrameReader
from amqpbroker.protocol.methods import decode_method
from wire import WireClient, publish_frames

_VALID = b"".join([
    frame.marshal(c.Channel.Open(), 1),
    frame.marshal(c.Queue.Declare(queue="fuzz"), 1),
    frame.marshal(c.Exchange.Declare(exchange="fx", exchange_type="topic"), 1),
    frame.marshal(c.Queue.Bind(queue="fuzz", exchange="fx", routing_key="a.#"), 1),
    frame.marshal(c.Confirm.Select(), 1),
    publish_frames(1, "fx", "a.b", b"payload" * 10),
    frame.marshal(c.Basic.Consume(queue="fuzz", consumer_tag="t"), 1),
    frame.marshal(c.Basic.Ack(delivery_tag=1), 1),
    frame.marshal(c.Basic.Get(queue="fuzz"), 1),
    frame.marshal(c.Tx.Select(), 1),
    frame.marshal(c.Channel.Close(200, "", 0, 0), 1),
])


def _run(core, data: bytes, chunk: int) -> None:
    client = WireClient(core)
    client.handshake()
    for i in range(0, len(data), chunk):
        client.conn.feed(data[i:i + chunk], 0.0)
        client.conn.data_to_send()
        if client.conn.closed:
            break
    client.conn.connection_lost()
    assert client.conn.internal_errors == 0
    assert client.conn.session not in core.sessions
    assert client.conn not in core.connections
    for q in core.vhosts["/"].queues.values():
        assert q.unacked >= 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.integers(1, 64))
def test_random_bytes_after_handshake(core, data, chunk):
    _run(core, data, chunk)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(_VALID)), st.integers(1, 97))
def test_mutated_valid_streams(core, flips, cut, chunk):
    data = bytearray(_VALID)
    for pos, value in flips:
        data[pos] = value
    _run(core, bytes(data[:cut]) + bytes(data[cut:]), chunk)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=64),
                 st.binary(max_size=56).map(lambda tail: PROTOCOL_HEADER + tail)))
@example(b"")
@example(PROTOCOL_HEADER[:5])
@example(b"AMQP\x00\x00\x09\x00")  # another protocol version
def test_random_bytes_before_handshake(core, data):
    """Spec 4.2.2: a connection that does not start with our protocol header gets our
    header back and is closed; one that does gets Connection.Start (whatever follows is
    then read as frames)."""
    client = WireClient(core)
    client.conn.feed(data, 0.0)
    out = client.conn.data_to_send()
    if not client.conn.closed:
        client.conn.feed(PROTOCOL_HEADER, 0.0)
        out += client.conn.data_to_send()
    assert client.conn.internal_errors == 0
    if (data + PROTOCOL_HEADER)[:8] == PROTOCOL_HEADER:
        frames = list(FrameReader(1 << 20).feed(out))
        ftype, channel, payload = frames[0]
        assert (ftype, channel) == (1, 0)
        assert isinstance(decode_method(payload), c.Connection.Start)
        if len(data) < 8:  # less than a frame after the header: it waits for StartOk
            assert len(frames) == 1 and not client.conn.closed
    else:
        assert out == PROTOCOL_HEADER
        assert client.conn.closed
    client.conn.connection_lost()
    assert client.conn not in core.connections
