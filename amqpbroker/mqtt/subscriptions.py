"""A session's subscriptions and the deliveries they bring, as RabbitMQ's MQTT plugin maps
them (https://www.rabbitmq.com/docs/mqtt#implementation): each client gets its own queue,
`mqtt-subscription-<client id>qos1` (durable, `x-expires` = the session expiry, for
persistent sessions and QoS 1/2 subscriptions) or `mqtt-subscription-<client id>qos0` (the
QoS 0 subscriptions of a session that ends with its connection). Each subscription is a
binding of that queue to the MQTT exchange; its options ride in the binding's arguments,
so a persistent session's subscriptions survive restarts with the queue's definition.
Shared subscriptions (`$share/group/filter`, an extension) bind one queue per group and
filter; the group's sessions consume from it in competition.

Outgoing QoS 1 and 2 deliveries are settled with the core when the client acknowledges
(PUBACK, or PUBREC for QoS 2); unacknowledged ones return to the queue when the
connection ends and come back with DUP set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from amqpbroker.mqtt import convert, errors as e, topics
from amqpbroker.mqtt import packets as p
from amqpbroker.mqtt.codec import encode_publish
from amqpbroker.mqtt.port import Delivery, Refused

if TYPE_CHECKING:
    from amqpbroker.mqtt.session import MQTTSession

log = structlog.get_logger("amqpbroker")
_FILTER = "x-mqtt-filter"


@dataclass
class Sub:
    topic_filter: str           # as the client wrote it (with $share/... for shared ones)
    match: str                  # the filter messages are matched against
    options: p.SubOptions
    queue: str
    ident: int = 0              # 5.0 subscription identifier
    shared: bool = False

    def binding_args(self) -> dict[str, Any]:
        o = self.options
        return {_FILTER: self.topic_filter, "x-mqtt-qos": o.qos, "x-mqtt-no-local": o.no_local,
                "x-mqtt-retain-as-published": o.retain_as_published,
                "x-mqtt-subscription-id": self.ident}


class Subscriptions:
    def __init__(self, session: "MQTTSession") -> None:
        self.session = session
        self.subs: dict[str, Sub] = {}
        self.consumers: dict[str, Any] = {}    # queue name -> core consumer handle
        self.inflight: dict[int, tuple[Delivery | None, int]] = {}  # packet id -> (delivery, qos)
        self.released: set[int] = set()        # QoS 2: PUBREL sent, PUBCOMP awaited
        self.next_id = 0
        self.client_receive_maximum = 65535
        self._matches: dict[tuple[str, str], _Match] = {}

    @property
    def vhost(self) -> Any:
        return self.session.vhost

    def _queue(self, qos: int) -> str:
        persistent = self.session.session_expiry > 0
        return topics.queue_name(self.session.client_id, 1 if persistent else qos)

    # -- session start and end --------------------------------------------------------------------
    def open(self, clean_start: bool) -> bool:
        """Clean start: forget any previous session. Else recover its subscriptions from the
        bindings of its queue; returns whether a session was present (CONNACK flag)."""
        cid = self.session.client_id
        if clean_start:
            for qos in (0, 1):
                self.vhost.delete_queue(topics.queue_name(cid, qos))
            return False
        name = topics.queue_name(cid, 1)
        if not self.vhost.queue_exists(name):
            return False
        for _exchange, _key, args in self.vhost.bindings(name):
            sub = self._sub_from_binding(name, args)
            if sub is not None:
                self.subs[sub.topic_filter] = sub
        self._declare(name)  # refresh x-expires for this session's expiry
        return True

    def _sub_from_binding(self, queue: str, args: dict[str, Any]) -> Sub | None:
        flt = args.get(_FILTER)
        if not isinstance(flt, str):
            return None
        opts = p.SubOptions(int(args.get("x-mqtt-qos", 1)), bool(args.get("x-mqtt-no-local")),
                            bool(args.get("x-mqtt-retain-as-published")))
        return Sub(flt, flt, opts, queue, int(args.get("x-mqtt-subscription-id", 0)))

    def start(self) -> None:
        for queue in {s.queue for s in self.subs.values()}:
            self._consume(queue)

    def close(self, delete: bool) -> None:
        for handle in self.consumers.values():
            self.vhost.cancel(handle)
        self.consumers.clear()
        self.inflight.clear()
        if delete:
            for qos in (0, 1):
                self.vhost.delete_queue(topics.queue_name(self.session.client_id, qos))

    def _declare(self, queue: str, shared: bool = False) -> None:
        expiry = self.session.session_expiry
        args: dict[str, Any] = {}
        if expiry and not shared:
            args["x-expires"] = min(expiry * 1000, 0xFFFFFFFF)
        self.vhost.declare_queue(queue, durable=expiry > 0, auto_delete=shared and not expiry,
                                 arguments=args)

    def _consume(self, queue: str) -> None:
        if queue in self.consumers:
            return
        prefetch = min(self.session.settings.prefetch, self.client_receive_maximum)
        # The QoS 0 queue's deliveries are never acknowledged by the client: consume it
        # without acks (RabbitMQ's QoS 0 queue type is at-most-once the same way).
        no_ack = queue == topics.queue_name(self.session.client_id, 0)
        self.consumers[queue] = self.vhost.consume(
            queue, prefetch, lambda d, q=queue: self.deliver(q, d), no_ack=no_ack)

    # -- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------------
    def on_subscribe(self, s: p.Subscribe) -> None:
        five = self.session.version == p.MQTT5
        ident = (s.properties.get("subscription_identifier") or [0])[0]
        codes, fresh = [], []
        for topic_filter, opts in s.subscriptions:
            try:
                sub, new = self._subscribe(topic_filter, opts, ident)
            except e.MQTTError as exc:
                log.warning("mqtt.subscribe_refused", client_id=self.session.client_id,
                            filter=topic_filter, reason=exc.text)
                codes.append(exc.reason if five else 0x80)
                continue
            codes.append(opts.qos)
            fresh.append((sub, new))
        self.session.send_packet(p.SubAck(s.packet_id, codes))
        for sub, new in fresh:  # 3.3.1-9: retained messages after the SUBACK
            if not sub.shared and (sub.options.retain_handling == 0
                                   or (sub.options.retain_handling == 1 and new)):
                self._send_retained(sub)

    def _subscribe(self, topic_filter: str, opts: p.SubOptions, ident: int) -> tuple[Sub, bool]:
        try:
            shared = topics.parse_shared(topic_filter)
        except ValueError as exc:
            raise e.MQTTError(str(exc), e.TOPIC_FILTER_INVALID) from None
        match = shared.topic_filter if shared else topic_filter
        if not topics.valid_filter(match):
            raise e.MQTTError(f"invalid topic filter {topic_filter!r}", e.TOPIC_FILTER_INVALID)
        if shared and opts.no_local:
            raise e.ProtocolError("no local on a shared subscription")  # 3.8.3-4
        key = topics.to_routing_key(match)
        exchange = self.session.settings.exchange
        queue = topics.shared_queue_name(shared.group, match) if shared else self._queue(opts.qos)
        try:
            self.vhost.check("read", "exchange", exchange, key)
            self._declare(queue, shared=shared is not None)
            old = self.subs.get(topic_filter)
            if old is not None:
                self.vhost.unbind(old.queue, exchange, key, old.binding_args())
            sub = Sub(topic_filter, match, opts, queue, ident, shared is not None)
            self.vhost.bind(queue, exchange, key, sub.binding_args())
        except Refused as exc:
            raise e.MQTTError(exc.text, e.NOT_AUTHORIZED) from None
        self.subs[topic_filter] = sub
        self._matches.clear()
        self._consume(queue)
        return sub, old is None

    def on_unsubscribe(self, u: p.Unsubscribe) -> None:
        codes = []
        exchange = self.session.settings.exchange
        for topic_filter in u.topic_filters:
            sub = self.subs.pop(topic_filter, None)
            self._matches.clear()
            if sub is None:
                codes.append(e.NO_SUBSCRIPTION_EXISTED)
                continue
            try:
                self.vhost.unbind(sub.queue, exchange, topics.to_routing_key(sub.match),
                                  sub.binding_args())
            except Refused as exc:
                log.warning("mqtt.unsubscribe_failed", filter=topic_filter, reason=exc.text)
            if sub.shared and not any(s.queue == sub.queue for s in self.subs.values()):
                handle = self.consumers.pop(sub.queue, None)
                if handle is not None:
                    self.vhost.cancel(handle)
            codes.append(0)
        self.session.send_packet(p.UnsubAck(u.packet_id, codes))

    def _send_retained(self, sub: Sub) -> None:
        session = self.session
        for r in session.registry.retained.matching(self.vhost.name, sub.match):
            qos = min(r.qos, sub.options.qos)
            props = dict(r.properties) if session.version == p.MQTT5 else {}
            if sub.ident and session.version == p.MQTT5:
                props["subscription_identifier"] = [sub.ident]
            self._send(r.topic, r.payload, qos, True, False, props, None)

    # -- deliveries out ---------------------------------------------------------------------------
    def deliver(self, queue: str, d: Delivery) -> None:
        session = self.session
        if session.closed:
            return
        topic, pub_qos, props, publisher = convert.from_amqp(d, session.version)
        key = (queue, topic)
        match = self._matches.get(key)
        if match is None:  # cached until the subscriptions change
            match = self._match(queue, topic)
            if len(self._matches) > 4096:
                self._matches.clear()
            self._matches[key] = match
        if publisher == session.client_id and match.any_no_local:
            match = _Match([s for s in match.subs if not s.options.no_local])
        if not match.subs:
            d.settle(True)  # 3.8.3.1 no local, or a subscription just removed
            return
        qos = pub_qos if pub_qos <= match.max_qos else match.max_qos
        retain = match.retain_as_published and bool(
            (d.properties.get("headers") or {}).get("x-mqtt-retain"))
        if match.idents and session.version == p.MQTT5:
            props["subscription_identifier"] = match.idents
        self._send(topic, d.body, qos, retain, bool(d.redelivered and qos), props, d)

    def _match(self, queue: str, topic: str) -> "_Match":
        return _Match([s for s in self.subs.values()
                       if s.queue == queue and topics.matches(s.match, topic)])

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool, dup: bool,
              props: dict[str, Any], d: Delivery | None) -> None:
        session = self.session
        pid = self._packet_id() if qos else 0
        data = encode_publish(topic, payload, qos, retain, dup, pid, session.version, props)
        limit = session.client_max_packet
        if limit and len(data) > limit:  # 3.1.2-25: discarded as if delivered
            if d is not None:
                d.settle(True)
            return
        if qos:
            self.inflight[pid] = (d, qos)
        elif d is not None:
            d.settle(True)
        session.send(data)

    def _packet_id(self) -> int:
        for _ in range(65536):
            self.next_id = self.next_id % 65535 + 1
            if self.next_id not in self.inflight and self.next_id not in self.released:
                return self.next_id
        raise e.MQTTError("no free packet identifier", e.QUOTA_EXCEEDED)

    # -- acknowledgements from the client ---------------------------------------------------------
    def on_puback(self, a: p.PubAck) -> None:
        entry = self.inflight.pop(a.packet_id, None)
        if entry is None or entry[1] != 1:
            return  # 4.3.2: an unknown id is ignored
        if entry[0] is not None:
            entry[0].settle(True)

    def on_pubrec(self, a: p.PubRec) -> None:
        entry = self.inflight.pop(a.packet_id, None)
        if entry is None or entry[1] != 2:
            if self.session.version == p.MQTT5:
                self.session.send_packet(p.PubRel(a.packet_id, e.PACKET_IDENTIFIER_NOT_FOUND))
            return
        if entry[0] is not None:
            entry[0].settle(True)  # the receiver owns it now (4.3.3)
        if a.reason_code >= 0x80:
            return  # 5.0 4.3.3: a failed PUBREC ends the exchange
        self.released.add(a.packet_id)
        self.session.send_packet(p.PubRel(a.packet_id))

    def on_pubcomp(self, a: p.PubComp) -> None:
        self.released.discard(a.packet_id)


class _Match:
    """The subscriptions of one queue that match one topic, and what they imply."""

    __slots__ = ("subs", "max_qos", "retain_as_published", "idents", "any_no_local")

    def __init__(self, subs: list[Sub]) -> None:
        self.subs = subs
        self.max_qos = max((s.options.qos for s in subs), default=0)
        self.retain_as_published = any(s.options.retain_as_published for s in subs)
        self.idents = sorted({s.ident for s in subs if s.ident})
        self.any_no_local = any(s.options.no_local for s in subs)
