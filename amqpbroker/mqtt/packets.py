"""MQTT control packets as plain data (3.1.1 chapter 3, 5.0 chapter 3).

One dataclass per packet type. Properties (MQTT 5 only) are dicts, see `properties.py`;
on MQTT 3.1.1 they stay empty and reason codes are implied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# 2.1.2: control packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

MQTT311 = 4
MQTT5 = 5
MQTT31 = 3  # "MQIsdp": decoded, then refused as unsupported by the session


@dataclass
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Connect:
    client_id: str = ""
    protocol_level: int = MQTT311
    protocol_name: str = "MQTT"
    clean_start: bool = True
    keepalive: int = 60
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    type = CONNECT


@dataclass
class ConnAck:
    session_present: bool = False
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    type = CONNACK


@dataclass
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    type = PUBLISH


@dataclass
class PubAck:
    packet_id: int
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    type = PUBACK


@dataclass
class PubRec:
    packet_id: int
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    type = PUBREC


@dataclass
class PubRel:
    packet_id: int
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    type = PUBREL


@dataclass
class PubComp:
    packet_id: int
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    type = PUBCOMP


@dataclass
class SubOptions:
    """5.0 3.8.3.1 (on 3.1.1 only `qos` is on the wire)."""

    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass
class Subscribe:
    packet_id: int
    subscriptions: list[tuple[str, SubOptions]]
    properties: dict[str, Any] = field(default_factory=dict)
    type = SUBSCRIBE


@dataclass
class SubAck:
    packet_id: int
    reason_codes: list[int]
    properties: dict[str, Any] = field(default_factory=dict)
    type = SUBACK


@dataclass
class Unsubscribe:
    packet_id: int
    topic_filters: list[str]
    properties: dict[str, Any] = field(default_factory=dict)
    type = UNSUBSCRIBE


@dataclass
class UnsubAck:
    packet_id: int
    reason_codes: list[int] = field(default_factory=list)  # 5.0 only
    properties: dict[str, Any] = field(default_factory=dict)
    type = UNSUBACK


@dataclass
class PingReq:
    type = PINGREQ


@dataclass
class PingResp:
    type = PINGRESP


@dataclass
class Disconnect:
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    type = DISCONNECT


@dataclass
class Auth:
    reason_code: int = 0
    properties: dict[str, Any] = field(default_factory=dict)
    type = AUTH


Packet = (Connect | ConnAck | Publish | PubAck | PubRec | PubRel | PubComp | Subscribe | SubAck
          | Unsubscribe | UnsubAck | PingReq | PingResp | Disconnect | Auth)
