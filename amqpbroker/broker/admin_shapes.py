"""What the admin facade (`broker/admin.py`) returns, in RabbitMQ's names and shapes: the
info items of queues, channels and bindings, message counters, message properties as
JSON, binding properties keys, and the errors and constants the HTTP layer shares.
Plain functions over the model's objects; nothing here changes the broker."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import time
from typing import Any
from urllib.parse import quote

from pamqp import commands

from amqpbroker import errors
from amqpbroker.message import Message
from amqpbroker.protocol.properties import decode_properties, encode_properties

NODE = "amqpbroker@localhost"
USER_TAGS = ("administrator", "monitoring", "policymaker", "management", "impersonator")
POLICY_APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")
VHOST_LIMITS = ("max-connections", "max-queues")
USER_LIMITS = ("max-connections", "max-channels")
GET_ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true",
                "reject_requeue_false")


class BadRequest(ValueError):
    """Input that is invalid whatever the broker's state (HTTP 400)."""


class _Quiet:
    """Session and publisher events of the admin's short-lived sessions: nothing to tell
    (a publish over HTTP is neither mandatory nor confirmed; nothing reads from a socket)."""

    def reading(self, paused: bool) -> None: ...
    def blocked(self, on: bool, reason: str) -> None: ...
    def force_close(self, code: int, text: str) -> None: ...
    def returned(self, msg: Message, code: int, text: str) -> None: ...
    def nacked(self, seq: int) -> None: ...
    def confirms_ready(self) -> None: ...


_QUIET = _Quiet()
INTERNAL_USER = "rmq-internal"  # RabbitMQ's name for the broker acting on its own


# -- helpers shared by the facade and the HTTP layer ---------------------------------------------
def check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{kind} name must be a non-empty string")
    if len(name.encode("utf-8")) > 255:
        raise BadRequest(f"{kind} name is longer than 255 bytes")


def _limit(name: str, value: Any, allowed: tuple[str, ...]) -> int:
    if name not in allowed:
        raise BadRequest(f"unknown limit '{name}' (expected one of {', '.join(allowed)})")
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"limit '{name}' must be an integer")
    return value



def edited_limits(current: dict[str, Any], name: str, value: Any,
                  allowed: tuple[str, ...], owner: str) -> dict[str, Any]:
    """A copy of `current` with limit `name` set to `value`, or cleared when `value` is
    None (404 when it was not set): the one rule for vhost and user limits."""
    limits = dict(current)
    if value is None:
        if name not in limits:
            raise errors.NotFound(f"no limit '{name}' on {owner}")
        del limits[name]
    else:
        limits[name] = _limit(name, value, allowed)
    return limits

def _int(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def connection_name(conn: Any) -> str:
    """RabbitMQ's connection name: "peer -> local" addresses."""
    local = getattr(conn, "local", "")
    return f"{conn.peer} -> {local}" if local else conn.peer


def _ready_bytes(q: Any) -> int:
    return q.ready_bytes  # a running total (model/queue.py): no scan of the messages


QUEUE_COUNTERS = ("publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty",
                  "deliver_get", "ack", "redeliver")
CHANNEL_COUNTERS = ("publish", "confirm", "return_unroutable", "drop_unroutable", "deliver",
                    "deliver_no_ack", "get", "get_no_ack", "get_empty", "deliver_get", "ack",
                    "redeliver")
VHOST_COUNTERS = tuple(dict.fromkeys(QUEUE_COUNTERS + CHANNEL_COUNTERS))


def _queue_totals(c: dict[str, int]) -> dict[str, int]:
    """RabbitMQ's message_stats names from raw destination counters (model.destination
    COUNTERS, as the dict a vhost keeps for deleted queues)."""
    get, no_ack = c["fetched"], c["fetched_no_ack"]
    return {"publish": c["published"], "deliver": c["delivered"],
            "deliver_no_ack": c["delivered_no_ack"], "get": get - no_ack,
            "get_no_ack": no_ack, "get_empty": c["fetched_empty"],
            "deliver_get": c["delivered"] + c["delivered_no_ack"] + get,
            "ack": c["acked"], "redeliver": c["redelivered"]}


def queue_counters(q: Any) -> dict[str, int]:
    get, no_ack, delivered, delivered_no_ack = (q.fetched, q.fetched_no_ack, q.delivered,
                                                q.delivered_no_ack)
    return {"publish": q.published, "deliver": delivered,
            "deliver_no_ack": delivered_no_ack, "get": get - no_ack,
            "get_no_ack": no_ack, "get_empty": q.fetched_empty,
            "deliver_get": delivered + delivered_no_ack + get,
            "ack": q.acked, "redeliver": q.redelivered}


def counted(q: Any) -> bool:
    """The queue has counted something (a cheap test: most of 100,000 idle queues have
    not, and their message_stats are all zero)."""
    return bool(q.published or q.fetched or q.fetched_empty or q.delivered
                or q.delivered_no_ack or q.acked or q.redelivered or q.fetched_no_ack)


def raw_counters(queues: Any, into: dict[str, int]) -> dict[str, int]:
    """Add the raw counters (model.destination COUNTERS) of `queues` into `into`."""
    for q in queues:
        if counted(q):
            for name in into:
                into[name] += getattr(q, name)
    return into


def channel_counted(ch: Any) -> bool:
    """The channel has counted something (of 10,000 idle connections' channels, none has:
    their message_stats are all zero, and the rates sampler leaves them out)."""
    pub = ch.publisher
    return bool(pub.published or pub.upto or pub.returned_unroutable or pub.dropped_unroutable
                or ch.delivered or ch.delivered_no_ack or ch.fetched or ch.fetched_no_ack
                or ch.fetched_empty or ch.acked or ch.redelivered)


def channel_counters(ch: Any) -> dict[str, int]:
    pub = ch.publisher
    return {"publish": pub.published, "confirm": pub.upto if pub.confirm else 0,
            "return_unroutable": pub.returned_unroutable,
            "drop_unroutable": pub.dropped_unroutable, "deliver": ch.delivered,
            "deliver_no_ack": ch.delivered_no_ack, "get": ch.fetched,
            "get_no_ack": ch.fetched_no_ack, "get_empty": ch.fetched_empty,
            "deliver_get": ch.delivered + ch.delivered_no_ack + ch.fetched
            + ch.fetched_no_ack, "ack": ch.acked, "redeliver": ch.redelivered}


def _sum(items: list[dict[str, int]], keys: tuple[str, ...]) -> dict[str, int]:
    out = dict.fromkeys(keys, 0)
    for item in items:
        for key in keys:
            out[key] += item.get(key, 0)
    return out


def _connection_state(conn: Any) -> str:
    session = getattr(conn, "session", None)
    if session is not None and session.alarm_blocked:
        return "blocked"
    return "running"


def _persistent(q: Any) -> tuple[int, int]:
    """RabbitMQ's messages_persistent and message_bytes_persistent: the messages (ready
    and unacknowledged) a durable queue keeps in the store, from running totals (streams
    keep every message)."""
    if q.is_stream:
        return q.message_count, 0
    return q.persistent_count, q.persistent_bytes


def _active_tag(q: Any) -> str | None:
    active = getattr(q, "active", None)
    return getattr(active, "tag", None) if active is not None else None


def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    """RabbitMQ's binding "properties key": the routing key, and a hash of the arguments
    when there are any (rabbit_mgmt_format:pack_binding_props)."""
    key = quote(routing_key, safe="") if routing_key else "~"
    if not arguments:
        return key
    digest = hashlib.sha1(json.dumps(arguments, sort_keys=True, default=str).encode()).digest()
    return f"{quote(routing_key, safe='')}~" + base64.urlsafe_b64encode(digest)[:8].decode()


def binding_info(vhost: str, source: str, destination: str, destination_type: str,
                 routing_key: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"source": source, "vhost": vhost, "destination": destination,
            "destination_type": destination_type, "routing_key": routing_key,
            "arguments": dict(arguments),
            "properties_key": properties_key(routing_key, arguments)}


# AMQP basic properties <-> the management API's JSON names.
_PROPERTY_NAMES = {"content_type": "content_type", "content_encoding": "content_encoding",
                   "headers": "headers", "delivery_mode": "delivery_mode",
                   "priority": "priority", "correlation_id": "correlation_id",
                   "reply_to": "reply_to", "expiration": "expiration",
                   "message_id": "message_id", "timestamp": "timestamp",
                   "type": "message_type", "user_id": "user_id", "app_id": "app_id",
                   "cluster_id": "cluster_id"}


def properties_from_json(props: Any) -> commands.Basic.Properties:
    if not isinstance(props, dict):
        raise BadRequest("properties must be an object")
    kwargs: dict[str, Any] = {}
    for key, value in props.items():
        attr = _PROPERTY_NAMES.get(key)
        if attr is None:
            raise BadRequest(f"unknown property '{key}'")
        if key == "timestamp":
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadRequest("timestamp must be an integer (seconds)")
            value = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        elif key in ("delivery_mode", "priority"):
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
                raise BadRequest(f"{key} must be an integer 0-255")
        elif key == "headers":
            if not isinstance(value, dict):
                raise BadRequest("headers must be an object")
        elif not isinstance(value, str):
            raise BadRequest(f"{key} must be a string")
        kwargs[attr] = value
    try:
        props_obj = commands.Basic.Properties(**kwargs)
        encode_properties(props_obj)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"invalid properties: {exc}") from None
    return props_obj


def properties_to_json(raw: bytes) -> dict[str, Any]:
    try:
        props = decode_properties(raw)
    except ValueError:
        return {}
    out: dict[str, Any] = {}
    for key, attr in _PROPERTY_NAMES.items():
        value = getattr(props, attr, None)
        if value is None or (key == "cluster_id" and value == ""):
            continue
        if isinstance(value, datetime.datetime):
            value = int(value.replace(tzinfo=value.tzinfo or datetime.timezone.utc).timestamp())
        out[key] = value
    return out


def message_json(msg: Message, body: bytes, redelivered: bool, remaining: int,
                 encoding: str, truncate: int | None) -> dict[str, Any]:
    payload = body if truncate is None else body[:truncate]
    text: str | None = None
    if encoding == "auto":
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return {"payload_bytes": len(body), "redelivered": redelivered,
            "exchange": msg.exchange, "routing_key": msg.routing_key,
            "message_count": remaining, "properties": properties_to_json(msg.properties),
            "payload": text if text is not None else base64.b64encode(payload).decode(),
            "payload_encoding": "string" if text is not None else "base64"}


def now_ms() -> int:
    return int(time.time() * 1000)
