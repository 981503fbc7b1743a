"""Connection-level behaviour at the byte level (no sockets, no event loop)."""

from pamqp import commands

from amqpbroker.protocol.frames import PROTOCOL_HEADER
from wire import WireClient


def test_wrong_protocol_header_gets_ours_back_and_closes(core):
    c = WireClient(core)
    out = c.feed(b"AMQP\x01\x01\x00\x09")
    assert out == [(0, PROTOCOL_HEADER)]
    assert c.conn.closed


def test_garbage_instead_of_header_closes(core):
    c = WireClient(core)
    assert c.feed(b"GET / HTTP/1.1\r\n\r\n") == [(0, PROTOCOL_HEADER)]
    assert c.conn.closed


def test_header_split_byte_by_byte(core):
    c = WireClient(core)
    for b in PROTOCOL_HEADER[:-1]:
        assert c.feed(bytes([b])) == []
    (_, start), = c.feed(PROTOCOL_HEADER[-1:])
    assert isinstance(start, commands.Connection.Start)
    caps = start.server_properties["capabilities"]
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos"):
        assert caps[cap] is True
    assert start.mechanisms == "PLAIN AMQPLAIN"


def test_handshake_negotiates_and_opens(core):
    c = WireClient(core)
    out = c.handshake(heartbeat=10)
    assert isinstance(out[0][1], commands.Connection.OpenOk)
    assert c.conn.heartbeat == 10


def test_bad_password_is_403_access_refused(core):
    c = WireClient(core)
    out = c.handshake(password="wrong")
    (_, close), = out
    assert isinstance(close, commands.Connection.Close)
    assert close.reply_code == 403
    assert close.reply_text.startswith("ACCESS_REFUSED - Login was refused")


def test_guest_refused_from_non_loopback(core):
    c = WireClient(core, loopback=False)
    (_, close), = c.handshake()
    assert close.reply_code == 403
    assert "localhost" in close.reply_text


def test_unknown_vhost_is_530_not_allowed(core):
    c = WireClient(core)
    (_, close), = c.handshake(vhost="/nope")
    assert isinstance(close, commands.Connection.Close)
    assert close.reply_code == 530


def test_frame_max_too_large_in_tune_ok_is_refused(core):
    c = WireClient(core)
    c.feed(PROTOCOL_HEADER)
    c.send(0, commands.Connection.StartOk(mechanism="PLAIN", response="\0guest\0guest"))
    (_, close), = c.send(0, commands.Connection.TuneOk(frame_max=1 << 20))
    assert close.reply_code == 530


def test_amqplain_login(core):
    from pamqp import encode

    c = WireClient(core)
    c.feed(PROTOCOL_HEADER)
    table = encode.field_table({"LOGIN": "guest", "PASSWORD": "guest"})[4:]
    out = c.send(0, commands.Connection.StartOk(mechanism="AMQPLAIN", response=table.decode()))
    assert isinstance(out[0][1], commands.Connection.Tune)


def test_heartbeats_sent_when_idle_and_silent_peer_dropped(core):
    c = WireClient(core)
    c.handshake(heartbeat=4)
    c.conn.sent(0.0)
    c.conn.tick(1.0)
    assert c.conn.data_to_send() == b""
    c.conn.tick(2.5)
    assert c.conn.data_to_send() == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    c.conn.tick(8.5)
    assert c.conn.closed


def test_client_close_gets_close_ok(client):
    (_, ok), = client.send(0, commands.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    assert isinstance(ok, commands.Connection.CloseOk)
    assert client.conn.closed


def test_channel_max_counts_open_channels(client):
    """The handshake negotiated channel_max 2047: any number may be opened (RabbitMQ),
    the 2048th channel open at once is refused with 530."""
    client.open_channel(65535)
    for number in range(1, 2047):
        client.open_channel(number)
    (_, close), = client.send(3000, commands.Channel.Open())
    assert isinstance(close, commands.Connection.Close) and close.reply_code == 530
    assert close.reply_text == ("NOT_ALLOWED - number of channels opened (2047) has reached "
                                "the negotiated channel_max (2047)")


def test_method_on_unopened_channel_is_504(client):
    (_, close), = client.send(5, commands.Basic.Qos(prefetch_count=1))
    assert isinstance(close, commands.Connection.Close)
    assert close.reply_code == 504


def test_content_without_publish_is_505(client):
    from pamqp import body, frame

    client.open_channel(1)
    (_, close), = client.feed(frame.marshal(body.ContentBody(b"x"), 1))
    assert close.reply_code == 505


def test_oversized_frame_is_501(client):
    client.open_channel(1)
    big = b"\x01\x00\x01" + (200000).to_bytes(4, "big") + b"\x00" * 200000 + b"\xce"
    (_, close), = client.feed(big)
    assert close.reply_code == 501


def test_immediate_is_540_connection_error(client):
    from pamqp import frame

    client.open_channel(1)
    (_, close), = client.feed(frame.marshal(
        commands.Basic.Publish(exchange="", routing_key="q", immediate=True), 1))
    assert isinstance(close, commands.Connection.Close)
    assert close.reply_code == 540


def test_after_server_close_only_close_ok_counts(client):
    client.open_channel(1)
    client.conn.close(320, "CONNECTION_FORCED - broker shutdown")
    client.drain()
    assert client.send(1, commands.Basic.Qos(prefetch_count=1)) == []
    client.send(0, commands.Connection.CloseOk())
    assert client.conn.closed
