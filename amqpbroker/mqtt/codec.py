"""Decode and encode every MQTT control packet, 3.1.1 and 5.0.

    packet = decode_packet(first_byte, body, version)   # body: the remaining-length bytes
    data = encode_packet(packet, version)                # fixed header included

`version` is the protocol level negotiated by CONNECT (4 = 3.1.1, 5 = 5.0); CONNECT itself
carries it. Every violation of a "MUST" of the packet format raises `MalformedPacket` or
`ProtocolError` (5.0 section 4.13; 3.1.1 section 4.8 closes the connection).
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from amqpbroker.mqtt import packets as p
from amqpbroker.mqtt import properties as props
from amqpbroker.mqtt.errors import MalformedPacket, ProtocolError, UnsupportedProtocolVersion
from amqpbroker.mqtt.wire import Reader, encode_binary, encode_string, encode_varint

# 2.1.3: the fixed header flags each packet type must carry (PUBLISH's are its own).
_REQUIRED_FLAGS = {p.PUBREL: 0x2, p.SUBSCRIBE: 0x2, p.UNSUBSCRIBE: 0x2}
_PROTOCOL_NAMES = {p.MQTT31: "MQIsdp", p.MQTT311: "MQTT", p.MQTT5: "MQTT"}


def decode_packet(first: int, body: bytes, version: int = p.MQTT311) -> p.Packet:
    ptype, flags = first >> 4, first & 0x0F
    if ptype != p.PUBLISH and flags != _REQUIRED_FLAGS.get(ptype, 0):
        raise MalformedPacket(f"invalid fixed header flags 0x{flags:x} for packet type {ptype}")
    decoder = _DECODERS.get(ptype)
    if decoder is None or (ptype == p.AUTH and version != p.MQTT5):
        raise MalformedPacket(f"reserved packet type {ptype}")
    r = Reader(body)
    packet = decoder(r, flags, version)
    if r.pos != r.end:
        raise MalformedPacket(f"{type(packet).__name__} has {r.end - r.pos} trailing bytes")
    return packet


def _packet_id(r: Reader) -> int:
    pid = r.u16()
    if pid == 0:
        raise MalformedPacket("packet identifier 0")  # 2.2.1: non-zero
    return pid


def _decode_connect(r: Reader, flags: int, version: int) -> p.Connect:
    name = r.string()
    level = r.byte()
    if level not in _PROTOCOL_NAMES:
        raise UnsupportedProtocolVersion(f"unsupported protocol level {level}", level)
    if name != _PROTOCOL_NAMES[level]:
        raise MalformedPacket(f"protocol name {name!r} for level {level}")
    cflags = r.byte()
    if cflags & 0x01:
        raise MalformedPacket("reserved CONNECT flag set")  # 3.1.2-3
    will_flag, will_qos, will_retain = cflags & 0x04, (cflags >> 3) & 0x03, bool(cflags & 0x20)
    if will_qos == 3:
        raise MalformedPacket("will QoS 3")
    if not will_flag and (will_qos or will_retain):
        raise MalformedPacket("will QoS or retain without a will")  # 3.1.2-11/13
    has_password, has_username = cflags & 0x40, cflags & 0x80
    if has_password and not has_username and level != p.MQTT5:
        raise MalformedPacket("password flag without user name flag")  # 3.1.2-22
    c = p.Connect(protocol_level=level, protocol_name=name, clean_start=bool(cflags & 0x02),
                  keepalive=r.u16())
    if level == p.MQTT5:
        c.properties = props.decode(r, props.CONNECT)
    c.client_id = r.string()
    if will_flag:
        wprops = props.decode(r, props.WILL) if level == p.MQTT5 else {}
        c.will = p.Will(r.string(), r.binary(), will_qos, will_retain, wprops)
    if has_username:
        c.username = r.string()
    if has_password:
        c.password = r.binary()
    return c


def _decode_connack(r: Reader, flags: int, version: int) -> p.ConnAck:
    ack_flags = r.byte()
    if ack_flags & 0xFE:
        raise MalformedPacket("reserved CONNACK flags set")
    a = p.ConnAck(session_present=bool(ack_flags & 1), reason_code=r.byte())
    if version == p.MQTT5:
        a.properties = props.decode(r, props.CONNACK)
    return a


def _decode_publish(r: Reader, flags: int, version: int) -> p.Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")  # 3.3.1-4
    dup = bool(flags & 0x08)
    if dup and not qos:
        raise MalformedPacket("DUP flag on a QoS 0 PUBLISH")  # 3.3.1-2
    topic = r.string()
    pid = _packet_id(r) if qos else 0
    properties = props.decode(r, props.PUBLISH) if version == p.MQTT5 else {}
    return p.Publish(topic, r.rest(), qos, bool(flags & 1), dup, pid, properties)


def _ack_decoder(cls: Any, kind: int) -> Callable[[Reader, int, int], Any]:
    def decode(r: Reader, flags: int, version: int) -> Any:
        pid = _packet_id(r)
        if version != p.MQTT5 or not r.remaining():
            return cls(pid)  # 5.0 3.4.2.1: no reason code means 0x00 Success
        code = r.byte()
        properties = props.decode(r, kind) if r.remaining() else {}
        return cls(pid, code, properties)
    return decode


def _decode_subscribe(r: Reader, flags: int, version: int) -> p.Subscribe:
    pid = _packet_id(r)
    properties = props.decode(r, props.SUBSCRIBE) if version == p.MQTT5 else {}
    subs: list[tuple[str, p.SubOptions]] = []
    while r.remaining():
        topic = r.string()
        subs.append((topic, _sub_options(r.byte(), version)))
    if not subs:
        raise ProtocolError("SUBSCRIBE without a topic filter")  # 3.8.3-3
    if len(properties.get("subscription_identifier", ())) > 1:
        raise ProtocolError("more than one subscription identifier")
    return p.Subscribe(pid, subs, properties)


def _sub_options(b: int, version: int) -> p.SubOptions:
    if b & (0xC0 if version == p.MQTT5 else 0xFC):
        raise MalformedPacket("reserved subscription option bits set")  # 3.8.3-5
    if b & 0x03 == 3:
        raise MalformedPacket("subscription QoS 3")
    if (b >> 4) & 0x03 == 3:
        raise ProtocolError("retain handling 3")
    return p.SubOptions(b & 0x03, bool(b & 0x04), bool(b & 0x08), (b >> 4) & 0x03)


def _decode_suback(r: Reader, flags: int, version: int) -> p.SubAck:
    pid = _packet_id(r)
    properties = props.decode(r, props.SUBACK) if version == p.MQTT5 else {}
    return p.SubAck(pid, list(r.rest()), properties)


def _decode_unsubscribe(r: Reader, flags: int, version: int) -> p.Unsubscribe:
    pid = _packet_id(r)
    properties = props.decode(r, props.UNSUBSCRIBE) if version == p.MQTT5 else {}
    filters = []
    while r.remaining():
        filters.append(r.string())
    if not filters:
        raise ProtocolError("UNSUBSCRIBE without a topic filter")  # 3.10.3-2
    return p.Unsubscribe(pid, filters, properties)


def _decode_unsuback(r: Reader, flags: int, version: int) -> p.UnsubAck:
    pid = _packet_id(r)
    if version != p.MQTT5:
        return p.UnsubAck(pid)
    properties = props.decode(r, props.UNSUBACK)
    return p.UnsubAck(pid, list(r.rest()), properties)


def _decode_empty(cls: Any) -> Callable[[Reader, int, int], Any]:
    return lambda r, flags, version: cls()


def _reason_decoder(cls: Any, kind: int) -> Callable[[Reader, int, int], Any]:
    def decode(r: Reader, flags: int, version: int) -> Any:
        if version != p.MQTT5 or not r.remaining():
            return cls()
        code = r.byte()
        return cls(code, props.decode(r, kind) if r.remaining() else {})
    return decode


_DECODERS: dict[int, Callable[[Reader, int, int], Any]] = {
    p.CONNECT: _decode_connect,
    p.CONNACK: _decode_connack,
    p.PUBLISH: _decode_publish,
    p.PUBACK: _ack_decoder(p.PubAck, props.PUBACK),
    p.PUBREC: _ack_decoder(p.PubRec, props.PUBREC),
    p.PUBREL: _ack_decoder(p.PubRel, props.PUBREL),
    p.PUBCOMP: _ack_decoder(p.PubComp, props.PUBCOMP),
    p.SUBSCRIBE: _decode_subscribe,
    p.SUBACK: _decode_suback,
    p.UNSUBSCRIBE: _decode_unsubscribe,
    p.UNSUBACK: _decode_unsuback,
    p.PINGREQ: _decode_empty(p.PingReq),
    p.PINGRESP: _decode_empty(p.PingResp),
    p.DISCONNECT: _reason_decoder(p.Disconnect, props.DISCONNECT),
    p.AUTH: _reason_decoder(p.Auth, props.AUTH),
}


# -- encoding -------------------------------------------------------------------------------
def encode_packet(packet: p.Packet, version: int = p.MQTT311) -> bytes:
    first, body = _ENCODERS[packet.type](packet, version)
    return bytes((first,)) + encode_varint(len(body)) + body


def _props(packet: Any, version: int) -> bytes:
    return props.encode(packet.properties) if version == p.MQTT5 else b""


def _encode_connect(c: p.Connect, version: int) -> tuple[int, bytes]:
    level = c.protocol_level
    flags = (0x02 if c.clean_start else 0) | (0x80 if c.username is not None else 0) \
        | (0x40 if c.password is not None else 0)
    if c.will is not None:
        flags |= 0x04 | (c.will.qos << 3) | (0x20 if c.will.retain else 0)
    parts = [encode_string(_PROTOCOL_NAMES.get(level, c.protocol_name)), bytes((level, flags)),
             struct.pack(">H", c.keepalive), _props(c, level), encode_string(c.client_id)]
    if c.will is not None:
        if level == p.MQTT5:
            parts.append(props.encode(c.will.properties))
        parts += [encode_string(c.will.topic), encode_binary(c.will.payload)]
    if c.username is not None:
        parts.append(encode_string(c.username))
    if c.password is not None:
        parts.append(encode_binary(c.password))
    return 0x10, b"".join(parts)


def _encode_connack(a: p.ConnAck, version: int) -> tuple[int, bytes]:
    return 0x20, bytes((int(a.session_present), a.reason_code)) + _props(a, version)


def encode_publish(topic: str, payload: bytes, qos: int, retain: bool, dup: bool,
                   packet_id: int, version: int, properties: dict[str, Any] | None) -> bytes:
    """A PUBLISH without building a `Publish` first (the delivery hot path)."""
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    raw = topic.encode("utf-8")
    parts = [struct.pack(">H", len(raw)), raw]
    if qos:
        parts.append(struct.pack(">H", packet_id))
    if version == p.MQTT5:
        parts.append(props.encode(properties))
    head = b"".join(parts)
    return bytes((first,)) + encode_varint(len(head) + len(payload)) + head + payload


def _encode_publish(m: p.Publish, version: int) -> tuple[int, bytes]:
    first = 0x30 | (0x08 if m.dup else 0) | (m.qos << 1) | (1 if m.retain else 0)
    pid = struct.pack(">H", m.packet_id) if m.qos else b""
    return first, encode_string(m.topic) + pid + _props(m, version) + m.payload


def _encode_ack(first: int) -> Callable[[Any, int], tuple[int, bytes]]:
    def encode(a: Any, version: int) -> tuple[int, bytes]:
        pid = struct.pack(">H", a.packet_id)
        if version != p.MQTT5 or (not a.reason_code and not a.properties):
            return first, pid  # 5.0 3.4.2.1: reason 0 without properties may be omitted
        if not a.properties:
            return first, pid + bytes((a.reason_code,))
        return first, pid + bytes((a.reason_code,)) + props.encode(a.properties)
    return encode


def _encode_subscribe(s: p.Subscribe, version: int) -> tuple[int, bytes]:
    parts = [struct.pack(">H", s.packet_id), _props(s, version)]
    for topic, o in s.subscriptions:
        opts = o.qos
        if version == p.MQTT5:
            opts |= (0x04 if o.no_local else 0) | (0x08 if o.retain_as_published else 0) \
                | (o.retain_handling << 4)
        parts += [encode_string(topic), bytes((opts,))]
    return 0x82, b"".join(parts)


def _encode_suback(a: p.SubAck, version: int) -> tuple[int, bytes]:
    return 0x90, struct.pack(">H", a.packet_id) + _props(a, version) + bytes(a.reason_codes)


def _encode_unsubscribe(u: p.Unsubscribe, version: int) -> tuple[int, bytes]:
    return 0xA2, struct.pack(">H", u.packet_id) + _props(u, version) + b"".join(
        encode_string(t) for t in u.topic_filters)


def _encode_unsuback(a: p.UnsubAck, version: int) -> tuple[int, bytes]:
    body = struct.pack(">H", a.packet_id)
    if version == p.MQTT5:
        body += props.encode(a.properties) + bytes(a.reason_codes)
    return 0xB0, body


def _encode_reason(first: int) -> Callable[[Any, int], tuple[int, bytes]]:
    def encode(d: Any, version: int) -> tuple[int, bytes]:
        if version != p.MQTT5 or (not d.reason_code and not d.properties):
            return first, b""
        return first, bytes((d.reason_code,)) + props.encode(d.properties)
    return encode


_ENCODERS: dict[int, Callable[[Any, int], tuple[int, bytes]]] = {
    p.CONNECT: _encode_connect,
    p.CONNACK: _encode_connack,
    p.PUBLISH: _encode_publish,
    p.PUBACK: _encode_ack(0x40),
    p.PUBREC: _encode_ack(0x50),
    p.PUBREL: _encode_ack(0x62),
    p.PUBCOMP: _encode_ack(0x70),
    p.SUBSCRIBE: _encode_subscribe,
    p.SUBACK: _encode_suback,
    p.UNSUBSCRIBE: _encode_unsubscribe,
    p.UNSUBACK: _encode_unsuback,
    p.PINGREQ: lambda a, v: (0xC0, b""),
    p.PINGRESP: lambda a, v: (0xD0, b""),
    p.DISCONNECT: _encode_reason(0xE0),
    p.AUTH: _encode_reason(0xF0),
}
