"""Limits an attacker cannot walk around: bytes against the sans-IO connection, then real
clients and raw sockets against a running broker (docs/security.md, "Limits")."""

from __future__ import annotations

import asyncio
import struct
import time

import aio_pika
import pytest
from pamqp import commands, frame
from structlog.testing import capture_logs

from amqpbroker.embed import Broker
from amqpbroker.protocol.frames import PROTOCOL_HEADER
from wire import WireClient


def nested_table(levels: int) -> bytes:
    body = b""
    for _ in range(levels):
        body = b"\x01kF" + struct.pack(">I", len(body)) + body
    return struct.pack(">I", len(body)) + body


def close_of(out):
    closes = [m for _, m in out if isinstance(m, commands.Connection.Close)]
    assert closes, out
    return closes[0]


# -- before authentication ------------------------------------------------------------------

def test_handshake_timeout_closes_silently(core):
    c = WireClient(core)
    c.feed(PROTOCOL_HEADER)
    c.conn.tick(9.0)
    assert not c.conn.closed
    c.conn.tick(10.5)  # RabbitMQ's handshake_timeout: 10 s
    assert c.conn.closed and core.security.handshake_timeouts == 1


def test_open_connection_has_no_handshake_timeout(client):
    client.conn.tick(1000.0)
    assert not client.conn.closed


def test_frames_over_4096_bytes_before_tune_ok_are_501(core):
    c = WireClient(core)
    c.feed(PROTOCOL_HEADER)
    big = commands.Connection.StartOk(client_properties={"x": "y" * 5000}, mechanism="PLAIN",
                                      response="\0guest\0guest")
    assert close_of(c.send(0, big)).reply_code == 501


def test_channel_frames_before_open_are_refused(core):
    c = WireClient(core)
    c.feed(PROTOCOL_HEADER)
    assert close_of(c.send(1, commands.Channel.Open())).reply_code == 505  # UNEXPECTED_FRAME
    c = WireClient(core)
    c.feed(PROTOCOL_HEADER)
    out = c.feed(frame.marshal(commands.Basic.Publish(routing_key="q"), 1))
    assert close_of(out).reply_code == 505


# -- after: channel_max, frame_max, message size, tables ----------------------------------

def test_more_open_channels_than_channel_max_is_530(core):
    """channel_max counts open channels (RabbitMQ's rabbit_reader), not channel numbers."""
    core.settings.channel_max = 3
    c = WireClient(core)
    c.handshake(channel_max=3)
    for number in (1, 2, 60000):
        c.open_channel(number)
    close = close_of(c.send(4, commands.Channel.Open()))
    assert close.reply_code == 530 and "channel_max (3)" in close.reply_text


def test_frame_over_negotiated_frame_max_is_501(core):
    c = WireClient(core)
    c.handshake(frame_max=8192)
    out = c.feed(b"\x03\x00\x01" + struct.pack(">I", 9000) + b"x" * 9000 + b"\xce")
    assert close_of(out).reply_code == 501


def test_announced_body_size_over_max_message_size_is_406_before_any_body(client):
    assert client.core.settings.max_message_size == 16 * 1024 * 1024  # RabbitMQ 4.x default
    client.open_channel()
    client.send(1, commands.Basic.Publish(routing_key="q"))
    header = struct.pack(">HHQH", 60, 0, 2**63, 0)  # 8 EiB announced: nothing allocated
    out = client.feed(b"\x02\x00\x01" + struct.pack(">I", len(header)) + header + b"\xce")
    (_, close), = out
    assert isinstance(close, commands.Channel.Close) and close.reply_code == 406
    assert "larger than configured max size" in close.reply_text


def test_deeply_nested_arguments_are_502_without_recursion(client):
    client.open_channel()
    declare = commands.Queue.Declare(queue="q")
    payload = (struct.pack(">I", declare.index) + b"\x00\x00\x01q\x00"
               + nested_table(50_000)[:130_000])
    out = client.feed(b"\x01\x00\x01" + struct.pack(">I", len(payload)) + payload + b"\xce")
    assert close_of(out).reply_code in (501, 502)  # over frame_max or nested too deep
    c2 = WireClient(client.core)
    c2.handshake()
    c2.open_channel()
    payload = struct.pack(">I", declare.index) + b"\x00\x00\x01q\x00" + nested_table(33)
    out = c2.feed(b"\x01\x00\x01" + struct.pack(">I", len(payload)) + payload + b"\xce")
    close = close_of(out)
    assert close.reply_code == 502 and "nested deeper than 32" in close.reply_text


def test_deeply_nested_headers_are_502(client):
    client.open_channel()
    client.send(1, commands.Basic.Publish(routing_key="q"))
    props = struct.pack(">H", 0x2000) + nested_table(40)  # headers flag
    header = struct.pack(">HHQ", 60, 0, 0) + props
    out = client.feed(b"\x02\x00\x01" + struct.pack(">I", len(header)) + header + b"\xce")
    assert close_of(out).reply_code == 502


async def test_nested_headers_within_the_limit_pass_through():
    async with Broker() as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True, arguments={"x-a": {"b": {"c": [1]}}})
        headers = {"h": {"a": {"b": {"c": {"d": [1, {"e": 2}]}}}}}
        await ch.default_exchange.publish(aio_pika.Message(b"x", headers=headers), q.name)
        for _ in range(100):
            msg = await q.get(no_ack=True, fail=False)
            if msg:
                break
            await asyncio.sleep(0.02)
        assert msg is not None and msg.headers["h"]["a"]["b"]["c"]["d"][1] == {"e": 2}
        await conn.close()


async def test_publish_over_max_message_size_closes_the_channel_with_406():
    async with Broker(max_message_size=1000) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=False)
        await ch.default_exchange.publish(aio_pika.Message(b"x" * 2000), "q")
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await ch.declare_queue("after", passive=False)
        ok = await conn.channel()  # the connection lives on
        await ok.declare_queue("", exclusive=True)
        await conn.close()


# -- connections: global limit, per-address rate ----------------------------------------------

async def _raw_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(), within)
    except (asyncio.TimeoutError, ConnectionError):
        return False
    return data == b""


async def test_global_connection_limit():
    async with Broker(max_connections=2) as broker:
        a = await aio_pika.connect(broker.url)
        b = await aio_pika.connect(broker.url)
        with pytest.raises(Exception):
            await aio_pika.connect(broker.url, timeout=10)
        assert broker.core.security.connections_refused_max >= 1
        await a.close()
        await asyncio.sleep(0.1)
        c = await aio_pika.connect(broker.url)  # a slot is free again
        await b.close()
        await c.close()


async def test_connection_rate_per_address():
    async with Broker(connection_rate_per_address=0.01, connection_rate_burst=3) as broker:
        with capture_logs() as logs:
            conns = [await _raw_open(broker.port) for _ in range(4)]
            refused = await _closed_by_peer(conns[3][0], 10)
        assert refused and broker.core.security.connections_refused_rate == 1
        assert any(e.get("reason") == "connection_rate_per_address" for e in logs)
        for r, w in conns[:3]:  # the first three were accepted: they get Connection.Start
            w.write(PROTOCOL_HEADER)
            assert (await asyncio.wait_for(r.read(1), 10)) == b"\x01"
        for _, w in conns:
            w.close()


async def test_handshake_timeout_on_a_real_socket():
    async with Broker(handshake_timeout=0.5) as broker:
        reader, writer = await _raw_open(broker.port)
        writer.write(PROTOCOL_HEADER)  # and then nothing
        start = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 30)
        assert data[:1] == b"\x01"  # Connection.Start, then the socket is closed
        assert time.monotonic() - start < 25
        assert broker.core.security.handshake_timeouts == 1
        writer.close()


# -- failed logins -------------------------------------------------------------------------------

async def test_failed_login_is_delayed_logged_counted_and_does_not_block_others():
    async with Broker(auth_failure_delay=2.0) as broker:
        bad_url = f"amqp://guest:s3cr3t-PASSWORD@127.0.0.1:{broker.port}/"
        with capture_logs() as logs:
            start = time.monotonic()
            bad = asyncio.create_task(aio_pika.connect(bad_url, timeout=30))
            await asyncio.sleep(0.2)
            good = await aio_pika.connect(broker.url)  # not held up by the bad login
            good_done = time.monotonic() - start
            with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
                await bad
            bad_done = time.monotonic() - start
            await good.close()
        assert bad_done >= 1.9 and good_done < bad_done
        refused = [e for e in logs if e["event"] == "connection.login_refused"]
        assert refused and refused[0]["user"] == "guest"
        assert refused[0]["peer"].startswith("127.0.0.1:")
        assert "s3cr3t-PASSWORD" not in repr(logs)  # never the password, at any level
        assert broker.core.security.auth_attempts_failed == 1
        assert broker.core.security.auth_attempts_succeeded == 1


def test_input_during_the_refusal_delay_is_discarded(core):
    c = WireClient(core)
    c.feed(PROTOCOL_HEADER)
    caps = {"capabilities": {"authentication_failure_close": True}}
    assert c.send(0, commands.Connection.StartOk(client_properties=caps, mechanism="PLAIN",
                                                 response="\0guest\0nope")) == []
    assert c.feed(b"\xff" * 100) == []  # garbage while waiting: no reply, no crash
    c.now += 2.9
    c.conn.tick(c.now)
    assert c.drain() == [] and not c.conn.closed
    (_, close), = c.wait_refusal()
    assert close.reply_code == 403


# -- Connection.Update-Secret --------------------------------------------------------------------

async def test_update_secret_reauthenticates():
    async with Broker() as broker:
        conn = await aio_pika.connect(broker.url)
        await conn.update_secret("guest", reason="rotation")  # the right secret: ok
        ch = await conn.channel()
        await ch.declare_queue("", exclusive=True)
        with capture_logs() as logs:
            with pytest.raises(Exception):
                await conn.update_secret("not-the-password", reason="rotation", timeout=10)
            await asyncio.sleep(0.2)
        with pytest.raises(Exception):
            await conn.channel()
        errors = [e for e in logs if e["event"] == "connection.error"]
        assert errors and errors[0]["code"] == 530
        assert "not-the-password" not in repr(logs)


# -- back-pressure ---------------------------------------------------------------------------

async def test_a_client_that_never_reads_cannot_make_the_broker_buffer_without_bound():
    """Mandatory unroutable publishes in confirm mode: each one makes the broker send a
    basic.return with the message and an ack. The client never reads; the broker stops
    reading from it once its output backs up (and other clients carry on)."""
    from amqpbroker.fuzz.oracle import handshake_bytes

    async with Broker() as broker:
        reader, writer = await _raw_open(broker.port)
        writer.write(handshake_bytes() + frame.marshal(commands.Confirm.Select(), 1))
        one = (frame.marshal(commands.Basic.Publish(routing_key="nowhere", mandatory=True), 1)
               + b"\x02\x00\x01" + struct.pack(">I", 14) + struct.pack(">HHQH", 60, 0, 1000, 0)
               + b"\xce" + b"\x03\x00\x01" + struct.pack(">I", 1000) + b"x" * 1000 + b"\xce")
        written, deadline = 0, time.monotonic() + 4
        while time.monotonic() < deadline:
            if writer.transport.get_write_buffer_size() < 1 << 20:
                writer.write(one * 50)
                written += len(one) * 50
            await asyncio.sleep(0.002)
        accepted = written - writer.transport.get_write_buffer_size()
        buffered = [p.transport.get_write_buffer_size() for p in broker.server.protocols]
        assert max(buffered) <= 2 * broker.settings.connection_write_high_water
        assert accepted < 64 * 1024 * 1024  # it stopped reading (unbounded: hundreds of MB)
        probe = await aio_pika.connect(broker.url)  # the broker still serves others
        await (await probe.channel()).declare_queue("", exclusive=True)
        await probe.close()
        writer.transport.abort()


async def test_a_large_pipelined_burst_is_served_in_order_in_slices():
    """About 145 KiB of pipelined declares (several reads): none lost or reordered; a
    second client is served meanwhile."""
    from amqpbroker.fuzz.oracle import handshake_bytes

    async with Broker() as broker:
        reader, writer = await _raw_open(broker.port)
        declares = b"".join(frame.marshal(commands.Queue.Declare(queue=f"burst-{i}",
                                                                 nowait=True), 1)
                            for i in range(5000))
        assert len(declares) > 128 * 1024
        writer.write(handshake_bytes() + declares
                     + frame.marshal(commands.Queue.Declare(queue="burst-4999", passive=True), 1))
        other = await aio_pika.connect(broker.url)
        await (await other.channel()).declare_queue("", exclusive=True)
        await other.close()
        for _ in range(200):
            if "burst-4999" in broker.core.vhosts["/"].queues:
                break
            await asyncio.sleep(0.05)
        names = [n for n in broker.core.vhosts["/"].queues if n.startswith("burst-")]
        assert names == [f"burst-{i}" for i in range(5000)]
        writer.close()
