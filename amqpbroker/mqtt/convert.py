"""MQTT messages to AMQP 0-9-1 properties and back, as RabbitMQ's MQTT plugin does
(https://www.rabbitmq.com/blog/2023/07/21/mqtt5 "Request / Response" and "User Property").

    MQTT 5                          AMQP 0-9-1
    QoS 1 or 2                      delivery_mode 2 (persistent), header x-mqtt-publish-qos
    Message Expiry Interval (s)     expiration (ms)
    Content Type                    content_type
    Correlation Data                correlation_id when UTF-8 and <= 255 bytes, else
                                    header x-correlation-id (bytes)
    Response Topic                  reply_to, mapped like a topic (`/` -> `.`)
    User Property                   headers (string values; a repeated name keeps the last)
    Payload Format Indicator 1      header x-mqtt-payload-format-indicator
"""

from __future__ import annotations

from typing import Any

from amqpbroker.mqtt import topics
from amqpbroker.mqtt.port import Delivery, OutgoingMessage

QOS_HEADER = "x-mqtt-publish-qos"
PUBLISHER_HEADER = "x-mqtt-publisher"  # for no-local (5.0 3.8.3.1)
_TOPICS: dict[str, str] = {}  # routing key -> MQTT topic, a bounded cache of the hot path
_RESERVED = (QOS_HEADER, PUBLISHER_HEADER, "x-correlation-id",
             "x-mqtt-payload-format-indicator", "x-mqtt-retain")


def to_amqp(exchange: str, topic: str, payload: bytes, qos: int, props: dict[str, Any],
            publisher: str, retain: bool = False) -> OutgoingMessage:
    headers: dict[str, Any] = {QOS_HEADER: qos, PUBLISHER_HEADER: publisher}
    amqp: dict[str, Any] = {}
    for name, value in props.get("user_property", ()):
        headers[name] = value
    if retain:
        headers["x-mqtt-retain"] = True
    if "content_type" in props:
        amqp["content_type"] = props["content_type"][:255]
    if "correlation_data" in props:
        data = props["correlation_data"]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and len(data) <= 255:
            amqp["correlation_id"] = text
        else:
            headers["x-correlation-id"] = bytes(data)
    if "response_topic" in props:
        amqp["reply_to"] = topics.to_routing_key(props["response_topic"])[:255]
    if "message_expiry_interval" in props:
        amqp["expiration"] = str(props["message_expiry_interval"] * 1000)
    if props.get("payload_format_indicator"):
        headers["x-mqtt-payload-format-indicator"] = 1
    amqp["headers"] = headers
    return OutgoingMessage(exchange, topics.to_routing_key(topic), payload, qos > 0, amqp)


def from_amqp(d: Delivery, version: int) -> tuple[str, int, dict[str, Any], str]:
    """(topic, published QoS, MQTT 5 properties, publisher client id) of a delivery."""
    amqp = d.properties
    headers = amqp.get("headers") or {}
    qos = headers.get(QOS_HEADER)
    if not isinstance(qos, int) or not 0 <= qos <= 2:
        # An AMQP publisher: persistent maps to QoS 1, as RabbitMQ does.
        qos = 1 if amqp.get("delivery_mode") == 2 else 0
    publisher = headers.get(PUBLISHER_HEADER)
    props: dict[str, Any] = {}
    if version == 5:
        props = _properties_v5(amqp, headers)
    topic = _TOPICS.get(d.routing_key)
    if topic is None:
        if len(_TOPICS) > 8192:
            _TOPICS.clear()
        topic = _TOPICS[d.routing_key] = topics.to_topic(d.routing_key)
    return topic, qos, props, publisher if isinstance(publisher, str) else ""


def _properties_v5(amqp: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if amqp.get("content_type"):
        props["content_type"] = str(amqp["content_type"])
    if "x-correlation-id" in headers and isinstance(headers["x-correlation-id"], (bytes, bytearray)):
        props["correlation_data"] = bytes(headers["x-correlation-id"])
    elif amqp.get("correlation_id"):
        props["correlation_data"] = str(amqp["correlation_id"]).encode("utf-8")
    if amqp.get("reply_to"):
        props["response_topic"] = topics.to_topic(str(amqp["reply_to"]))
    if headers.get("x-mqtt-payload-format-indicator"):
        props["payload_format_indicator"] = 1
    expiration = amqp.get("expiration")
    if expiration:
        try:
            props["message_expiry_interval"] = max(1, int(expiration) // 1000)
        except ValueError:
            pass
    users = [(str(k), _text(v)) for k, v in headers.items() if k not in _RESERVED]
    if users:
        props["user_property"] = users
    return props


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
