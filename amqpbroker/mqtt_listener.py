"""The asyncio shell of the MQTT listeners: plain TCP (1883) and WebSocket (15675, `/ws`,
subprotocol `mqtt`), and both over TLS (8883 and 15676, RabbitMQ's ports for
`mqtt.listeners.ssl` and `web_mqtt.ssl`). As boring as `server.py`: bytes in ->
`MQTTSession.feed`, output out once per loop iteration. The WebSocket edge uses the
`websockets` library; each binary message is fed to the session as bytes (MQTT packets may
span messages, 6.0 of 5.0). TLS is asyncio's (the context comes from
`tls.ListenerContexts`); a verified client certificate may name the user
(`mqtt.ssl_cert_login`, https://www.rabbitmq.com/docs/mqtt#tls-certificate-authentication).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from typing import Any, Callable

import structlog

from amqpbroker.mqtt.registry import MQTTRegistry
from amqpbroker.mqtt.session import MQTTSession

log = structlog.get_logger("amqpbroker")
# The websockets library logs every listener start and handshake at INFO through stdlib
# logging: our own log lines (mqtt.*) say what matters.
_WS_LOG = logging.getLogger("amqpbroker.mqtt_websocket")
_WS_LOG.setLevel(logging.WARNING)
WS_PATH = "/ws"
WS_SUBPROTOCOL = "mqtt"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class MQTTProtocol(asyncio.Protocol):
    def __init__(self, listener: "MQTTListeners", tls: bool = False) -> None:
        self.listener = listener
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.session: MQTTSession | None = None
        self._flush_scheduled = False
        self._held_until = 0  # cluster leader: see MQTTListeners.commit_gate
        # Reading is paused by the session's flow control and while input held back by its
        # turn budget (MQTTSession.input_waiting) is handled on later loop turns.
        self._flow_paused = False
        self._input_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.session = MQTTSession(self.listener.registry, f"{peer[0]}:{peer[1]}",
                                   time.monotonic(), loopback=_is_loopback(str(peer[0])))
        self.session.input_turn = self.listener.input_turn
        self.session.on_output = self._schedule_flush
        self.session.on_flow = self._set_reading
        if self.tls:
            self.session.cert_login = self.listener.cert_login(
                transport.get_extra_info("peercert") or None)
        self.listener.connections.add(self)

    def _set_reading(self, paused: bool) -> None:
        self._flow_paused = paused
        self._apply_reading()

    def _apply_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._flow_paused or self._input_paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.paused = True

    def resume_writing(self) -> None:
        if self.session is not None:
            self.session.writable()
            self.flush()

    def data_received(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        self._feed(session, data)

    def _feed(self, session: MQTTSession, data: bytes) -> None:
        gate = self.listener.commit_gate
        mark = gate.definition_seq if gate is not None else 0
        session.feed(data, time.monotonic())
        if session.input_waiting and not session.closed and not self._input_paused:
            self._input_paused = True
            self._apply_reading()
            asyncio.get_running_loop().call_soon(self._continue_input)
        if gate is not None and gate.definition_seq != mark:
            gate.hold_output(self)
        self.flush()
        self.listener.after_io()

    def _continue_input(self) -> None:
        """The next turn of a large read (after every other ready connection had its turn)."""
        self._input_paused = False
        session = self.session
        if session is None or session.closed or self.transport is None:
            return
        if session.input_waiting:
            self._feed(session, b"")
        if not self._input_paused:
            self._apply_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.discard(self)
        session = self.session
        if session is not None and session.input_waiting and not session.closed:
            # What the peer sent before it went away is handled, as if read in one go.
            session.input_turn = float("inf")
            session.feed(b"", time.monotonic())
        if self.session is not None:
            self.session.connection_lost("connection lost" if exc is None else str(exc))
        self.listener.after_io()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._held_until:
            return  # released by the commit gate (hold_output)
        session, transport = self.session, self.transport
        if session is None or transport is None or transport.is_closing():
            return
        data = session.data_to_send()
        if data:
            transport.write(data)
        if session.closed:
            transport.close()
        elif session.vhost is not None and not session.write_blocked:
            session.writable()  # deliveries skipped while the buffer was full resume
            if session.out:
                self._schedule_flush()

    def tick(self, now: float) -> None:
        if self.session is not None:
            self.session.tick(now)
            self.flush()

    def shutdown(self) -> None:
        if self.session is not None:
            self.session.server_shutdown()
        self.flush()
        if self.transport is not None:
            self.transport.close()


class WebSocketConnection:
    """One MQTT-over-WebSocket client (the `websockets` library's connection)."""

    def __init__(self, listener: "MQTTListeners", ws: Any, tls: bool = False) -> None:
        self.listener = listener
        self.ws = ws
        peer = ws.remote_address or ("?", 0)
        self.session = MQTTSession(listener.registry,
                                   f"{'wss' if tls else 'ws'}:{peer[0]}:{peer[1]}",
                                   time.monotonic(), loopback=_is_loopback(str(peer[0])))
        self.session.on_output = self._schedule_flush
        self.session.input_turn = listener.input_turn
        if tls:
            self.session.cert_login = listener.cert_login(
                ws.transport.get_extra_info("peercert") or None)
        self._flush_scheduled = False
        self._held_until = 0  # cluster leader: see MQTTListeners.commit_gate

    async def run(self) -> None:
        self.listener.connections.add(self)
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    message = message.encode("utf-8")
                gate = self.listener.commit_gate
                mark = gate.definition_seq if gate is not None else 0
                self.session.feed(message, time.monotonic())
                while self.session.input_waiting and not self.session.closed:
                    # the rest of a large message on later loop turns; the next message
                    # is not read meanwhile
                    self.flush()
                    await asyncio.sleep(0)
                    self.session.feed(b"", time.monotonic())
                if gate is not None and gate.definition_seq != mark:
                    gate.hold_output(self)
                if self.session.closed:
                    # the last words (a refusing CONNACK, a DISCONNECT) go out before the
                    # close below, not in a task that the close could overtake
                    data = self.session.data_to_send()
                    if data:
                        await self.ws.send(data)
                    self.listener.after_io()
                    break
                self.flush()
                self.listener.after_io()
        except Exception as exc:  # the peer vanished mid-frame: the session ends as lost
            log.info("mqtt.websocket_error", peer=self.session.peer, error=str(exc))
        finally:
            self.listener.connections.discard(self)
            self.session.connection_lost()
            self.listener.after_io()
            await self.ws.close()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._held_until:
            return  # released by the commit gate (hold_output)
        data = self.session.data_to_send()
        if data:
            asyncio.ensure_future(self._send(data))
        elif self.session.closed:
            asyncio.ensure_future(self.ws.close())

    async def _send(self, data: bytes) -> None:
        try:
            await self.ws.send(data)
            if self.session.closed:
                await self.ws.close()
        except Exception:
            pass

    def tick(self, now: float) -> None:
        self.session.tick(now)
        self.flush()

    def shutdown(self) -> None:
        self.session.server_shutdown()
        self.flush()


class MQTTListeners:
    """The MQTT and Web-MQTT listeners of one broker, sharing one registry."""

    def __init__(self, registry: MQTTRegistry, after_io: Callable[[], None],
                 cert_login: Callable[[Any], str | None] = lambda cert: None,
                 handshake_timeout: float = 10.0, input_turn: float = 0.002) -> None:
        self.registry = registry
        self.input_turn = input_turn  # Settings.input_turn: see MQTTSession.input_waiting
        self.after_io = after_io  # the server's group commit kick (maybe_sync)
        # verified client certificate (or None) -> the user it logs in as, or None
        self.cert_login = cert_login
        self.handshake_timeout = handshake_timeout  # of TLS, as RabbitMQ's handshake_timeout
        self.connections: set[Any] = set()
        self.servers: list[Any] = []
        self.port = 0
        self.ws_port = 0
        self.tls_port = 0
        self.wss_port = 0
        # A cluster leader's commit gate (cluster/leader.py), set by the server; None on a
        # single node. Input that made durable definitions (a persistent session's
        # subscription queue and bindings) has its output (the SUBACK and what follows)
        # held until every in-sync follower has them, as AMQP's declare-ok (server.py).
        self.commit_gate: Any = None

    def _tls_kwargs(self, ctx: ssl.SSLContext | None) -> dict[str, Any]:
        if ctx is None:
            return {}
        return {"ssl": ctx, "ssl_handshake_timeout": self.handshake_timeout}

    async def start_tcp(self, host: Any, port: int, ctx: ssl.SSLContext | None = None) -> int:
        """MQTT over TCP; with `ctx`, MQTT over TLS."""
        loop = asyncio.get_running_loop()
        tls = ctx is not None
        server = await loop.create_server(lambda: MQTTProtocol(self, tls), host=host,
                                          port=port, reuse_address=True, backlog=1024,
                                          **self._tls_kwargs(ctx))
        self.servers.append(server)
        bound = server.sockets[0].getsockname()[1]
        if tls:
            self.tls_port = bound
        else:
            self.port = bound
        return bound

    async def start_websocket(self, host: Any, port: int, path: str = WS_PATH,
                              ctx: ssl.SSLContext | None = None) -> int:
        """MQTT over WebSocket; with `ctx`, over secure WebSocket (wss://)."""
        from websockets.asyncio.server import serve
        from websockets.http11 import Response

        def check_path(connection: Any, request: Any) -> Response | None:
            if request.path.split("?")[0] != path:
                return connection.respond(404, f"MQTT over WebSocket is served at {path}\n")
            return None

        async def handler(ws: Any) -> None:
            if ws.subprotocol != WS_SUBPROTOCOL:
                await ws.close(1002, "subprotocol mqtt required")
                return
            await WebSocketConnection(self, ws, tls).run()

        # One WebSocket message carries at most one packet's worth: a larger one is refused
        # by the library (close 1009) before it is buffered whole.
        max_size = self.registry.settings.max_packet_size + 8
        tls = ctx is not None
        server = await serve(handler, host, port, subprotocols=[WS_SUBPROTOCOL],
                             process_request=check_path, max_size=max_size, compression=None,
                             logger=_WS_LOG, **self._tls_kwargs(ctx))
        self.servers.append(server)
        bound = list(server.sockets)[0].getsockname()[1]
        if tls:
            self.wss_port = bound
        else:
            self.ws_port = bound
        return bound

    def tick(self, now: float) -> None:
        self.registry.tick(now)
        for conn in list(self.connections):
            conn.tick(now)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn.shutdown()
        for server in self.servers:
            await server.wait_closed()
