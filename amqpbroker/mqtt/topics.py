"""MQTT topics onto AMQP routing keys, as RabbitMQ's MQTT plugin maps them.

https://www.rabbitmq.com/docs/mqtt#topic-level-separator-and-wildcards: MQTT separates
levels with `/`, AMQP's topic exchange with `.`; the plugin swaps the two characters, so
`sensors/1/temp` is routing key `sensors.1.temp` and `a.b/c` is `a/b.c`. In filters `+`
becomes `*` and `#` stays `#`.

Valid and invalid names and filters (MQTT 5.0 section 4.7):
    topic names   a/b  /a  a//b  $SYS/x          (no `+` or `#`, not empty)
    filters       a/+  +/+/#  #  a/#  $share/g/a/#   (`#` last and alone in its level,
                  `+` alone in its level)
    invalid       a/b#  a+/b  a/#/b  ""  $share/g  $share/g+/a
    valid, but `#` and `+` do not match `$SYS/x` (4.7.2: topics starting with `$`).
"""

from __future__ import annotations

from typing import NamedTuple

_TO_AMQP = str.maketrans({"/": ".", ".": "/", "+": "*"})
_TO_MQTT = str.maketrans({".": "/", "/": "."})
SHARE_PREFIX = "$share/"


def valid_topic_name(topic: str) -> bool:
    return bool(topic) and "+" not in topic and "#" not in topic


def valid_filter(topic_filter: str) -> bool:
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


class Shared(NamedTuple):
    group: str
    topic_filter: str


def parse_shared(topic_filter: str) -> Shared | None:
    """`$share/{group}/{filter}` (5.0 4.8.2), or None for an ordinary filter. Raises
    ValueError for an invalid shared subscription."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    group, sep, rest = topic_filter[len(SHARE_PREFIX):].partition("/")
    if not group or not sep or "+" in group or "#" in group or not valid_filter(rest):
        raise ValueError(f"invalid shared subscription {topic_filter!r}")
    return Shared(group, rest)


def to_routing_key(topic: str) -> str:
    """An MQTT topic name (or filter) as an AMQP routing key (or binding key)."""
    return topic.translate(_TO_AMQP)


def to_topic(routing_key: str) -> str:
    """An AMQP routing key as the MQTT topic a subscriber sees."""
    return routing_key.translate(_TO_MQTT)


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching (4.7.1), for retained messages."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


def queue_name(client_id: str, qos: int) -> str:
    """RabbitMQ's names: `mqtt-subscription-<client id>qos0` for the QoS 0 subscriptions of
    a clean session, `mqtt-subscription-<client id>qos1` for all others
    (https://www.rabbitmq.com/docs/mqtt#implementation)."""
    return f"mqtt-subscription-{client_id}qos{1 if qos else 0}"


def shared_queue_name(group: str, topic_filter: str) -> str:
    """One queue per shared subscription group and filter (an extension: RabbitMQ's MQTT
    plugin does not support shared subscriptions); its consumers compete."""
    return f"mqtt-shared-{group}-{topic_filter}"
