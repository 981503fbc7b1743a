"""A lean blocking AMQP 0-9-1 client for the load generator.

pamqp encodes and decodes the handshake and the non-hot methods; the hot paths
(publishing, deliveries, acks, confirms) live in producer.py and consumer.py and
work on :attr:`Conn.sock` directly with pre-encoded frames and ``struct``.
"""

from __future__ import annotations

import socket
import struct
import time

from pamqp import commands, frame, header
from pamqp.body import ContentBody
from pamqp.exceptions import UnmarshalingException

FRAME_END = 0xCE
HDR = struct.Struct(">BHI")
# method frame: type 1, channel, size 13, class 60, method 80 (basic.ack), tag, multiple, end
ACK = struct.Struct(">BHIHHQBB")
CLOSE_OK = bytes.fromhex("0100000000000400 0a0033ce".replace(" ", ""))
CONNECT_TIMEOUT = 5.0
RPC_TIMEOUT = 30.0


class AMQPError(Exception):
    """Connection or protocol failure; str() is one readable line."""


def ack_frame(tag: int, multiple: bool, channel: int = 1) -> bytes:
    return ACK.pack(1, channel, 13, 60, 80, tag, 1 if multiple else 0, FRAME_END)


def describe(obj: object) -> str:
    """One line for a Close/Cancel frame from the broker."""
    if isinstance(obj, commands.Connection.Close):
        return f"broker closed the connection: {obj.reply_code} {obj.reply_text}"
    if isinstance(obj, commands.Channel.Close):
        return f"broker closed the channel: {obj.reply_code} {obj.reply_text}"
    if isinstance(obj, commands.Basic.Cancel):
        return "broker cancelled the consumer"
    return f"unexpected {getattr(obj, 'name', type(obj).__name__)} from broker"


def describe_raw(raw: bytes | bytearray | memoryview) -> str:
    """Like describe() for one complete raw method frame."""
    try:
        return describe(frame.unmarshal(bytes(raw))[2])
    except (UnmarshalingException, ValueError, struct.error) as e:
        return f"undecodable frame from broker: {e}"


def encode_message(exchange: str, routing_key: str, size: int, persistent: bool,
                   frame_max: int, channel: int = 1) -> tuple[bytearray, int]:
    """Method + header + body frames for one publish with a body of ``size`` 'x'.

    Returns the bytes and the offset of the body's first byte (where a producer
    writes its 16-byte stamp), or -1 for an empty body.
    """
    out = bytearray(frame.marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key), channel))
    props = commands.Basic.Properties(delivery_mode=2 if persistent else 1)
    out += frame.marshal(header.ContentHeader(0, size, props), channel)
    stamp_at = -1
    chunk = frame_max - 8
    left = size
    while left > 0:
        n = min(chunk, left)
        if stamp_at < 0:
            stamp_at = len(out) + 7
        out += frame.marshal(ContentBody(b"x" * n), channel)
        left -= n
    return out, stamp_at


class Conn:
    """One connection with channel 1 open (after :func:`connect`)."""

    def __init__(self, sock: socket.socket, where: str) -> None:
        self.sock = sock
        self.where = where
        self.buf = bytearray()
        self.frame_max = 131072
        self.server_properties: dict[str, object] = {}

    # ------------------------------------------------------------ frames
    def send(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise AMQPError(f"{self.where}: send failed: {e.strerror or e}") from e

    def send_method(self, method: object, channel: int = 1) -> None:
        self.send(frame.marshal(method, channel))  # type: ignore[arg-type]

    def read_raw(self, timeout: float) -> bytes:
        """One complete raw frame (header to frame-end byte)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 7:
                ftype, _ch, size = HDR.unpack_from(self.buf)
                if ftype not in (1, 2, 3, 8) and self.buf[:4] == b"AMQP":
                    raise AMQPError(f"{self.where}: broker does not speak AMQP 0-9-1 "
                                    f"(it answered {bytes(self.buf[:8])!r})")
                if len(self.buf) >= size + 8:
                    raw = bytes(self.buf[: size + 8])
                    del self.buf[: size + 8]
                    if raw[-1] != FRAME_END:
                        raise AMQPError(f"{self.where}: bad frame end byte from broker")
                    return raw
            left = deadline - time.monotonic()
            if left <= 0:
                raise AMQPError(f"{self.where}: request timed out")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                raise AMQPError(f"{self.where}: {e.strerror or e}") from e
            if not data:
                raise AMQPError(f"{self.where}: connection closed by the broker")
            self.buf += data

    def read_method(self, timeout: float = RPC_TIMEOUT) -> object:
        """Next method frame as a pamqp object (skipping heartbeats)."""
        while True:
            raw = self.read_raw(timeout)
            if raw[0] == 8:
                continue
            try:
                _n, _ch, obj = frame.unmarshal(raw)
            except (UnmarshalingException, ValueError, struct.error) as e:
                raise AMQPError(f"{self.where}: undecodable frame from broker: {e}") from e
            return obj

    def rpc(self, method: object, ok: type | tuple[type, ...], channel: int = 1,
            timeout: float = RPC_TIMEOUT) -> object:
        """Send a method and wait for its -Ok; Close frames become AMQPError."""
        self.send_method(method, channel)
        obj = self.read_method(timeout)
        if isinstance(obj, ok):
            return obj
        if isinstance(obj, commands.Connection.Close):
            self._quiet_send(commands.Connection.CloseOk(), 0)
        elif isinstance(obj, commands.Channel.Close):
            self._quiet_send(commands.Channel.CloseOk(), channel)
        raise AMQPError(f"{getattr(method, 'name', method)}: {describe(obj)}")

    def _quiet_send(self, method: object, channel: int) -> None:
        try:
            self.sock.sendall(frame.marshal(method, channel))  # type: ignore[arg-type]
        except OSError:
            pass

    def close(self, timeout: float = 2.0) -> None:
        """connection.close, then read until close-ok or EOF (at most timeout); never raises.

        Whatever else arrives meanwhile (deliveries, confirms) is discarded unparsed,
        so this is safe after a hot loop left a partial frame behind.
        """
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(frame.marshal(commands.Connection.Close(200, "bye", 0, 0), 0))
            tail = bytes(self.buf[-16:])
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                self.sock.settimeout(max(0.01, end - time.monotonic()))
                data = self.sock.recv(262144)
                tail = tail[-16:] + data
                if not data or CLOSE_OK in tail:
                    break
        except OSError:
            pass
        self.buf.clear()
        self.abort()

    def abort(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def connect(host: str, port: int, user: str, password: str, vhost: str,
            frame_max: int = 131072, timeout: float = CONNECT_TIMEOUT,
            product: str = "amqpbroker-perf") -> Conn:
    """TCP connect, handshake (heartbeat 0) and open channel 1, each step bounded."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        reason = "timed out" if isinstance(e, socket.timeout) else (e.strerror or str(e))
        raise AMQPError(f"cannot connect to {host}:{port}: {reason}") from e
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Conn(sock, f"login to {host}:{port} (user {user}, vhost {vhost})")
    try:
        conn.send(header.ProtocolHeader().marshal())
        start = conn.read_method(timeout)
        if not isinstance(start, commands.Connection.Start):
            raise AMQPError(f"expected connection.start, got {describe(start)}")
        conn.server_properties = dict(start.server_properties or {})
        caps = {"publisher_confirms": True, "basic.nack": True, "consumer_cancel_notify": True,
                "authentication_failure_close": True}
        conn.send_method(commands.Connection.StartOk(
            client_properties={"product": product, "capabilities": caps},
            mechanism="PLAIN", response=f"\0{user}\0{password}", locale="en_US"), 0)
        tune = conn.read_method(timeout)
        if not isinstance(tune, commands.Connection.Tune):
            raise AMQPError(describe(tune))
        fm = min(frame_max, tune.frame_max) if tune.frame_max else frame_max
        conn.frame_max = fm
        conn.send_method(commands.Connection.TuneOk(channel_max=max(1, min(tune.channel_max or 2047, 2047)),
                                                    frame_max=fm, heartbeat=0), 0)
        conn.rpc(commands.Connection.Open(virtual_host=vhost), commands.Connection.OpenOk, 0, timeout)
    except AMQPError as e:
        conn.abort()
        msg = str(e)
        if msg.startswith(conn.where):
            msg = msg[len(conn.where):].lstrip(": ")
        raise AMQPError(f"{conn.where} failed: {msg}") from None
    conn.where = f"{host}:{port}"
    try:
        conn.rpc(commands.Channel.Open(), commands.Channel.OpenOk, 1, timeout)
    except AMQPError as e:
        conn.abort()
        raise AMQPError(f"channel.open on {host}:{port} failed: {e}") from None
    conn.sock.settimeout(RPC_TIMEOUT)
    return conn
