"""MQTT 5.0 properties (section 2.2.2): identifiers, wire types and where each may appear.

A decoded property set is a plain dict keyed by the property's name (snake case of the
spec's name). The two properties that may repeat keep a list: `user_property` (a list of
(name, value) pairs, order preserved as 3.3.2.3.7 requires) and `subscription_identifier`.
A property that is not allowed in a packet, an unknown identifier or a repeated
single-valued property is a Malformed Packet / Protocol Error (2.2.2.2).
"""

from __future__ import annotations

import struct
from typing import Any

from amqpbroker.mqtt.errors import MalformedPacket, ProtocolError
from amqpbroker.mqtt.wire import Reader, encode_binary, encode_string, encode_varint

# wire types
BYTE, TWO, FOUR, VARINT, UTF8, BINARY, PAIR = range(7)

# Packet kinds a property may appear in ("will" = the CONNECT's will properties).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH, WILL = 8, 9, 10, 11, 14, 15, 99
_ACKS = {PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK}

# id: (name, wire type, packets)
TABLE: dict[int, tuple[str, int, frozenset[int]]] = {
    0x01: ("payload_format_indicator", BYTE, frozenset({PUBLISH, WILL})),
    0x02: ("message_expiry_interval", FOUR, frozenset({PUBLISH, WILL})),
    0x03: ("content_type", UTF8, frozenset({PUBLISH, WILL})),
    0x08: ("response_topic", UTF8, frozenset({PUBLISH, WILL})),
    0x09: ("correlation_data", BINARY, frozenset({PUBLISH, WILL})),
    0x0B: ("subscription_identifier", VARINT, frozenset({PUBLISH, SUBSCRIBE})),
    0x11: ("session_expiry_interval", FOUR, frozenset({CONNECT, CONNACK, DISCONNECT})),
    0x12: ("assigned_client_identifier", UTF8, frozenset({CONNACK})),
    0x13: ("server_keep_alive", TWO, frozenset({CONNACK})),
    0x15: ("authentication_method", UTF8, frozenset({CONNECT, CONNACK, AUTH})),
    0x16: ("authentication_data", BINARY, frozenset({CONNECT, CONNACK, AUTH})),
    0x17: ("request_problem_information", BYTE, frozenset({CONNECT})),
    0x18: ("will_delay_interval", FOUR, frozenset({WILL})),
    0x19: ("request_response_information", BYTE, frozenset({CONNECT})),
    0x1A: ("response_information", UTF8, frozenset({CONNACK})),
    0x1C: ("server_reference", UTF8, frozenset({CONNACK, DISCONNECT})),
    0x1F: ("reason_string", UTF8, frozenset({CONNACK, DISCONNECT, AUTH} | _ACKS)),
    0x21: ("receive_maximum", TWO, frozenset({CONNECT, CONNACK})),
    0x22: ("topic_alias_maximum", TWO, frozenset({CONNECT, CONNACK})),
    0x23: ("topic_alias", TWO, frozenset({PUBLISH})),
    0x24: ("maximum_qos", BYTE, frozenset({CONNACK})),
    0x25: ("retain_available", BYTE, frozenset({CONNACK})),
    0x26: ("user_property", PAIR, frozenset(
        {CONNECT, CONNACK, PUBLISH, WILL, DISCONNECT, AUTH, SUBSCRIBE, UNSUBSCRIBE} | _ACKS)),
    0x27: ("maximum_packet_size", FOUR, frozenset({CONNECT, CONNACK})),
    0x28: ("wildcard_subscription_available", BYTE, frozenset({CONNACK})),
    0x29: ("subscription_identifier_available", BYTE, frozenset({CONNACK})),
    0x2A: ("shared_subscription_available", BYTE, frozenset({CONNACK})),
}
BY_NAME: dict[str, tuple[int, int]] = {name: (pid, wtype) for pid, (name, wtype, _) in TABLE.items()}
REPEATABLE = {"user_property", "subscription_identifier"}


def decode(r: Reader, packet: int) -> dict[str, Any]:
    """Read a property length and the properties that follow, for a packet kind."""
    length = r.varint()
    end = r.pos + length
    if end > r.end:
        raise MalformedPacket("property length exceeds the packet")
    props: dict[str, Any] = {}
    while r.pos < end:
        pid = r.varint()
        entry = TABLE.get(pid)
        if entry is None or packet not in entry[2]:
            raise MalformedPacket(f"property 0x{pid:02x} is not valid in this packet")
        name, wtype, _ = entry
        value = _read(r, wtype)
        if name in REPEATABLE:
            props.setdefault(name, []).append(value)
        elif name in props:
            raise ProtocolError(f"property {name} included more than once")
        else:
            props[name] = value
    if r.pos != end:
        raise MalformedPacket("property overruns its length")
    _check_values(props)
    return props


def _read(r: Reader, wtype: int) -> Any:
    if wtype == BYTE:
        return r.byte()
    if wtype == TWO:
        return r.u16()
    if wtype == FOUR:
        return r.u32()
    if wtype == VARINT:
        return r.varint()
    if wtype == UTF8:
        return r.string()
    if wtype == BINARY:
        return r.binary()
    return (r.string(), r.string())


def _check_values(props: dict[str, Any]) -> None:
    """Values the spec forbids (a Protocol Error, 3.1.2.11 and 3.3.2.3)."""
    for name in ("payload_format_indicator", "request_problem_information",
                 "request_response_information", "maximum_qos", "retain_available",
                 "wildcard_subscription_available", "subscription_identifier_available",
                 "shared_subscription_available"):
        if name in props and props[name] not in (0, 1):
            raise ProtocolError(f"{name} must be 0 or 1")
    for name in ("receive_maximum", "maximum_packet_size"):
        if props.get(name) == 0:
            raise ProtocolError(f"{name} must not be 0")
    for sid in props.get("subscription_identifier", ()):
        if sid == 0:
            raise ProtocolError("subscription identifier must not be 0")


def encode(props: dict[str, Any] | None) -> bytes:
    """Property length + properties (an empty set is the single byte 0)."""
    if not props:
        return b"\x00"
    parts: list[bytes] = []
    for name, value in props.items():
        pid, wtype = BY_NAME[name]
        if name in REPEATABLE:
            for v in value:
                parts.append(encode_varint(pid) + _write(wtype, v))
        elif value is not None:
            parts.append(encode_varint(pid) + _write(wtype, value))
    body = b"".join(parts)
    return encode_varint(len(body)) + body


def _write(wtype: int, value: Any) -> bytes:
    if wtype == BYTE:
        return bytes((value,))
    if wtype == TWO:
        return struct.pack(">H", value)
    if wtype == FOUR:
        return struct.pack(">I", value)
    if wtype == VARINT:
        return encode_varint(value)
    if wtype == UTF8:
        return encode_string(value)
    if wtype == BINARY:
        return encode_binary(value)
    return encode_string(value[0]) + encode_string(value[1])
