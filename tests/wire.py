"""A byte-level client for the sans-IO connection (no sockets, no event loop)."""

from __future__ import annotations

from typing import Any

from pamqp import body as pbody
from pamqp import commands, frame, header

from amqpbroker.core import BrokerCore
from amqpbroker.protocol.frames import PROTOCOL_HEADER, FrameReader
from amqpbroker.session.connection import ClientConnection


class WireClient:
    """Drives a ClientConnection with pamqp-encoded frames and decodes what it sends back."""

    def __init__(self, core: BrokerCore, now: float = 0.0, loopback: bool = True) -> None:
        self.core = core
        self.conn = ClientConnection(core, "test:1", now, loopback=loopback)
        self.now = now
        self._reader = FrameReader(1 << 30)

    def feed(self, data: bytes) -> list[tuple[int, Any]]:
        """Feeds `data` and, as the server's transport does on later loop turns, any input
        the connection held back by its turn budget (`input_waiting`)."""
        self.conn.feed(data, self.now)
        while self.conn.input_waiting and not self.conn.closed:
            self.conn.feed(b"", self.now)
        return self.drain()

    def feed_once(self, data: bytes) -> list[tuple[int, Any]]:
        """One turn only: what is held back stays held (`conn.input_waiting`)."""
        self.conn.feed(data, self.now)
        return self.drain()

    def drain(self) -> list[tuple[int, Any]]:
        out = self.conn.data_to_send()
        if out.startswith(PROTOCOL_HEADER):
            return [(0, out)]
        frames = []
        for ftype, channel, payload in self._reader.feed(out):
            raw = (bytes([ftype]) + channel.to_bytes(2, "big") + len(payload).to_bytes(4, "big")
                   + payload + b"\xce")
            frames.append((channel, frame.unmarshal(raw)[2]))
        return frames

    def wait_refusal(self) -> list[tuple[int, Any]]:
        """A refused login is answered after auth_failure_delay (on a tick)."""
        self.now += self.core.settings.auth_failure_delay
        self.conn.tick(self.now)
        return self.drain()

    def send(self, channel: int, *frames_: Any) -> list[tuple[int, Any]]:
        return self.feed(b"".join(frame.marshal(f, channel) for f in frames_))

    def handshake(self, user: str = "guest", password: str = "guest", vhost: str = "/",
                  heartbeat: int = 0, frame_max: int = 131072,
                  channel_max: int = 2047) -> list[tuple[int, Any]]:
        out = self.feed(PROTOCOL_HEADER)
        assert isinstance(out[0][1], commands.Connection.Start)
        out = self.send(0, commands.Connection.StartOk(
            client_properties={"capabilities": {"authentication_failure_close": True,
                                                "consumer_cancel_notify": True}},
            mechanism="PLAIN", response=f"\0{user}\0{password}", locale="en_US"))
        if not out and not self.conn.closed:
            out = self.wait_refusal()
        if not out or not isinstance(out[0][1], commands.Connection.Tune):
            return out
        out = self.send(0, commands.Connection.TuneOk(channel_max=channel_max, frame_max=frame_max,
                                                     heartbeat=heartbeat))
        assert out == []
        return self.send(0, commands.Connection.Open(virtual_host=vhost))

    def open_channel(self, channel: int = 1) -> None:
        out = self.send(channel, commands.Channel.Open())
        assert isinstance(out[0][1], commands.Channel.OpenOk), out

    def publish(self, channel: int, exchange: str, routing_key: str, body: bytes,
                properties: commands.Basic.Properties | None = None,
                mandatory: bool = False) -> list[tuple[int, Any]]:
        return self.feed(publish_frames(channel, exchange, routing_key, body, properties,
                                        mandatory))


def publish_frames(channel: int, exchange: str, routing_key: str, body: bytes,
                   properties: commands.Basic.Properties | None = None,
                   mandatory: bool = False, frame_max: int = 131072) -> bytes:
    parts = [
        frame.marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                             mandatory=mandatory), channel),
        frame.marshal(header.ContentHeader(0, len(body), properties or commands.Basic.Properties()),
                      channel),
    ]
    step = frame_max - 8
    for i in range(0, len(body), step):
        parts.append(frame.marshal(pbody.ContentBody(body[i:i + step]), channel))
    return b"".join(parts)
