"""The MQTT port bound to the broker core (`amqpbroker/broker/`): what `port.py` asks for,
done with the core's protocol-neutral operations — `BrokerCore.open_session`, the
session's declare/bind/publish/consume/ack, a `Publisher` whose confirms say when a
publish is safe (routed, and fsynced by the group commit when it reached a durable queue).
No broker rule lives here: permissions, routing, flow control and alarms are the core's.

Retained messages are kept durable through the same operations: one durable queue per
retained topic, `mqtt-retained-<sha1 of vhost-less topic>` with `x-max-length: 1`
(drop-head), holding the retained message as a persistent message whose header
`x-mqtt-topic` names the topic. A new retained message replaces the old one inside the
queue; clearing deletes the queue. The queues are read back at the first MQTT connection
to a vhost after a restart.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

import structlog
from pamqp import encode

from amqpbroker import errors

from amqpbroker.message import Message
from amqpbroker.mqtt.port import Delivery, OutgoingMessage, Refused
from amqpbroker.mqtt.registry import Retained

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore
    from amqpbroker.broker.session import Session

log = structlog.get_logger("amqpbroker")
RETAINED_PREFIX = "mqtt-retained-"


class CoreAdapter:
    def __init__(self, core: "BrokerCore") -> None:
        self.core = core

    def authenticate(self, username: str, password: str, loopback: bool) -> Any:
        try:
            return self.core.authenticate(username, password, loopback)
        except errors.AMQPError as exc:
            raise Refused("login", exc.reply_text) from None

    def certificate_login(self, username: str, loopback: bool) -> Any:
        # The rules of AMQP's SASL EXTERNAL (the user must exist; loopback_users). Imported
        # here: the session package sits above settings, which imports mqtt.options.
        from amqpbroker.session.auth import external_login

        try:
            return external_login(self.core, username, loopback)
        except errors.AMQPError as exc:
            raise Refused("login", exc.reply_text) from None

    def vhost_exists(self, name: str) -> bool:
        return name in self.core.vhosts

    def open(self, user: Any, vhost: str) -> "VhostAdapter":
        adapter = VhostAdapter(self.core)
        try:
            adapter.session = self.core.open_session(user, vhost, adapter)
        except errors.AMQPError as exc:
            raise Refused("vhost", exc.reply_text) from None
        adapter.start()
        return adapter


class MQTTConsumer:
    """A consumer as the core's queues see it (`ConsumerLike`): credit = prefetch."""

    __slots__ = ("adapter", "queue", "prefetch", "on_delivery", "unacked", "tag", "active",
                 "exclusive", "priority", "arguments", "no_ack")

    def __init__(self, adapter: "VhostAdapter", queue: Any, prefetch: int,
                 on_delivery: Callable[[Delivery], None]) -> None:
        self.adapter = adapter
        self.queue = queue
        self.prefetch = prefetch
        self.on_delivery = on_delivery
        self.unacked = 0
        self.tag = f"mqtt-{id(self):x}"
        self.active = True
        self.exclusive = False
        self.priority = 0
        self.arguments: dict[str, Any] = {}
        self.no_ack = False

    def can_take(self) -> bool:
        if self.adapter.write_blocked():
            self.adapter.starved = True
            return False
        return self.active and (self.no_ack or self.unacked < self.prefetch)

    def deliver(self, queue: Any, msg: Message, redelivered: bool) -> None:
        self.unacked += 1
        self.adapter.deliver(self, queue, msg, redelivered)

    def queue_deleted(self, queue: Any) -> None:
        self.active = False


class VhostAdapter:
    """One MQTT connection's core session; also its `SessionEvents` and `PublisherEvents`."""

    def __init__(self, core: "BrokerCore") -> None:
        self.core = core
        self.session: "Session" = None  # type: ignore[assignment]
        self.name = ""
        self.publisher: Any = None
        self.waiting: deque[tuple[int, Callable[[bool], None]]] = deque()
        self.outstanding: dict[int, tuple[Any, Message, MQTTConsumer]] = {}
        self.next_delivery = 0
        self.consumers: list[MQTTConsumer] = []
        self.starved = False
        # Set by the MQTT session's shell: pause reading (flow control, alarms), the
        # broker closing us, and whether our output buffer is full (slow consumer).
        self.on_reading: Callable[[bool], None] = lambda paused: None
        self.on_force_close: Callable[[str], None] = lambda text: None
        self.write_blocked: Callable[[], bool] = lambda: False

    def set_client_id(self, client_id: str) -> None:
        """For `{client_id}` in topic permission patterns."""
        self.session.client_id = client_id

    def set_protocol(self, label: str) -> None:
        """The client's MQTT version, as RabbitMQ labels its global counters (mqtt311...)."""
        self.session.set_protocol(label)
        self.publisher.count_in(self.session.counters)

    def start(self) -> None:
        self.name = self.session.vhost.name
        self.publisher = self.session.publisher(self)
        self.publisher.confirm = True  # MQTT QoS 1/2 publishes wait for confirms

    # -- SessionEvents / PublisherEvents --------------------------------------------------------
    def reading(self, paused: bool) -> None:
        self.on_reading(paused)

    def blocked(self, on: bool, reason: str) -> None:
        pass  # MQTT has no "blocked" packet: `reading` pauses the socket

    def force_close(self, code: int, text: str) -> None:
        self.on_force_close(text)

    def returned(self, msg: Message, code: int, text: str) -> None:
        pass  # MQTT publishes are never mandatory

    def nacked(self, seq: int) -> None:
        self._release(seq - 1)
        if self.waiting and self.waiting[0][0] == seq:
            self.waiting.popleft()[1](False)

    def confirms_ready(self) -> None:
        self._release(self.publisher.upto)

    def _release(self, upto: int) -> None:
        waiting = self.waiting
        while waiting and waiting[0][0] <= upto:
            waiting.popleft()[1](True)
        self.publisher.sent = max(self.publisher.sent, upto)

    # -- permissions and topology -----------------------------------------------------------------
    def check(self, permission: str, resource: str, name: str,
              routing_key: str | None = None) -> None:
        # With a routing key, the topic permission too (RabbitMQ's topic authorisation,
        # https://www.rabbitmq.com/docs/access-control#topic-authorisation).
        try:
            self.session.allow(permission, resource, name)  # type: ignore[arg-type]
            if routing_key is not None:
                self.session.allow_topic(name, permission, routing_key)  # type: ignore[arg-type]
        except errors.AMQPError as exc:
            raise Refused("access", exc.reply_text) from None

    def queue_exists(self, name: str) -> bool:
        return name in self.session.vhost.queues

    def declare_queue(self, name: str, *, durable: bool, auto_delete: bool,
                      arguments: dict[str, Any]) -> bool:
        if name in self.session.vhost.queues:
            return True  # keep the existing queue as it is (no 406 on changed arguments)
        try:
            self.session.declare_queue(name, durable=durable, auto_delete=auto_delete,
                                       arguments=arguments)
        except errors.AMQPError as exc:
            raise Refused("access", exc.reply_text) from None
        return False

    def delete_queue(self, name: str) -> None:
        q = self.session.vhost.queues.get(name)
        if q is None:
            return
        for tag, entry in list(self.outstanding.items()):
            if entry[0] is q:
                del self.outstanding[tag]
        try:
            self.session.delete_queue(name)
        except errors.AMQPError as exc:
            raise Refused("access", exc.reply_text) from None

    def bind(self, queue: str, exchange: str, key: str, arguments: dict[str, Any]) -> None:
        try:
            self.session.bind_queue(queue, exchange, key, arguments)
        except errors.AMQPError as exc:
            raise Refused("access", exc.reply_text) from None

    def unbind(self, queue: str, exchange: str, key: str, arguments: dict[str, Any]) -> None:
        try:
            self.session.unbind_queue(queue, exchange, key, arguments)
        except errors.AMQPError as exc:
            raise Refused("access", exc.reply_text) from None

    def bindings(self, queue: str) -> list[tuple[str, str, dict[str, Any]]]:
        vhost = self.session.vhost
        q = vhost.queues.get(queue)
        if q is None:
            return []
        return [(ex.name, key, dict(args or {})) for ex in vhost.exchanges.values()
                for dest, key, args in ex.bindings() if dest is q]

    # -- publishing ---------------------------------------------------------------------------------
    def publish(self, out: OutgoingMessage, on_safe: Callable[[bool], None]) -> None:
        msg = _to_message(out)
        try:
            self.session.publish(msg, False, self.publisher)
        except errors.AMQPError as exc:
            log.warning("mqtt.publish_failed", vhost=self.name, exchange=out.exchange,
                        reason=exc.reply_text)
            on_safe(False)
            return
        self.waiting.append((self.publisher.seq, on_safe))
        self._release(self.publisher.upto)

    def after_read(self) -> None:
        self.session.check_alarm()

    # -- consuming ----------------------------------------------------------------------------------
    def consume(self, queue: str, prefetch: int, on_delivery: Callable[[Delivery], None],
                no_ack: bool = False) -> Any:
        try:
            q = self.session.check_consume(queue, exclusive=False, no_ack=no_ack,
                                           prefetch=prefetch, global_prefetch=0, arguments={})
        except errors.AMQPError as exc:
            raise Refused("access", exc.reply_text) from None
        consumer = MQTTConsumer(self, q, max(1, prefetch), on_delivery)
        consumer.no_ack = no_ack
        self.consumers.append(consumer)
        self.session.consume(q, consumer)
        return consumer

    def deliver(self, consumer: MQTTConsumer, queue: Any, msg: Message, redelivered: bool) -> None:
        if consumer.no_ack:  # settled by the queue as it is handed out, as for AMQP
            consumer.unacked -= 1
            body = msg.body if msg.body is not None else self.core.store.load_body(msg)  # type: ignore[union-attr]
            consumer.on_delivery(Delivery(msg.routing_key, body, _Properties(msg), redelivered,  # type: ignore[arg-type]
                                          _settled, msg.exchange))
            return
        self.next_delivery += 1
        tag = self.next_delivery
        self.outstanding[tag] = (queue, msg, consumer)
        body = msg.body
        if body is None:
            body = self.core.store.load_body(msg)  # type: ignore[union-attr]
        consumer.on_delivery(Delivery(msg.routing_key, body, _Properties(msg), redelivered,  # type: ignore[arg-type]
                                      lambda ack: self._settle(tag, ack), msg.exchange))

    def _settle(self, tag: int, ack: bool) -> None:
        entry = self.outstanding.pop(tag, None)
        if entry is None:
            return
        if ack:
            self.session.ack([entry])
        else:
            self.session.reject([entry], requeue=False)

    def resume(self) -> None:
        """Our output drained: consumers skipped while it was full get their turn."""
        if self.starved:
            self.starved = False
            for c in self.consumers:
                if c.active:
                    c.queue.dispatch()

    def cancel(self, consumer: MQTTConsumer) -> None:
        if consumer.active or consumer in self.consumers:
            consumer.active = False
            if consumer in self.consumers:
                self.consumers.remove(consumer)
                self.session.cancel(consumer)

    def close(self) -> None:
        """Consumers cancelled, unsettled deliveries back in their queues in order."""
        for consumer in list(self.consumers):
            consumer.active = False
            self.session.cancel(consumer, dispatch=False)
        self.consumers.clear()
        entries = [self.outstanding[t] for t in sorted(self.outstanding)]
        self.outstanding.clear()
        if entries:
            self.session.requeue(entries)
        self.publisher.close()
        self.session.close()

    # -- retained messages ----------------------------------------------------------------------
    def store_retained(self, topic: str, retained: Retained | None) -> None:
        name = retained_queue_name(topic)
        if retained is None:
            self.delete_queue(name)
            return
        self.declare_queue(name, durable=True, auto_delete=False,
                           arguments={"x-max-length": 1, "x-overflow": "drop-head"})
        headers = {"x-mqtt-topic": topic, "x-mqtt-publish-qos": retained.qos}
        for key, value in retained.properties.get("user_property", ()):
            headers.setdefault(f"x-mqtt-user-{key}", value)
        props = {"headers": headers}
        if "content_type" in retained.properties:
            props["content_type"] = retained.properties["content_type"]
        self.publish(OutgoingMessage("", name, retained.payload, True, props), _ignore)

    def load_retained(self) -> list[Retained]:
        found = []
        vhost = self.session.vhost
        for name, q in list(vhost.queues.items()):
            if not name.startswith(RETAINED_PREFIX):
                continue
            got = self.session.get(name)
            if got is None:
                continue
            queue, msg, redelivered = got
            self.session.requeue([(queue, msg, None)])
            headers = msg.headers or {}
            topic = headers.get("x-mqtt-topic")
            if not isinstance(topic, str):
                continue
            body = msg.body if msg.body is not None else self.core.store.load_body(msg)  # type: ignore[union-attr]
            props: dict[str, Any] = {}
            users = [(k[len("x-mqtt-user-"):], str(v)) for k, v in headers.items()
                     if isinstance(k, str) and k.startswith("x-mqtt-user-")]
            if users:
                props["user_property"] = users
            ctype = msg.get_property("content_type")
            if ctype:
                props["content_type"] = ctype
            qos = headers.get("x-mqtt-publish-qos")
            found.append(Retained(topic, body, qos if isinstance(qos, int) else 0, props))
        return found


def retained_queue_name(topic: str) -> str:
    return RETAINED_PREFIX + hashlib.sha1(topic.encode("utf-8")).hexdigest()


# AMQP basic property flags (0-9-1 section 4.2.6.1) and their order on the wire.
_FLAGS = (("content_type", 0x8000), ("headers", 0x2000), ("delivery_mode", 0x1000),
          ("correlation_id", 0x0400), ("reply_to", 0x0200), ("expiration", 0x0100))
_header_cache: dict[tuple[Any, ...], bytes] = {}


def _to_message(out: OutgoingMessage) -> Message:
    """The neutral Message of an MQTT publish, its property bytes encoded directly (the
    few properties MQTT maps to; pamqp's general encoder costs more than the rest of a
    publish). The headers of plain MQTT publishes repeat, so their encoding is cached."""
    props = out.properties
    headers = props.get("headers") or {}
    flags = 0
    parts: list[bytes] = []
    for name, flag in _FLAGS:
        if name == "delivery_mode":
            value: Any = 2 if out.persistent else 1
        else:
            value = props.get(name)
            if value is None or (name == "headers" and not value):
                continue
        flags |= flag
        if name == "headers":
            parts.append(_encode_headers(value))
        elif name == "delivery_mode":
            parts.append(bytes((value,)))
        else:
            raw = str(value).encode("utf-8")[:255]
            parts.append(bytes((len(raw),)) + raw)
    raw_props = flags.to_bytes(2, "big") + b"".join(parts)
    msg = Message(out.exchange, out.routing_key, raw_props, out.body, len(out.body),
                  out.persistent, 0, props.get("expiration"))
    msg._headers = headers  # already known: spare the lazy decode on delivery
    return msg


def _encode_headers(headers: dict[str, Any]) -> bytes:
    key = tuple(headers.items()) if len(headers) <= 4 else None
    if key is not None:
        try:
            cached = _header_cache.get(key)
        except TypeError:  # an unhashable value (bytes are fine; nothing else is expected)
            key, cached = None, None
        if cached is not None:
            return cached
    encoded = encode.field_table(headers)
    if key is not None and len(_header_cache) < 4096:
        _header_cache[key] = encoded
    return encoded


class _Properties:
    """A delivery's AMQP properties, read lazily: MQTT 3.1.1 deliveries need only the
    headers (cached on the message), MQTT 5 ones decode the rest once."""

    __slots__ = ("msg", "_decoded")

    def __init__(self, msg: Message) -> None:
        self.msg = msg
        self._decoded: Any = None

    def get(self, name: str, default: Any = None) -> Any:
        msg = self.msg
        if name == "headers":
            return msg.headers or {}
        if name == "delivery_mode":
            return 2 if msg.persistent else 1
        if name == "expiration":
            return msg.expiration
        if self._decoded is None:
            self._decoded = msg.decoded_properties()
        value = getattr(self._decoded, name, None)
        return default if value is None else value

    def __getitem__(self, name: str) -> Any:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value


def _ignore(ok: bool) -> None:
    pass


def _settled(ack: bool) -> None:
    pass  # a no-ack delivery: already settled
