"""One client connection, sans-IO: bytes and a clock in, bytes out.

    conn = ClientConnection(core, peer="127.0.0.1:50000", now=0.0)
    conn.feed(data, now)         # everything the socket delivered
    conn.data_to_send()          # what to write back (replies, deliveries, heartbeats)
    conn.tick(now)               # timers: heartbeats out, silent peers dropped

State machine (spec 2.2.4): header -> start-ok -> tune-ok -> open -> running -> closing ->
closed. A frame that is not allowed in the current state is a connection error, raised as
an `AMQPError` and turned into Connection.Close in exactly one place, `fail()`.
Channel-level work is delegated to `session.channel.Channel`. Once open, the connection
holds a broker core `Session` (`broker/session.py`: permissions, routing, flow control,
alarms) and implements its `SessionEvents`: reading paused/resumed, blocked by an alarm
(Connection.Blocked), closed by the broker.
"""

from __future__ import annotations

import platform
import struct
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import structlog
from pamqp import commands, decode
from pamqp.base import Frame as Method

from amqpbroker import __version__, errors, tls
from amqpbroker.broker import limits
from amqpbroker.broker.core import BrokerCore
from amqpbroker.broker.session import Session
from amqpbroker.protocol import fastcodec
from amqpbroker.protocol.fastcodec import ContentParts
from amqpbroker.protocol.frames import (
    FRAME_ACK,
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_PUBLISH,
    PROTOCOL_HEADER,
    FrameReader,
)
from amqpbroker.protocol.methods import decode_method
from amqpbroker.session import auth
from amqpbroker.session.channel import Channel

log = structlog.get_logger("amqpbroker")

# https://www.rabbitmq.com/docs/connections#capabilities
CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}
FRAME_MIN_SIZE = 4096  # spec 4.2.3: frames up to this size are always allowed
CLOSE_OK_TIMEOUT = 3.0
# Input fairness (_feed_turn): reads up to INPUT_CHUNK bytes that hold at most
# FAST_READ_FRAMES frames are handled in one pass without reading the clock (the common
# case: every read of the message path); otherwise the clock is read once per
# FRAMES_PER_CHECK frames (a declare or delete costs 5-20 us: 32 of them stay well
# within a turn, and one clock reading is ~50 ns).
INPUT_CHUNK = 65536
FAST_READ_FRAMES = 256
FRAMES_PER_CHECK = 32
# A run of methods without content (declares, deletes, binds: 10-30 us each, every one
# with a reply) ends its turn after this share of `input_turn`; a run of publishes keeps
# the whole turn, because shorter turns cost the message path pause/resume work (a 1 ms
# turn for everything cost S2 +6 %, S4 +9 %, S5 +10 % CPU per delivery).
METHOD_TURN_SHARE = 0.25

_HEADER, _START_OK, _TUNE_OK, _OPEN, _RUNNING, _CLOSING, _CLOSED, _REFUSING = range(8)


class ClientConnection:
    def __init__(self, core: BrokerCore, peer: str = "", now: float = 0.0,
                 loopback: bool = True) -> None:
        s = core.settings
        self.core = core
        self.peer = peer
        self.loopback = loopback
        self.state = _HEADER
        # Spec 4.2.3 / RabbitMQ: until Tune-Ok only frames up to frame-min-size are read.
        self.reader = FrameReader(FRAME_MIN_SIZE, fuse_publishes=True)
        self.started_at = now  # for the handshake timeout
        # Set by the transport after a TLS handshake: the verified client certificate (as
        # ssl.getpeercert() gives it), which SASL EXTERNAL logs in with.
        self.tls = False
        self.peer_cert: dict[str, Any] | None = None
        self.auth_mechanism = ""
        self._refusal: errors.AMQPError | None = None  # a refused login, answered later
        self._refuse_at = 0.0
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.out_views = False  # `out` holds views of a large body (ContentParts)
        self.channels: dict[int, Channel] = {}
        self.channel_max = s.channel_max
        self.frame_max = s.frame_max
        self.heartbeat = 0
        self.user: Any = None
        self.vhost: Any = None
        self.session: Session | None = None  # the broker core's session, once open
        self.client_properties: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self.last_recv = now
        self.last_send = now
        self.closing_since = 0.0
        self.close_reason = ""
        self.paused = False  # the transport's write buffer is over its high-water mark
        self.write_high_water = s.connection_write_high_water
        self.starved = False  # some consumer was skipped because we could not write
        # Set by the transport: called when output appears outside feed() (a delivery
        # caused by another connection's publish), so that it gets flushed.
        self.on_output: Callable[[], None] = _nothing
        self._in_feed = False
        # Consumer-cancel notifications held back until the reply to the method being
        # handled is out (see `replies_first`); None when nothing is being held.
        self.held_notices: list[tuple[int, Method]] | None = None
        self.internal_errors = 0
        self.linger = False  # after our Close-Ok: keep the socket open until the peer closes
        # The transport's hook to pause/resume reading (flow control and alarms, decided
        # by the core's session: SessionEvents.reading).
        self.on_flow: Callable[[bool], None] = _nothing_bool
        # Octets and socket reads/writes, counted by the transport (management API).
        self.recv_oct = self.send_oct = self.recv_cnt = self.send_cnt = 0
        # Input fairness (_feed_turn): the time one feed may take before the rest of a
        # large read waits for the next loop turn, on the core's clock.
        self.input_turn = s.input_turn
        self.clock = core.scheduler.now
        # Input held back by the turn budget (frames already cut, then bytes not yet cut):
        # the transport calls `feed(b"", now)` on later turns while `input_waiting`,
        # with reading paused meanwhile.
        self.held_frames: list[tuple[int, int, bytes]] = []
        self.held_input: bytes | memoryview = b""

    # -- IO-facing API ----------------------------------------------------------------------
    def feed(self, data: bytes | memoryview, now: float) -> None:
        if self.state == _CLOSED or self.state == _REFUSING:
            return  # discarded: see _on_close, _refuse_login
        self.last_recv = now
        self._in_feed = True
        try:
            if self.held_frames or self.held_input:  # held back by the turn budget: first
                frames, rest = self.held_frames, self.held_input
                self.held_frames, self.held_input = [], b""
                if data:
                    rest = bytes(rest) + data if rest else data
                self._feed_turn(frames, rest)
                return
            if self.state == _HEADER:
                data = self._protocol_header(data)
                if not data:
                    return
            if len(data) > INPUT_CHUNK:
                self._feed_turn([], data)
                return
            frames = self.reader.feed(data)
            if len(frames) > FAST_READ_FRAMES:
                self._feed_turn(frames, b"")
                return
            self._frames(frames)
        except errors.AMQPError as exc:
            self.fail(exc)
        except Exception:  # a bug must cost this connection, never the broker
            self.internal_errors += 1
            log.exception("connection.internal_error", peer=self.peer)
            self.fail(errors.InternalError("internal error"))
        finally:
            self._in_feed = False
            self.flush_confirms()
            if self.session is not None:
                self.session.check_alarm()

    def _feed_turn(self, frames: list[tuple[int, int, bytes]],
                   rest: bytes | memoryview) -> None:
        """A large read (uvloop hands over up to 32 x 256 KB at once; 64 KiB of declares
        take 40 ms): its bytes are cut into frames a chunk at a time, the frames handled
        FRAMES_PER_CHECK at a time, and once this turn has taken `input_turn` seconds the
        rest is kept for the next (`input_waiting`), so that a client pipelining 100,000
        declares cannot stall every other connection for seconds. RabbitMQ gets the same
        fairness from one Erlang process per connection, preempted by the VM."""
        clock = self.clock
        start = clock()
        deadline = start + self.input_turn
        methods_deadline = start + self.input_turn * METHOD_TURN_SHARE
        view = memoryview(rest)
        size = len(view)
        pos = 0
        while True:
            count = len(frames)
            done = 0
            while done < count:
                if not self._frames(frames[done:done + FRAMES_PER_CHECK]):
                    return
                done += FRAMES_PER_CHECK
                if not (done < count or pos < size):
                    continue
                now = clock()
                # Two method frames in a row end this batch: no content is in flight (a
                # publish is method, header, body), so these are the costly methods.
                if now >= deadline or (now >= methods_deadline and done >= 2 and done <= count
                                       and frames[done - 1][0] == 1 and frames[done - 2][0] == 1):
                    self.held_frames = frames[done:]
                    self.held_input = view[pos:] if pos < size else b""  # a view: no copy
                    return
            if pos >= size:
                return
            frames = self.reader.feed(view[pos:pos + INPUT_CHUNK])
            pos += INPUT_CHUNK

    def _frames(self, frames: list[tuple[int, int, Any]]) -> bool:
        """Handle `frames` in order; False if the connection closed on the way (the rest
        is discarded). A publish with its content (FRAME_PUBLISH) and acks in a row
        (FRAME_ACK) on an open channel, the message path, are dispatched here; every other
        frame through `_frame`."""
        channels = self.channels
        for ftype, channel, payload in frames:
            state = self.state
            if ftype == FRAME_PUBLISH and state == _RUNNING:
                ch = channels.get(channel)
                if ch is not None:
                    self.session.published = True  # type: ignore[union-attr]
                    ch.publish_content(*payload)
                    continue
            elif ftype == FRAME_ACK and state == _RUNNING:
                ch = channels.get(channel)
                if ch is not None:
                    ch.ack_frames(payload)
                    continue
            if state == _CLOSED:
                return False
            self._frame(ftype, channel, payload)
        return True

    @property
    def input_waiting(self) -> bool:
        """Input was held back by the turn budget: `feed(b"", now)` on a later turn."""
        return bool(self.held_frames or self.held_input)

    def data_to_send(self) -> bytes:
        if not self.out:
            return b""
        data = b"".join(self.out)
        self.out.clear()
        self.out_bytes = 0
        self.out_views = False
        return data

    def chunks_to_send(self) -> list[bytes | memoryview]:
        """The output as buffers, unjoined: for a transport's `writelines` when it holds a
        large body's views (`out_views`), which a join would copy."""
        out = self.out
        self.out = []
        self.out_bytes = 0
        self.out_views = False
        return out

    def tick(self, now: float) -> None:
        """Heartbeats (spec 4.2.7): send after half an idle interval, drop after two."""
        if self.state == _CLOSING and now - self.closing_since > CLOSE_OK_TIMEOUT:
            self._closed("close-ok timeout")
            return
        if self.state == _REFUSING:
            if now >= self._refuse_at:
                self._refuse_now()
            return
        if self.state < _RUNNING and now - self.started_at > self.core.settings.handshake_timeout:
            # RabbitMQ's handshake_timeout: the socket is closed, nothing is sent.
            self.core.security.handshake_timeouts += 1
            log.warning("connection.handshake_timeout", peer=self.peer,
                        timeout=self.core.settings.handshake_timeout)
            self._closed("handshake timeout")
            return
        hb = self.heartbeat
        if not hb or self.state == _CLOSED:
            return
        if now - self.last_recv > 2 * hb:
            log.warning("connection.heartbeat_timeout", peer=self.peer, timeout=hb)
            self._closed(f"missed heartbeats from client, timeout: {hb}s")
            return
        if now - self.last_send >= hb / 2 and not self.out:
            self.send(fastcodec.HEARTBEAT_FRAME)

    def sent(self, now: float) -> None:
        """The transport wrote data (resets the heartbeat send timer)."""
        self.last_send = now

    @property
    def closed(self) -> bool:
        return self.state == _CLOSED

    @property
    def write_blocked(self) -> bool:
        return self.paused or self.out_bytes >= self.write_high_water

    def writable(self) -> None:
        """The transport drained: resume deliveries to consumers that were skipped."""
        self.paused = False
        if self.starved and not self.write_blocked:
            self.starved = False
            for ch in list(self.channels.values()):
                ch.resume_consumers()

    # -- SessionEvents (from the broker core) ----------------------------------------------
    def reading(self, paused: bool) -> None:
        self.on_flow(paused)

    def blocked(self, on: bool, reason: str) -> None:
        """A resource alarm (https://www.rabbitmq.com/docs/connection-blocked)."""
        if self.state != _RUNNING:
            return
        if self.capabilities.get("connection.blocked"):
            self.send_method(0, commands.Connection.Blocked(reason=reason) if on
                             else commands.Connection.Unblocked())
        log.warning("connection.blocked" if on else "connection.unblocked", peer=self.peer,
                    reason="memory alarm")

    def force_close(self, code: int, text: str) -> None:
        self.close(code, text)

    def connection_lost(self, reason: str = "connection lost") -> None:
        if self.state != _CLOSED:
            self._closed(reason)

    # -- output -------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        out = self.out
        if not out and not self._in_feed:
            # The first output since the last flush, outside feed() (whose caller flushes):
            # have it flushed. Output already waiting has its flush coming.
            self.on_output()
        if data.__class__ is ContentParts:  # a large body's frames, as views of it
            out += data
            self.out_bytes += data.size  # type: ignore[attr-defined]
            self.out_views = True
        else:
            out.append(data)
            self.out_bytes += len(data)

    def send_method(self, channel: int, method: Method) -> None:
        self.send(fastcodec.encode_method(channel, method))

    def notify(self, channel: int, method: Method) -> None:
        """Send a notification the server starts (Basic.Cancel of a consumer whose queue
        went away), after the reply being made if one is (`replies_first`)."""
        if self.held_notices is not None:
            self.held_notices.append((channel, method))
        else:
            self.send_method(channel, method)

    @contextmanager
    def replies_first(self) -> Iterator[None]:
        """Hold notifications back until the reply is sent: RabbitMQ's channel answers
        Queue.DeleteOk before the queue's Basic.Cancel notifications reach its consumers
        (they are messages to the channel process, handled after the method it is
        busy with), and py-amqp, waiting for DeleteOk, fails on a Cancel that comes first."""
        outer = self.held_notices
        if outer is None:
            self.held_notices = []
        try:
            yield
        finally:
            if outer is None:
                held, self.held_notices = self.held_notices or [], None
                for channel, method in held:
                    if channel in self.channels:
                        self.send_method(channel, method)

    # -- input --------------------------------------------------------------------------
    def _protocol_header(self, data: bytes) -> bytes:
        buffered = bytes(self.reader._buf) + data
        if len(buffered) < 8:
            if PROTOCOL_HEADER.startswith(buffered):
                self.reader._buf[:] = buffered
                return b""
        if buffered[:8] != PROTOCOL_HEADER:
            # Spec 4.2.2: answer with the header we support and close the socket.
            log.warning("connection.bad_protocol_header", peer=self.peer, header=buffered[:8])
            self.send(PROTOCOL_HEADER)
            self.state = _CLOSED
            return b""
        self.reader._buf.clear()
        self.state = _START_OK
        self.send_method(0, commands.Connection.Start(
            version_major=0, version_minor=9, server_properties=self._server_properties(),
            mechanisms="PLAIN AMQPLAIN EXTERNAL" if self.peer_cert else "PLAIN AMQPLAIN",
            locales="en_US"))
        return buffered[8:]

    def _frame(self, ftype: int, channel: int, payload: Any) -> None:
        if ftype == FRAME_PUBLISH:  # a publish with its content, from one read (frames.py)
            ch = self.channels.get(channel)
            if ch is not None and self.state == _RUNNING:
                self.session.published = True  # type: ignore[union-attr]
                ch.publish_content(*payload)
            else:  # its method frame alone gets the answer (or is ignored while closing)
                self._frame(FRAME_METHOD, channel, payload[0])
        elif ftype == FRAME_ACK:  # acks in a row (frames.py): each as the method frame it is
            for method in payload:
                self._frame(FRAME_METHOD, channel, method)
        elif ftype == FRAME_METHOD:
            if channel:
                if self.state != _RUNNING:
                    if self.state == _CLOSING:
                        return
                    raise errors.UnexpectedFrame("channel method before connection.open")
                ch = self.channels.get(channel)
                if ch is None:
                    self._channel_open(channel, payload)
                else:
                    ch.method_frame(payload)
            else:
                self._connection_method(decode_method(payload))
        elif ftype == FRAME_HEADER or ftype == FRAME_BODY:
            ch = self.channels.get(channel)
            if ch is None or self.state != _RUNNING:
                if self.state == _CLOSING:
                    return
                raise errors.UnexpectedFrame(
                    f"content frame on channel {channel} without a basic.publish")
            if ftype == FRAME_HEADER:
                self.session.published = True  # only a basic.publish has content
                ch.content_header(payload)
            else:
                ch.content_body(payload)
        elif ftype == FRAME_HEARTBEAT:
            if channel:
                raise errors.FrameError(f"heartbeat frame on channel {channel}")

    def _channel_open(self, channel: int, payload: bytes) -> None:
        method = decode_method(payload)
        if not isinstance(method, commands.Channel.Open):
            raise errors.ChannelErrorHard(
                f"expected 'channel.open' on channel {channel}, got '{method.name}'")
        # channel_max bounds how many channels are open at once, not their numbers
        # (rabbit_reader:create_channel): any number 1..65535 may be used.
        if self.channel_max and len(self.channels) >= self.channel_max:
            raise errors.NotAllowed(
                f"number of channels opened ({len(self.channels)}) has reached the "
                f"negotiated channel_max ({self.channel_max})")
        limits.check_channel(self.core, self.user)  # user max-channels (530)
        self.channels[channel] = Channel(self, channel)
        self.core.churn.channel_created += 1
        self.send_method(channel, commands.Channel.OpenOk())

    # -- connection class methods (channel 0) -----------------------------------------------
    def _connection_method(self, method: Method) -> None:
        handler = _CONNECTION_HANDLERS.get((self.state, type(method)))
        if handler is None:
            if self.state == _CLOSING:
                return  # spec 2.2.4: after sending Close, discard all but Close/Close-Ok
            if self.state == _RUNNING and isinstance(method, commands.Connection.Blocked):
                return
            raise errors.CommandInvalid(
                f"unexpected method {method.name} on channel 0", *_ids(method))
        handler(self, method)

    def _on_start_ok(self, m: commands.Connection.StartOk) -> None:
        self.client_properties = m.client_properties or {}
        self.capabilities = self.client_properties.get("capabilities") or {}
        self.auth_mechanism = m.mechanism
        username = ""
        try:
            if m.mechanism == "EXTERNAL":
                username = self._external_user()
                self.user = auth.external_login(self.core, username, self.loopback)
            else:
                username, password = _credentials(m.mechanism, m.response)
                self.user = self.core.authenticate(username, password, self.loopback)
        except errors.LoginRefused as exc:
            self._refuse_login(exc, username, m.mechanism)
            return
        self.core.security.auth_attempts_succeeded += 1
        self.state = _TUNE_OK
        self.send_method(0, commands.Connection.Tune(
            channel_max=self.channel_max, frame_max=self.frame_max,
            heartbeat=self.core.settings.heartbeat))

    def _external_user(self) -> str:
        s = self.core.settings
        name = tls.cert_login_name(self.peer_cert, s.ssl_cert_login_from,
                                   s.ssl_cert_login_san_type, s.ssl_cert_login_san_index)
        if name is None:
            raise errors.LoginRefused(
                "EXTERNAL login refused: no verified client certificate" if not self.peer_cert
                else f"EXTERNAL login refused: the certificate has no {s.ssl_cert_login_from}")
        return name

    def _refuse_login(self, exc: errors.LoginRefused, username: str, mechanism: str) -> None:
        """Log (never the password), count, and answer after auth_failure_delay: RabbitMQ
        makes a client with a failed login wait before the refusal, so that guessing is
        slow. Input is discarded meanwhile; tick() sends the answer."""
        self.core.security.auth_attempts_failed += 1
        log.warning("connection.login_refused", peer=self.peer, user=username,
                    mechanism=mechanism, reason=exc.text)
        self._refusal = exc
        delay = self.core.settings.auth_failure_delay
        if delay <= 0:
            self._refuse_now()
            return
        self.state = _REFUSING
        self._refuse_at = self.last_recv + delay

    def _refuse_now(self) -> None:
        exc = self._refusal
        assert exc is not None
        self.state = _START_OK
        if self.capabilities.get("authentication_failure_close"):
            self.fail(exc)  # 403 ACCESS_REFUSED in Connection.Close
        else:
            self._closed("login refused")  # spec 4.10.2 for old clients: close the socket
        if not self._in_feed:
            self.on_output()

    def _on_tune_ok(self, m: commands.Connection.TuneOk) -> None:
        if m.frame_max and (m.frame_max < FRAME_MIN_SIZE or m.frame_max > self.frame_max):
            raise errors.NotAllowed(
                f"frame_max={m.frame_max} < {FRAME_MIN_SIZE} min size"
                if m.frame_max < FRAME_MIN_SIZE else
                f"frame_max={m.frame_max} > {self.frame_max} max size")
        if m.channel_max and m.channel_max > self.channel_max:
            raise errors.NotAllowed(
                f"channel_max={m.channel_max} > {self.channel_max} max channels")
        self.frame_max = m.frame_max or self.frame_max
        self.reader.frame_max = self.frame_max
        self.channel_max = m.channel_max or self.channel_max
        self.heartbeat = m.heartbeat  # the client has already negotiated (spec 1.4.2.6)
        self.state = _OPEN

    def _on_open(self, m: commands.Connection.Open) -> None:
        self.session = self.core.open_session(self.user, m.virtual_host, self)
        self.vhost = self.session.vhost
        self.state = _RUNNING
        self.core.connections.add(self)
        self.send_method(0, commands.Connection.OpenOk())
        log.info("connection.opened", peer=self.peer, user=self.user.name,
                 vhost=self.vhost.name,
                 client=self.client_properties.get("product"))

    def _on_close(self, m: commands.Connection.Close) -> None:
        self.send_method(0, commands.Connection.CloseOk())
        # The client closes the socket once it has our Close-Ok. Frames it sent before its
        # Close may still be unread here; closing now would make the kernel answer with a
        # reset that destroys the Close-Ok in flight (amqplib then never sees it). So the
        # transport lingers, discarding input, until the client closes (as RabbitMQ does).
        self.linger = True
        self._closed(f"client closed: {m.reply_code} {m.reply_text}")

    def _on_close_ok(self, m: commands.Connection.CloseOk) -> None:
        self._closed(self.close_reason or "closed")

    def _on_update_secret(self, m: commands.Connection.UpdateSecret) -> None:
        """Re-authenticate with the new secret (https://www.rabbitmq.com/docs/
        connections#update-secret): a secret the user store refuses closes the connection
        with 530 NOT_ALLOWED, as RabbitMQ does."""
        secret = m.new_secret
        secret = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
        try:
            if self.auth_mechanism == "EXTERNAL":
                raise errors.LoginRefused("the connection logged in with a certificate")
            user = self.core.authenticate(self.user.name, secret or "", self.loopback)
        except errors.LoginRefused as exc:
            self.core.security.auth_attempts_failed += 1
            log.warning("connection.update_secret_refused", peer=self.peer,
                        user=self.user.name, reason=exc.text)
            raise errors.NotAllowed("New secret was refused by one of the backends",
                                    *_ids(m)) from None
        self.user = user
        if self.session is not None:  # permissions are checked again with the new login
            self.session.user = user
            self.session.perm_cache.clear()
        log.info("connection.secret_updated", peer=self.peer, user=user.name,
                 reason=m.reason)
        self.send_method(0, commands.Connection.UpdateSecretOk())

    # -- closing ----------------------------------------------------------------------------
    def fail(self, exc: errors.AMQPError) -> None:
        """The one place where a connection error becomes Connection.Close."""
        if self.state in (_CLOSING, _CLOSED):
            return
        log.warning("connection.error", peer=self.peer, code=exc.reply_code,
                    text=exc.reply_text, class_id=exc.class_id, method_id=exc.method_id)
        self.close(exc.reply_code, exc.reply_text, exc.class_id, exc.method_id)

    def close(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Start closing from the server side (errors, shutdown with 320)."""
        if self.state in (_CLOSING, _CLOSED):
            return
        if self.state == _HEADER:
            self._closed(text)
            return
        self.send_method(0, commands.Connection.Close(
            reply_code=code, reply_text=text[:255], class_id=class_id, method_id=method_id))
        self._release_resources()
        self.state = _CLOSING
        self.closing_since = self.last_recv
        self.close_reason = f"{code} {text}"

    def _closed(self, reason: str) -> None:
        if self.state == _CLOSED:
            return
        was_open = self.state in (_RUNNING, _CLOSING)
        self._release_resources()
        self.state = _CLOSED
        self.core.connections.discard(self)
        if was_open:
            log.info("connection.closed", peer=self.peer,
                     user=getattr(self.user, "name", None),
                     vhost=getattr(self.vhost, "name", None), reason=reason)

    def _release_resources(self) -> None:
        # Nothing is delivered any more: messages one channel gives back must not go out
        # to a sibling channel after Close / Close-Ok (spec 2.2.4).
        self.paused = True
        for ch in list(self.channels.values()):
            ch.release()
        self.channels.clear()
        if self.session is not None:
            self.session.close()

    def flush_confirms(self) -> None:
        for ch in self.channels.values():
            pub = ch.publisher
            if pub.upto > pub.sent:
                ch.flush_confirms()

    # -- helpers ------------------------------------------------------------------------------
    def _server_properties(self) -> dict[str, Any]:
        return {
            "product": "amqpbroker",
            "version": __version__,
            "platform": f"Python {platform.python_version()}",
            "copyright": "amqpbroker contributors",
            "information": "An AMQP 0-9-1 broker in Python; see the README",
            "cluster_name": "amqpbroker@" + platform.node(),
            "capabilities": dict(CAPABILITIES),
        }


_CONNECTION_HANDLERS: dict[tuple[int, type], Callable[[ClientConnection, Any], None]] = {
    (_START_OK, commands.Connection.StartOk): ClientConnection._on_start_ok,
    (_TUNE_OK, commands.Connection.TuneOk): ClientConnection._on_tune_ok,
    (_OPEN, commands.Connection.Open): ClientConnection._on_open,
    (_RUNNING, commands.Connection.Close): ClientConnection._on_close,
    (_CLOSING, commands.Connection.Close): ClientConnection._on_close,
    (_OPEN, commands.Connection.Close): ClientConnection._on_close,
    (_TUNE_OK, commands.Connection.Close): ClientConnection._on_close,
    (_CLOSING, commands.Connection.CloseOk): ClientConnection._on_close_ok,
    (_RUNNING, commands.Connection.UpdateSecret): ClientConnection._on_update_secret,
}


def _credentials(mechanism: str, response: Any) -> tuple[str, str]:
    raw = response.encode("utf-8") if isinstance(response, str) else bytes(response or b"")
    if mechanism == "PLAIN":
        # RFC 4616: [authzid] NUL authcid NUL passwd
        parts = raw.split(b"\x00")
        if len(parts) != 3:
            raise errors.LoginRefused("malformed PLAIN response")
        return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
    if mechanism == "AMQPLAIN":
        # A field table without its length prefix (RabbitMQ's AMQPLAIN).
        try:
            _, table = decode.field_table(struct.pack(">I", len(raw)) + raw)
        except Exception:
            raise errors.LoginRefused("malformed AMQPLAIN response") from None
        return str(table.get("LOGIN", "")), str(table.get("PASSWORD", ""))
    raise errors.LoginRefused(f"unsupported authentication mechanism {mechanism!r}")


def _ids(method: Method) -> tuple[int, int]:
    index = getattr(method, "index", 0)
    return index >> 16, index & 0xFFFF


def _nothing() -> None:
    pass


def _nothing_bool(_: bool) -> None:
    pass
