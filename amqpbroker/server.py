"""The asyncio shell: listeners, sockets, timers, group commit, graceful shutdown.

This is the only module (with embed.py and cli.py) that knows about asyncio. It is boring on
purpose, as uvicorn's is: data_received -> ClientConnection.feed -> transport.write. Output
produced outside a feed (deliveries caused by another connection's publish, confirms after
an fsync) is flushed once per loop iteration via call_soon.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import time
from typing import Any

import structlog

from amqpbroker import errors, tls
from amqpbroker.core import BrokerCore
from amqpbroker.limits import AddressRateLimiter
from amqpbroker.protocol import tables
from amqpbroker.session.connection import ClientConnection

log = structlog.get_logger("amqpbroker")
TICK_SECONDS = 1.0
TICK_SLICE = 1000  # connections ticked per loop turn (Server._tick_connections)
LINGER_SECONDS = 2.0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class AMQPProtocol(asyncio.Protocol):
    def __init__(self, server: "Server", tls_context: ssl.SSLContext | None = None) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.conn: ClientConnection | None = None
        # amqps: TLS runs over memory buffers here, so a refused handshake is logged
        # with its peer and reason (asyncio's own TLS is silent about them).
        self.tls = tls.TLSSession(tls_context) if tls_context is not None else None
        self._flush_scheduled = False
        self._lingering = False
        # Cluster leader: output is held until the in-sync replicas have the definitions
        # this connection made (declare-ok after them, see data_received); 0 = not held.
        self._held_until = 0
        # Reading stops while the queues ask for it (flow) or while the peer does not read
        # what we write (write_paused): a client that never reads cannot make us buffer
        # replies (basic.return, acks, deliveries) without bound. RabbitMQ does the same.
        self._flow_paused = False
        self._write_paused = False
        # A large read was not all handled this turn (ClientConnection._feed_turn): reading
        # waits while the rest is handled on the following turns.
        self._input_paused = False
        self._loop = server.loop

    # -- asyncio callbacks ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peername = transport.get_extra_info("peername") or ("?", 0)
        host = str(peername[0])
        try:
            loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        high = self.server.core.settings.connection_write_high_water
        transport.set_write_buffer_limits(high=high)  # type: ignore[attr-defined]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = ClientConnection(self.server.core, f"{host}:{peername[1]}", time.monotonic(),
                                loopback=loopback)
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):  # for the management API's connection names
            conn.local = f"{local[0]}:{local[1]}"  # type: ignore[attr-defined]
        conn.connected_at = time.time()  # type: ignore[attr-defined]
        conn.on_output = self._schedule_flush
        conn.on_flow = self._set_reading
        self.conn = conn
        self.server.protocols.add(self)
        counters = self.server.core.security
        limit = self.server.core.settings.max_connections
        if limit and len(self.server.protocols) > limit:
            counters.connections_refused_max += 1
            log.warning("connection.refused", peer=conn.peer, reason="max_connections",
                        limit=limit)
            self._refuse(transport)
        elif not self.server.rate_limiter.allow(host, conn.started_at):
            counters.connections_refused_rate += 1
            log.warning("connection.refused", peer=conn.peer,
                        reason="connection_rate_per_address",
                        rate=self.server.core.settings.connection_rate_per_address)
            self._refuse(transport)

    def _refuse(self, transport: asyncio.BaseTransport) -> None:
        assert self.conn is not None
        self.conn.connection_lost("refused")
        transport.close()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        assert conn is not None
        conn.recv_oct += len(data)  # statistics for the management API
        conn.recv_cnt += 1
        if self.tls is not None:
            data = self._decrypt(data)
            if not data:
                return
        self._feed(conn, data)

    def _feed(self, conn: ClientConnection, data: bytes) -> None:
        gate = self.server.commit_gate
        mark = gate.definition_seq if gate is not None else 0
        try:
            conn.feed(data, time.monotonic())
        except Exception:  # a bug must cost one connection, never the broker
            log.exception("connection.internal_error", peer=conn.peer)
            conn.fail(errors.InternalError("internal error"))
        if conn.input_waiting and not self._input_paused:
            self._input_paused = True
            self._apply_reading()
            self._loop.call_soon(self._continue_input)
        if gate is not None and gate.definition_seq != mark:
            # This input made durable definitions (declare, bind, delete ...) on a cluster
            # leader: their replies, and everything after them, leave only once every
            # in-sync follower has them, as a publisher confirm waits for its message
            # (docs/clustering.md): a failover right after declare-ok keeps the queue.
            gate.hold_output(self)
        self.flush()
        self.server.maybe_sync()

    def _continue_input(self) -> None:
        """The next turn of a large read (after every other ready connection had its turn)."""
        conn = self.conn
        self._input_paused = False
        if conn is None or conn.closed or self.transport is None:
            return
        if conn.input_waiting:
            self._feed(conn, b"")
        if not self._input_paused:
            self._apply_reading()

    def _decrypt(self, data: bytes) -> bytes:
        session, conn = self.tls, self.conn
        assert session is not None and conn is not None
        established = session.established
        try:
            plain = session.receive(data)
        except ssl.SSLError as exc:
            if not established:
                self.server.core.security.tls_handshake_failures += 1
            log.warning("connection.tls_handshake_failed" if not established
                        else "connection.tls_error", peer=conn.peer,
                        reason=getattr(exc, "verify_message", None) or exc.reason or str(exc))
            self._write_tls()  # the alert tells the client why
            conn.connection_lost("TLS error")
            if self.transport is not None:
                self.transport.close()
            return b""
        if not established and session.established:
            conn.tls = True
            conn.peer_cert = session.peer_certificate()
            log.debug("connection.tls_established", peer=conn.peer, version=session.version,
                      cipher=session.cipher, client_certificate=conn.peer_cert is not None)
        self._write_tls()
        return plain

    def _write_tls(self) -> None:
        out = self.tls.data_to_send() if self.tls is not None else b""
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.protocols.discard(self)
        conn = self.conn
        if conn is not None and conn.input_waiting and not conn.closed:
            # What the peer sent before it went away is handled, as if read in one go.
            conn.input_turn = float("inf")
            self._feed(conn, b"")
        if self.conn is not None:
            self.conn.connection_lost("connection lost" if exc is None else str(exc))
        self.server.maybe_sync()

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.paused = True
        self._write_paused = True
        self._apply_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._apply_reading()
        if self.conn is not None:
            self.conn.writable()
            self.flush()

    def _set_reading(self, paused: bool) -> None:
        self._flow_paused = paused
        self._apply_reading()

    def _apply_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._flow_paused or self._write_paused or self._input_paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # -- output -----------------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._held_until:
            return  # released by the commit gate (hold_output)
        conn, transport = self.conn, self.transport
        if conn is None or transport is None or transport.is_closing():
            return
        if conn.out_views and self.tls is None:
            # A large body's frames are written from views of it (fastcodec.ContentParts).
            size = conn.out_bytes
            transport.writelines(conn.chunks_to_send())
            conn.send_oct += size
            conn.send_cnt += 1
            conn.sent(time.monotonic())
        elif data := conn.data_to_send():
            if self.tls is not None:
                self.tls.send(data)
                data = self.tls.data_to_send()
            transport.write(data)
            conn.send_oct += len(data)
            conn.send_cnt += 1
            conn.sent(time.monotonic())
        if conn.closed:
            if conn.linger:
                self._linger(transport)
            else:
                transport.close()
        elif conn.starved and not conn.paused:
            # Consumers were skipped while our output buffer was full; it is empty now.
            # Refill on the next loop iteration, so other connections get their turn.
            conn.writable()
            if conn.out:
                self._schedule_flush()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Half-close after Close-Ok: the peer reads it, then closes; bounded by a timer."""
        if self._lingering:
            return
        self._lingering = True
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(LINGER_SECONDS, transport.close)

    def tick(self, now: float) -> None:
        conn = self.conn
        if conn is not None:
            conn.tick(now)
            if conn.out or conn.closed:  # a heartbeat, or a timeout closed it
                self.flush()


class Server:
    def __init__(self, core: BrokerCore) -> None:
        self.core = core
        self.loop = asyncio.get_running_loop()
        self.protocols: set[AMQPProtocol] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.port = 0
        self.mqtt: Any = None  # mqtt_listener.MQTTListeners when an MQTT listener is on
        self.tls_port = 0
        self.tls_context: ssl.SSLContext | None = None  # the amqps listener's
        s = core.settings
        # Every TLS listener's context (amqps, HTTPS, MQTT over TLS and WSS), one reload.
        self.tls_contexts = tls.ListenerContexts(s.tls) if s.tls is not None else None
        self.rate_limiter = AddressRateLimiter(s.connection_rate_per_address,
                                               s.connection_rate_burst)
        tables.MAX_DEPTH = s.max_table_depth
        self._ticker: asyncio.TimerHandle | None = None
        self._sync_task: asyncio.Future[Any] | None = None
        # Cluster leader only (cluster/leader.py): confirms also wait for the in-sync
        # replicas' acks; None on a single node, whose group commit is unchanged.
        self.commit_gate: Any = None
        core.scheduler.attach(self.loop)  # model timers (TTL, x-expires, consumer timeout)
        core.kick_sync = self.maybe_sync  # timers that write to the store (delayed messages)

    async def start(self, host: str | list[str] | None, port: int) -> None:
        server = await self.loop.create_server(
            lambda: AMQPProtocol(self), host=host, port=port, reuse_address=True, backlog=1024)
        self.servers.append(server)
        self.port = server.sockets[0].getsockname()[1]
        self._start_ticker()

    async def start_tls(self, host: str | list[str] | None, port: int,
                        options: tls.TLSOptions) -> None:
        """The amqps listener (https://www.rabbitmq.com/docs/ssl), next to the plain one."""
        if self.tls_contexts is None or self.tls_contexts.options != options:
            self.tls_contexts = tls.ListenerContexts(options)
        ctx = self.tls_context = self.tls_contexts.context("amqps")
        server = await self.loop.create_server(
            lambda: AMQPProtocol(self, ctx), host=host, port=port, reuse_address=True,
            backlog=1024)
        self.servers.append(server)
        self.tls_port = server.sockets[0].getsockname()[1]
        self._start_ticker()

    def reload_certificates(self, options: tls.TLSOptions | None = None) -> list[str]:
        """Load the certificate, key (and CA) files again into every TLS listener (amqps,
        HTTPS, MQTT over TLS, WSS): new TLS connections use them, established ones are
        untouched. Raises tls.TLSConfigError (nothing changed) if a file is bad. Called on
        SIGHUP and by `amqpbroker ctl reload_certificates`. Returns the listeners."""
        contexts = self.tls_contexts
        if contexts is None or not contexts.listeners:
            raise tls.TLSConfigError("no TLS listener is running")
        listeners = contexts.reload(options)
        log.info("tls.certificates_reloaded", certfile=contexts.options.certfile,
                 keyfile=contexts.options.keyfile or contexts.options.certfile,
                 listeners=listeners)
        return listeners

    def _start_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = self.loop.call_later(TICK_SECONDS, self._tick)

    async def start_mqtt(self, host: str | list[str] | None) -> None:
        """MQTT and Web-MQTT listeners (issue 20), when their ports are set."""
        s = self.core.settings
        ports = (s.mqtt_port, s.mqtt_ws_port, s.mqtt_tls_port, s.mqtt_wss_port)
        if all(port is None for port in ports):
            return
        if (s.mqtt_tls_port is not None or s.mqtt_wss_port is not None) and (
                self.tls_contexts is None):
            raise tls.TLSConfigError("MQTT over TLS needs the TLS settings (--tls-cert or "
                                     "`tls:`)")
        from amqpbroker.mqtt.core_port import CoreAdapter
        from amqpbroker.mqtt.registry import MQTTRegistry
        from amqpbroker.mqtt_listener import MQTTListeners

        self.mqtt = MQTTListeners(MQTTRegistry(CoreAdapter(self.core), s.mqtt), self.maybe_sync,
                                  self._mqtt_cert_login, s.handshake_timeout, s.input_turn)
        self.mqtt.commit_gate = self.commit_gate  # cluster leader: SUBACKs after the ISR
        if s.mqtt_port is not None:
            await self.mqtt.start_tcp(host, s.mqtt_port)
        if s.mqtt_ws_port is not None:
            await self.mqtt.start_websocket(host, s.mqtt_ws_port, s.mqtt_ws_path)
        if s.mqtt_tls_port is not None:  # RabbitMQ's mqtt.listeners.ssl (8883)
            assert self.tls_contexts is not None
            await self.mqtt.start_tcp(host, s.mqtt_tls_port,
                                      self.tls_contexts.context("mqtt/ssl"))
        if s.mqtt_wss_port is not None:  # RabbitMQ's web_mqtt.ssl.port (15676)
            assert self.tls_contexts is not None
            await self.mqtt.start_websocket(host, s.mqtt_wss_port, s.mqtt_ws_path,
                                            self.tls_contexts.context("https/web-mqtt"))
        self._start_ticker()

    def _mqtt_cert_login(self, cert: dict[str, Any] | None) -> str | None:
        """RabbitMQ's `mqtt.ssl_cert_login`: the user a verified client certificate names
        (per `ssl_cert_login_from`), or None when the option is off."""
        s = self.core.settings
        if not s.mqtt.ssl_cert_login:
            return None
        return tls.cert_login_name(cert, s.ssl_cert_login_from, s.ssl_cert_login_san_type,
                                   s.ssl_cert_login_san_index)

    @property
    def mqtt_port(self) -> int | None:
        return self.mqtt.port or None if self.mqtt is not None else None

    @property
    def mqtt_ws_port(self) -> int | None:
        return self.mqtt.ws_port or None if self.mqtt is not None else None

    @property
    def mqtt_tls_port(self) -> int | None:
        return self.mqtt.tls_port or None if self.mqtt is not None else None

    @property
    def mqtt_wss_port(self) -> int | None:
        return self.mqtt.wss_port or None if self.mqtt is not None else None

    @property
    def addresses(self) -> list[str]:
        servers = self.servers + (self.mqtt.servers if self.mqtt is not None else [])
        return [f"{s.getsockname()[0]}:{s.getsockname()[1]}"
                for srv in servers for s in srv.sockets]

    def _tick(self) -> None:
        now = time.monotonic()
        self._tick_connections(list(self.protocols), 0, now)
        if self.mqtt is not None:
            self.mqtt.tick(now)
        rss = _rss_bytes()
        if rss:
            limit = self.core.memory_limit()
            if rss > limit:
                self.core.set_memory_alarm(True, rss)
            elif rss < limit * 0.9:
                self.core.set_memory_alarm(False, rss)
        data_dir = self.core.settings.data_dir
        if data_dir:
            try:
                st = os.statvfs(data_dir)
                free = st.f_bavail * st.f_frsize
                self.core.set_alarm("disk", free < self.core.settings.disk_free_limit,
                                    free=free, limit=self.core.settings.disk_free_limit)
            except OSError:
                pass
        self._ticker = self.loop.call_later(TICK_SECONDS, self._tick)

    def _tick_connections(self, protos: list[AMQPProtocol], start: int, now: float) -> None:
        """Heartbeats and timeouts, TICK_SLICE connections per loop turn: with 10,000
        connections one pass took ~20 ms, a stall every second for every other client."""
        for proto in protos[start:start + TICK_SLICE]:
            proto.tick(now)  # flushes what it has to send
        if start + TICK_SLICE < len(protos):
            self.loop.call_soon(self._tick_connections, protos, start + TICK_SLICE, now)

    # -- group commit ---------------------------------------------------------------------------
    def maybe_sync(self) -> None:
        """Start an fsync if publishes wait for one and none is running (group commit)."""
        persister = self.core.persister
        if not persister.dirty or persister.running or self.core.store is None:
            return
        generation = persister.begin()
        gate = self.commit_gate
        position = gate.position() if gate is not None else 0
        # The message store and every stream log with unsynced appends, in one job.
        self._sync_task = self.loop.run_in_executor(None, self.core.sync_job())
        self._sync_task.add_done_callback(lambda f: self._synced(f, generation, position))

    def _synced(self, future: "asyncio.Future[Any]", generation: int, position: int) -> None:
        exc = future.exception()
        if exc is not None:
            log.error("store.sync_failed", error=str(exc))
            self.core.persister.fail(generation, exc)
        elif self.commit_gate is not None:  # and the replicas' acks up to `position`
            self.commit_gate.wait(position, lambda failed: self._replicated(generation))
            return
        else:
            self.core.persister.complete(generation)
        self.maybe_sync()

    def _replicated(self, generation: int) -> None:
        self.core.persister.complete(generation)
        self.maybe_sync()

    # -- shutdown ---------------------------------------------------------------------------------
    async def stop(self, timeout: float | None = None) -> None:
        """Stop listening, close every connection with 320, flush, wait, then abort."""
        timeout = self.core.settings.shutdown_timeout if timeout is None else timeout
        for srv in self.servers:
            srv.close()
        if self.mqtt is not None:
            await self.mqtt.stop()
        for proto in list(self.protocols):
            if proto.conn is not None:
                proto.conn.close(320, "CONNECTION_FORCED - broker shutdown")
                proto.flush()
        deadline = time.monotonic() + timeout
        while self.protocols and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            for proto in list(self.protocols):
                if proto.conn is not None and proto.conn.closed and proto.transport:
                    proto.transport.close()
        for proto in list(self.protocols):
            if proto.transport is not None:
                proto.transport.abort()
        for srv in self.servers:
            await srv.wait_closed()
        if self._ticker is not None:
            self._ticker.cancel()
        self.core.scheduler.detach()
        if self._sync_task is not None:
            try:
                await self._sync_task
            except Exception:
                pass
        await asyncio.sleep(0)  # let connection_lost callbacks of aborted transports run
