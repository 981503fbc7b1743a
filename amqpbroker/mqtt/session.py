"""One MQTT client connection, sans-IO: bytes and a clock in, bytes out.

    s = MQTTSession(registry, peer="127.0.0.1:50000", now=0.0)
    s.feed(data, now)       # everything the socket delivered
    s.data_to_send()        # CONNACK, PUBACKs, deliveries, PINGRESP, DISCONNECT
    s.tick(now)             # keepalive (1.5 x, 3.1.2.10), will delay
    s.closed                # the transport closes the socket when True

States: waiting for CONNECT -> connected -> closed. A packet not allowed in a state is a
protocol error. Every `MQTTError` becomes its answer in exactly one place, `fail()`.
Publishes, acks and consumers are operations on the broker core through `port.VhostPort`;
subscriptions and deliveries live in `subscriptions.Subscriptions`.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

import structlog

from amqpbroker.mqtt import convert, errors as e, topics
from amqpbroker.mqtt import packets as p
from amqpbroker.mqtt.codec import decode_packet, encode_packet
from amqpbroker.mqtt.port import Refused, VhostPort
from amqpbroker.mqtt.reader import PacketReader
from amqpbroker.mqtt.registry import MQTTRegistry, Retained
from amqpbroker.mqtt.subscriptions import Subscriptions

# RabbitMQ's protocol label per MQTT protocol level (rabbit_mqtt: its global counters).
METRICS_LABELS = {3: "mqtt310", 4: "mqtt311", 5: "mqtt50"}

log = structlog.get_logger("amqpbroker")

_WAIT_CONNECT, _CONNECTED, _CLOSED = range(3)
SERVER_RECEIVE_MAXIMUM = 65535
WRITE_HIGH_WATER = 1024 * 1024  # output buffered before deliveries to us pause


# Packets handled between two readings of the clock (a publish costs tens of
# microseconds: 32 of them stay within a turn), and the default length of one turn
# (Settings.input_turn: `limits.input_turn`).
PACKETS_PER_CHECK = 32
INPUT_TURN = 0.002


class MQTTSession:
    def __init__(self, registry: MQTTRegistry, peer: str = "", now: float = 0.0,
                 loopback: bool = True) -> None:
        self.registry = registry
        self.settings = registry.settings
        self.peer = peer
        self.loopback = loopback
        self.state = _WAIT_CONNECT
        self.version = p.MQTT311
        self.protocol_level = 4  # as CONNECT gave it (3: MQTT 3.1)
        self.reader = PacketReader(self.settings.max_packet_size_unauthenticated)
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.on_output: Callable[[], None] = _nothing
        self._in_feed = False
        self.last_recv = now
        self.now = now
        self.keepalive = 0
        self.client_id = ""
        self.vhost: VhostPort | None = None
        self.user: Any = None
        # Over TLS with mqtt.ssl_cert_login: the user the verified client certificate names
        self.cert_login: str | None = None
        self.will: p.Will | None = None
        self.session_expiry = 0
        self.clean_start = True
        self.client_max_packet = 0  # 0 = no limit announced
        self.aliases_in: dict[int, str] = {}
        # Incoming QoS 1/2 publishes waiting for the core's confirm, in arrival order:
        # acks go out in that order (4.6). Entries: [packet, safe?].
        self.unconfirmed: deque[list[Any]] = deque()
        self.awaiting_rel: set[int] = set()
        self.subs = Subscriptions(self)
        self.close_reason = ""
        self.paused = False  # the transport's write buffer is full
        # Input fairness, as the AMQP connection's (session/connection.py _feed_turn): after
        # `input_turn` seconds of one feed, the packets not yet handled stay in the reader and
        # `input_waiting` is set; the transport feeds b"" on later loop turns.
        self.input_turn = INPUT_TURN
        self.clock: Callable[[], float] = time.monotonic
        self.input_waiting = False
        self.on_flow: Callable[[bool], None] = _nothing_bool

    def _attach(self, vhost: Any) -> None:
        """The core's events for this connection: flow control pauses reading, the broker
        may close us, and deliveries wait while our output is over its high-water mark."""
        vhost.set_client_id(self.client_id)
        vhost.set_protocol(METRICS_LABELS.get(self.protocol_level, "mqtt311"))
        vhost.on_reading = lambda paused: self.on_flow(paused)
        vhost.on_force_close = self._force_close
        vhost.write_blocked = lambda: self.write_blocked

    @property
    def write_blocked(self) -> bool:
        return self.paused or self.out_bytes >= WRITE_HIGH_WATER

    def writable(self) -> None:
        """The transport drained: consumers skipped meanwhile get their turn."""
        self.paused = False
        if self.vhost is not None and self.state == _CONNECTED:
            self.vhost.resume()

    def _force_close(self, text: str) -> None:
        if self.version == p.MQTT5:
            self.send_packet(p.Disconnect(e.ADMINISTRATIVE_ACTION, {"reason_string": text[:200]}))
        self._closed(text, publish_will=True)

    # -- IO-facing API ------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> None:
        if self.state == _CLOSED:
            return
        self.last_recv = self.now = now
        self._in_feed = True
        try:
            self.input_waiting = False
            count = 0
            deadline = 0.0
            for first, body in self.reader.feed(data):
                packet = decode_packet(first, body, self.version)
                self._dispatch(packet)
                if self.state == _CLOSED:
                    break
                count += 1
                if count % PACKETS_PER_CHECK == 0:
                    # The clock is read only when a read holds many packets (a pipelining
                    # publisher); leaving the loop keeps the rest in the reader's buffer.
                    if not deadline:
                        deadline = self.clock() + self.input_turn
                    elif self.clock() >= deadline:
                        self.input_waiting = True
                        break
        except e.MQTTError as exc:
            self.fail(exc)
        except Exception:  # a bug costs this connection, never the broker
            log.exception("mqtt.internal_error", peer=self.peer, client_id=self.client_id)
            self.fail(e.MQTTError("internal error", e.IMPLEMENTATION_SPECIFIC_ERROR))
        finally:
            self._in_feed = False
            if self.state == _CONNECTED:
                self.vhost.after_read()  # type: ignore[union-attr]

    def data_to_send(self) -> bytes:
        if not self.out:
            return b""
        data = b"".join(self.out)
        self.out.clear()
        self.out_bytes = 0
        return data

    def tick(self, now: float) -> None:
        self.now = now
        if self.state == _CONNECTED and self.keepalive and now - self.last_recv > 1.5 * self.keepalive:
            log.warning("mqtt.keepalive_timeout", peer=self.peer, client_id=self.client_id,
                        keepalive=self.keepalive)
            self.send_packet(p.Disconnect(e.KEEP_ALIVE_TIMEOUT))
            self._closed("keepalive timeout", publish_will=True)
        elif self.state == _WAIT_CONNECT and now - self.last_recv > 10:
            self._closed("no CONNECT within 10 seconds", publish_will=False)

    @property
    def closed(self) -> bool:
        return self.state == _CLOSED

    def connection_lost(self, reason: str = "connection lost") -> None:
        if self.state != _CLOSED:
            self._closed(reason, publish_will=True)

    # -- output ---------------------------------------------------------------------------------
    def send_packet(self, packet: p.Packet) -> None:
        self.send(encode_packet(packet, self.version))

    def send(self, data: bytes) -> None:
        self.out.append(data)
        self.out_bytes += len(data)
        if not self._in_feed:
            self.on_output()

    # -- dispatch -------------------------------------------------------------------------------
    def _dispatch(self, packet: p.Packet) -> None:
        if self.state == _WAIT_CONNECT:
            if not isinstance(packet, p.Connect):
                raise e.ProtocolError(f"{type(packet).__name__} before CONNECT")  # 3.1.0-1
            self._on_connect(packet)
            return
        handler = _HANDLERS.get(type(packet))
        if handler is None:
            raise e.ProtocolError(f"unexpected {type(packet).__name__} from a client")
        handler(self, packet)

    # -- CONNECT ----------------------------------------------------------------------------------
    def _on_connect(self, c: p.Connect) -> None:
        self.version = p.MQTT5 if c.protocol_level == p.MQTT5 else p.MQTT311
        self.protocol_level = c.protocol_level
        if c.properties.get("authentication_method"):
            raise e.MQTTError("enhanced authentication is not supported", e.BAD_AUTHENTICATION_METHOD)
        self.clean_start = c.clean_start
        self.client_id = c.client_id or self._assign_client_id(c)
        self._authenticate(c)
        self._attach(self.vhost)
        self.keepalive = c.keepalive
        self.session_expiry = self._session_expiry(c)
        self.client_max_packet = c.properties.get("maximum_packet_size", 0)
        self.subs.client_receive_maximum = c.properties.get("receive_maximum", 65535)
        if c.will is not None:
            self._check_will(c.will)
        self.will = c.will
        self.reader.max_packet_size = self.settings.max_packet_size
        self.registry.retained.ensure_loaded(self.vhost)
        self.registry.register(self.vhost.name, self.client_id, self)  # type: ignore[union-attr]
        key = (self.vhost.name, self.client_id)  # type: ignore[union-attr]
        if self.clean_start:
            self.registry.awaiting_rel.pop(key, None)
        self.awaiting_rel = self.registry.awaiting_rel.setdefault(key, set())
        session_present = self.subs.open(self.clean_start)
        self.state = _CONNECTED
        self.send_packet(p.ConnAck(session_present, 0, self._connack_properties(c)))
        log.info("mqtt.connected", peer=self.peer, client_id=self.client_id,
                 user=getattr(self.user, "name", None), vhost=self.vhost.name,  # type: ignore[union-attr]
                 version=c.protocol_level, clean=self.clean_start, keepalive=self.keepalive)
        self.subs.start()

    def _assign_client_id(self, c: p.Connect) -> str:
        if not c.clean_start and self.version != p.MQTT5:
            raise e.MQTTError("empty client id with a persistent session",  # 3.1.3-8
                              e.CLIENT_IDENTIFIER_NOT_VALID)
        self._assigned = True
        return self.registry.assign_client_id()

    def _authenticate(self, c: p.Connect) -> None:
        """`vhost:user` or a user of the default vhost (https://www.rabbitmq.com/docs/mqtt#vhosts);
        anonymous clients use the configured default user only when allowed."""
        s = self.settings
        vhost = s.vhost
        if c.username is None and c.password is None and self.cert_login is not None:
            self._certificate_login(vhost)
            return
        if c.username is None:
            if not s.allow_anonymous:
                raise e.MQTTError("anonymous connections are not allowed",
                                  e.BAD_USER_NAME_OR_PASSWORD)
            username, password = s.default_user, s.default_password
        else:
            username, password = c.username, (c.password or b"").decode("utf-8", "replace")
            if ":" in username:
                maybe_vhost, _, rest = username.partition(":")
                if self.registry.core.vhost_exists(maybe_vhost):
                    vhost, username = maybe_vhost, rest
        try:
            self.user = self.registry.core.authenticate(username, password, self.loopback)
        except Refused as exc:
            log.warning("mqtt.login_refused", peer=self.peer, user=username, reason=exc.text)
            raise e.MQTTError(exc.text, e.BAD_USER_NAME_OR_PASSWORD) from None
        self._open_vhost(username, vhost)

    def _open_vhost(self, username: str, vhost: str) -> None:
        try:
            self.vhost = self.registry.core.open(self.user, vhost)
        except Refused as exc:
            log.warning("mqtt.vhost_refused", peer=self.peer, user=username, vhost=vhost)
            raise e.MQTTError(exc.text, e.NOT_AUTHORIZED) from None

    def _certificate_login(self, vhost: str) -> None:
        """mqtt.ssl_cert_login: no user name and password, a verified certificate; a user
        name and password, when sent, take priority (as in RabbitMQ's MQTT processor)."""
        username = self.cert_login
        assert username is not None
        try:
            self.user = self.registry.core.certificate_login(username, self.loopback)
        except Refused as exc:
            log.warning("mqtt.login_refused", peer=self.peer, user=username, reason=exc.text,
                        mechanism="client certificate")
            raise e.MQTTError(exc.text, e.BAD_USER_NAME_OR_PASSWORD) from None
        self._open_vhost(username, vhost)

    def _session_expiry(self, c: p.Connect) -> int:
        """5.0: the Session Expiry Interval (0 = ends with the connection); 3.1.1: a
        persistent session lasts as long as the server allows, capped as RabbitMQ does."""
        if self.version == p.MQTT5:
            requested = c.properties.get("session_expiry_interval", 0)
        else:
            requested = 0 if c.clean_start else 0xFFFFFFFF
        return min(requested, self.settings.max_session_expiry)

    def _check_will(self, will: p.Will) -> None:
        if not topics.valid_topic_name(will.topic):
            raise e.MQTTError(f"invalid will topic {will.topic!r}", e.TOPIC_NAME_INVALID)
        self._check_write(will.topic)

    def _connack_properties(self, c: p.Connect) -> dict[str, Any]:
        if self.version != p.MQTT5:
            return {}
        s = self.settings
        props: dict[str, Any] = {
            "receive_maximum": min(s.receive_maximum, SERVER_RECEIVE_MAXIMUM),
            "topic_alias_maximum": s.topic_alias_maximum,
            "maximum_packet_size": s.max_packet_size,
            "retain_available": 1, "wildcard_subscription_available": 1,
            "subscription_identifier_available": 1, "shared_subscription_available": 1,
        }
        if not c.client_id:
            props["assigned_client_identifier"] = self.client_id
        if c.properties.get("session_expiry_interval", 0) != self.session_expiry:
            props["session_expiry_interval"] = self.session_expiry
        return props

    # -- PUBLISH in ---------------------------------------------------------------------------------
    def _on_publish(self, m: p.Publish) -> None:
        topic = self._resolve_alias(m)
        if not topics.valid_topic_name(topic):
            raise e.MQTTError(f"invalid topic name {topic!r}", e.TOPIC_NAME_INVALID)
        if m.qos == 2 and m.packet_id in self.awaiting_rel:
            self.send_packet(p.PubRec(m.packet_id))  # 4.3.3: a resend is not routed twice
            return
        if m.qos and len(self.unconfirmed) >= SERVER_RECEIVE_MAXIMUM:
            raise e.MQTTError("receive maximum exceeded", e.RECEIVE_MAXIMUM_EXCEEDED)
        try:
            self._check_write(topic)
        except e.MQTTError as exc:
            self._refuse_publish(m, exc)
            return
        if m.retain:
            self.registry.retained.put(self.vhost, Retained(
                topic, m.payload, m.qos, _retained_props(m.properties)))
        msg = convert.to_amqp(self.settings.exchange, topic, m.payload, m.qos, m.properties,
                              self.client_id, m.retain)
        if not m.qos:
            self.vhost.publish(msg, _ignore)  # type: ignore[union-attr]
            return
        entry: list[Any] = [m, None]
        self.unconfirmed.append(entry)
        self.vhost.publish(msg, lambda ok: self._confirmed(entry, ok))  # type: ignore[union-attr]

    def _resolve_alias(self, m: p.Publish) -> str:
        alias = m.properties.get("topic_alias")
        if alias is None:
            return m.topic
        if not 0 < alias <= self.settings.topic_alias_maximum:
            raise e.MQTTError(f"topic alias {alias} out of range", e.TOPIC_ALIAS_INVALID)
        if m.topic:
            self.aliases_in[alias] = m.topic
            return m.topic
        topic = self.aliases_in.get(alias)
        if topic is None:
            raise e.ProtocolError(f"unknown topic alias {alias}")  # 3.3.4-8
        return topic

    def _refuse_publish(self, m: p.Publish, exc: e.MQTTError) -> None:
        """5.0 answers with the reason code; 3.1.1 has none and closes (as RabbitMQ)."""
        if self.version != p.MQTT5:
            raise exc
        log.warning("mqtt.publish_refused", peer=self.peer, client_id=self.client_id, reason=exc.text)
        if m.qos == 1:
            self.send_packet(p.PubAck(m.packet_id, exc.reason))
        elif m.qos == 2:
            self.send_packet(p.PubRec(m.packet_id, exc.reason))

    def _confirmed(self, entry: list[Any], ok: bool) -> None:
        """The core says a publish is safe (or refused): ack in arrival order."""
        if self.state == _CLOSED:
            return
        entry[1] = ok
        queue = self.unconfirmed
        while queue and queue[0][1] is not None:
            m, ok = queue.popleft()
            code = 0 if ok else e.IMPLEMENTATION_SPECIFIC_ERROR
            if m.qos == 1:
                if ok or self.version == p.MQTT5:
                    self.send_packet(p.PubAck(m.packet_id, code))
            elif ok or self.version == p.MQTT5:
                if ok:
                    self.awaiting_rel.add(m.packet_id)
                self.send_packet(p.PubRec(m.packet_id, code))
            if not ok and self.version != p.MQTT5:
                self._closed("publish refused by the broker", publish_will=True)
                return

    def _on_pubrel(self, m: p.PubRel) -> None:
        known = m.packet_id in self.awaiting_rel
        self.awaiting_rel.discard(m.packet_id)
        code = 0 if known or self.version != p.MQTT5 else e.PACKET_IDENTIFIER_NOT_FOUND
        self.send_packet(p.PubComp(m.packet_id, code))

    def _check_write(self, topic: str) -> None:
        try:
            self.vhost.check("write", "exchange", self.settings.exchange,  # type: ignore[union-attr]
                             topics.to_routing_key(topic))
        except Refused as exc:
            raise e.MQTTError(exc.text, e.NOT_AUTHORIZED) from None

    # -- small packets ------------------------------------------------------------------------------
    def _on_pingreq(self, m: p.PingReq) -> None:
        self.send_packet(p.PingResp())

    def _on_disconnect(self, m: p.Disconnect) -> None:
        expiry = m.properties.get("session_expiry_interval")
        if expiry is not None:
            if self.session_expiry == 0 and expiry:
                raise e.ProtocolError("session expiry set at DISCONNECT after 0 at CONNECT")  # 3.14.2-2
            self.session_expiry = min(expiry, self.settings.max_session_expiry)
        self._closed(f"client disconnected (reason 0x{m.reason_code:02x})",
                     publish_will=m.reason_code == e.DISCONNECT_WITH_WILL)

    def _on_auth(self, m: p.Auth) -> None:
        raise e.ProtocolError("AUTH without enhanced authentication")  # 4.12.0-1

    def _on_connect_again(self, m: p.Connect) -> None:
        raise e.ProtocolError("second CONNECT")  # 3.1.0-2

    def _on_server_packet(self, m: Any) -> None:
        raise e.ProtocolError(f"{type(m).__name__} is sent by servers only")

    # -- closing ------------------------------------------------------------------------------------
    def fail(self, exc: e.MQTTError) -> None:
        """The one place an error becomes its answer (CONNACK / DISCONNECT / close)."""
        if self.state == _CLOSED:
            return
        log.warning("mqtt.error", peer=self.peer, client_id=self.client_id,
                    reason=f"0x{exc.reason:02x}", text=exc.text)
        if self.state == _WAIT_CONNECT:
            if isinstance(exc, e.UnsupportedProtocolVersion) and exc.level == p.MQTT5:
                self.version = p.MQTT5
            code = exc.reason if self.version == p.MQTT5 else e.V3_CONNACK.get(exc.reason)
            if code is not None:  # 3.1.1 answers only with its five return codes
                self.send_packet(p.ConnAck(False, code))
            self._closed(exc.text, publish_will=False)
            return
        if self.version == p.MQTT5:
            self.send_packet(p.Disconnect(exc.reason, {"reason_string": exc.text[:200]}))
        self._closed(exc.text, publish_will=True)

    def server_shutdown(self) -> None:
        """The broker stops (5.0: DISCONNECT 0x8B Server shutting down)."""
        if self.state != _CONNECTED:
            self._closed("broker shutdown", publish_will=False)
            return
        if self.version == p.MQTT5:
            self.send_packet(p.Disconnect(e.SERVER_SHUTTING_DOWN))
        self._closed("broker shutdown", publish_will=True)

    def taken_over(self) -> None:
        """Another connection took our client id (3.1.4-3; 5.0: reason 0x8E)."""
        if self.state != _CONNECTED:
            return
        if self.version == p.MQTT5:
            self.send_packet(p.Disconnect(e.SESSION_TAKEN_OVER))
        log.info("mqtt.taken_over", peer=self.peer, client_id=self.client_id)
        self._closed("session taken over", publish_will=True, unregister=False)

    def _closed(self, reason: str, publish_will: bool, unregister: bool = True) -> None:
        if self.state == _CLOSED:
            return
        was_connected = self.state == _CONNECTED
        self.state = _CLOSED
        self.close_reason = reason
        if not was_connected:
            return
        vhost = self.vhost
        assert vhost is not None
        if unregister:
            self.registry.unregister(vhost.name, self.client_id, self)
        self.subs.close(delete=self.session_expiry == 0)
        vhost.close()
        if publish_will and self.will is not None:
            self._schedule_will(self.will)
        if self.session_expiry == 0:
            self.registry.awaiting_rel.pop((vhost.name, self.client_id), None)
        log.info("mqtt.closed", peer=self.peer, client_id=self.client_id, reason=reason)
        self.on_output()

    def _schedule_will(self, will: p.Will) -> None:
        """3.1.2-8: the will is published when the connection ends abnormally; 5.0 delays
        it by the Will Delay Interval, bounded by the session's expiry (3.1.3-9)."""
        delay = min(will.properties.get("will_delay_interval", 0), self.session_expiry)
        registry, vhost_name, user = self.registry, self.vhost.name, self.user  # type: ignore[union-attr]
        exchange, client_id = self.settings.exchange, self.client_id

        def fire() -> None:
            try:
                vhost = registry.core.open(user, vhost_name)
            except Refused:
                return
            if will.retain:
                registry.retained.put(vhost, Retained(will.topic, will.payload, will.qos,
                                                           _retained_props(will.properties)))
            vhost.publish(convert.to_amqp(exchange, will.topic, will.payload, will.qos,
                                          will.properties, client_id, will.retain), _ignore)
            vhost.close()
            log.info("mqtt.will_published", client_id=client_id, topic=will.topic)

        if delay <= 0:
            fire()
        else:
            registry.schedule_will(self.now + delay, vhost_name, client_id, fire)


def _retained_props(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k not in ("topic_alias", "subscription_identifier")}


def _ignore(ok: bool) -> None:
    pass


def _nothing() -> None:
    pass


def _nothing_bool(_: bool) -> None:
    pass


_HANDLERS: dict[type, Callable[[MQTTSession, Any], None]] = {
    p.Connect: MQTTSession._on_connect_again,
    p.Publish: MQTTSession._on_publish,
    p.PubAck: lambda s, m: s.subs.on_puback(m),
    p.PubRec: lambda s, m: s.subs.on_pubrec(m),
    p.PubRel: MQTTSession._on_pubrel,
    p.PubComp: lambda s, m: s.subs.on_pubcomp(m),
    p.Subscribe: lambda s, m: s.subs.on_subscribe(m),
    p.Unsubscribe: lambda s, m: s.subs.on_unsubscribe(m),
    p.PingReq: MQTTSession._on_pingreq,
    p.Disconnect: MQTTSession._on_disconnect,
    p.Auth: MQTTSession._on_auth,
    p.ConnAck: MQTTSession._on_server_packet,
    p.SubAck: MQTTSession._on_server_packet,
    p.UnsubAck: MQTTSession._on_server_packet,
    p.PingResp: MQTTSession._on_server_packet,
}
