"""The MQTT bytes layer: every packet type round-trips on 3.1.1 and 5.0, any split of the
input gives the same packets, malformed input raises an MQTTError (never anything else)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amqpbroker.mqtt import packets as p
from amqpbroker.mqtt.codec import decode_packet, encode_packet
from amqpbroker.mqtt.errors import (
    MalformedPacket, MQTTError, PacketTooLarge, ProtocolError, UnsupportedProtocolVersion)
from amqpbroker.mqtt.reader import PacketReader


def roundtrip(packet, version):
    data = encode_packet(packet, version)
    [(first, body)] = list(PacketReader().feed(data))
    return decode_packet(first, body, version)


# -- known bytes ------------------------------------------------------------------------------
CONNECT_311 = bytes.fromhex("101000044d5154540402003c0004636c6931")  # clean, keepalive 60, "cli1"


def test_connect_311_bytes():
    [(first, body)] = list(PacketReader().feed(CONNECT_311))
    c = decode_packet(first, body)
    assert c == p.Connect(client_id="cli1", protocol_level=4, clean_start=True, keepalive=60)
    assert encode_packet(c, 4) == CONNECT_311


def test_connect_5_with_will_user_password_and_properties():
    c = p.Connect(client_id="dev", protocol_level=5, clean_start=False, keepalive=30,
                  will=p.Will("last/will", b"bye", 1, True,
                              {"will_delay_interval": 5, "content_type": "text/plain"}),
                  username="vh:user", password=b"secret",
                  properties={"session_expiry_interval": 3600, "receive_maximum": 10,
                              "user_property": [("a", "1"), ("a", "2")]})
    assert roundtrip(c, 5) == c


def test_publish_qos1_5_bytes():
    m = p.Publish("a/b", b"hi", qos=1, packet_id=7,
                  properties={"message_expiry_interval": 9, "topic_alias": 2})
    data = encode_packet(m, 5)
    assert data[0] == 0x32 and data[2:7] == b"\x00\x03a/b" and data[7:9] == b"\x00\x07"
    assert roundtrip(m, 5) == m


def test_puback_5_reason_omitted_when_success():
    assert encode_packet(p.PubAck(5), 5) == b"\x40\x02\x00\x05"
    assert encode_packet(p.PubAck(5, 0x10), 5) == b"\x40\x03\x00\x05\x10"
    assert decode_packet(0x40, b"\x00\x05\x10", 5) == p.PubAck(5, 0x10)
    assert decode_packet(0x40, b"\x00\x05", 5) == p.PubAck(5, 0)


def test_disconnect_and_ping():
    assert encode_packet(p.Disconnect(), 4) == b"\xe0\x00"
    assert encode_packet(p.Disconnect(0x8E), 5) == b"\xe0\x02\x8e\x00"
    assert decode_packet(0xE0, b"", 5) == p.Disconnect()
    assert encode_packet(p.PingResp(), 4) == b"\xd0\x00"
    assert decode_packet(0xC0, b"", 4) == p.PingReq()


def test_subscribe_options_5():
    s = p.Subscribe(3, [("a/+", p.SubOptions(1, True, True, 2)), ("$share/g/b/#", p.SubOptions())],
                    {"subscription_identifier": [12]})
    assert roundtrip(s, 5) == s


def test_remaining_length_boundaries():
    for n in (0, 127, 128, 16383, 16384, 2097151, 2097152):
        m = p.Publish("t", b"x" * n)
        data = encode_packet(m, 4)
        header_len = 2 + (n + 3 >= 128) + (n + 3 >= 16384) + (n + 3 >= 2097152)
        assert len(data) == header_len + 3 + n
        assert roundtrip(m, 4) == m


# -- malformed input --------------------------------------------------------------------------
@pytest.mark.parametrize("first,body,version,error", [
    (0x00, b"", 4, MalformedPacket),                     # reserved type 0
    (0xF0, b"", 4, MalformedPacket),                     # AUTH does not exist in 3.1.1
    (0xC1, b"", 4, MalformedPacket),                     # PINGREQ with flags
    (0x60, b"\x00\x01", 4, MalformedPacket),             # PUBREL must carry flags 0010
    (0x80, b"\x00\x01\x00\x01a\x00", 4, MalformedPacket),  # SUBSCRIBE flags 0000
    (0x36, b"\x00\x01a\x00\x01", 4, MalformedPacket),    # QoS 3
    (0x38, b"\x00\x01a", 4, MalformedPacket),            # DUP on QoS 0
    (0x32, b"\x00\x01a\x00\x00", 4, MalformedPacket),    # packet id 0
    (0x30, b"\x00\x02\xff\xfe", 4, MalformedPacket),     # invalid UTF-8 topic
    (0x30, b"\x00\x02a\x00", 4, MalformedPacket),        # U+0000 in a topic
    (0x30, b"\x00\x05ab", 4, MalformedPacket),           # string longer than the packet
    (0xC0, b"\x00", 4, MalformedPacket),                 # trailing bytes
    (0x82, b"\x00\x01", 4, ProtocolError),               # SUBSCRIBE without filters
    (0x82, b"\x00\x01\x00\x01a\x04", 4, MalformedPacket),  # 3.1.1 reserved option bits
    (0x82, b"\x00\x01\x00\x00\x01a\x30", 5, ProtocolError),  # retain handling 3
    (0x82, b"\x00\x01\x00\x00\x01a\xc0", 5, MalformedPacket),  # 5.0 reserved option bits
    (0xA2, b"\x00\x01", 4, ProtocolError),               # UNSUBSCRIBE without filters
    (0x30, b"\x00\x01a\x02\x23\x00", 5, MalformedPacket),  # property shorter than its type
    (0x30, b"\x00\x01a\x02\x11\x00", 5, MalformedPacket),  # session expiry not in PUBLISH
    (0x30, b"\x00\x01a\x06\x23\x00\x01\x23\x00\x02", 5, ProtocolError),  # topic alias twice
    (0x30, b"\x00\x01a\x02\x01\x02", 5, ProtocolError),  # payload format indicator 2
    (0x30, b"\x00\x01a\x05", 5, MalformedPacket),        # property length past the end
    (0x30, b"\x00\x01a\x02\x7f\x00", 5, MalformedPacket),  # unknown property id
])
def test_malformed(first, body, version, error):
    with pytest.raises(error):
        decode_packet(first, body, version)


def _connect_body(flags: int, level: int = 4, name: bytes = b"MQTT", tail: bytes = b"\x00\x00") -> bytes:
    return len(name).to_bytes(2, "big") + name + bytes((level, flags)) + b"\x00\x3c" + tail


@pytest.mark.parametrize("body", [
    _connect_body(0x03),                       # reserved flag
    _connect_body(0x18),                       # will QoS 3 (and no will flag)
    _connect_body(0x08),                       # will QoS without will
    _connect_body(0x20),                       # will retain without will
    _connect_body(0x40),                       # password without user name (3.1.1)
    _connect_body(0x02, name=b"MQTX"),         # wrong protocol name
    _connect_body(0x02, tail=b"\x00\x00\x00"),  # trailing byte
])
def test_malformed_connect(body):
    with pytest.raises(MalformedPacket):
        decode_packet(0x10, body)


def test_unsupported_level_names_it():
    with pytest.raises(UnsupportedProtocolVersion) as info:
        decode_packet(0x10, _connect_body(0x02, level=6))
    assert info.value.level == 6


def test_password_without_user_name_is_fine_on_5():
    c = decode_packet(0x10, _connect_body(0x42, level=5, tail=b"\x00\x00\x00\x00\x02pw"))
    assert c.username is None and c.password == b"pw"


def test_remaining_length_of_five_bytes_is_malformed():
    with pytest.raises(MalformedPacket):
        list(PacketReader().feed(b"\x30\xff\xff\xff\xff\x01"))


def test_packet_too_large_is_refused_from_its_header_alone():
    reader = PacketReader(max_packet_size=1024)
    with pytest.raises(PacketTooLarge):
        list(reader.feed(b"\x30\xff\xff\xff\x7f"))  # 256 MiB announced, 5 bytes sent
    assert reader.buffered < 16
    ok = PacketReader(max_packet_size=1024)
    assert len(list(ok.feed(encode_packet(p.Publish("t", b"x" * 1000))))) == 1


def test_packets_before_an_error_are_delivered_first():
    data = encode_packet(p.PingReq()) + b"\x30\xff\xff\xff\xff\x01"
    got = []
    with pytest.raises(MalformedPacket):
        for item in PacketReader().feed(data):
            got.append(item)
    assert got == [(0xC0, b"")]


# -- every split --------------------------------------------------------------------------------
STREAM_PACKETS = [
    p.Connect(client_id="c", protocol_level=5, properties={"session_expiry_interval": 10}),
    p.Publish("a/b", b"x" * 300, qos=1, packet_id=1, properties={"user_property": [("k", "v")]}),
    p.PubRel(1), p.Subscribe(2, [("a/#", p.SubOptions(2))]), p.PingReq(), p.Disconnect(0x04),
]


def test_every_split_gives_the_same_packets():
    stream = b"".join(encode_packet(x, 5) for x in STREAM_PACKETS)
    for cut in range(len(stream) + 1):
        reader = PacketReader()
        items = list(reader.feed(stream[:cut])) + list(reader.feed(stream[cut:]))
        assert [decode_packet(f, b, 5) for f, b in items] == STREAM_PACKETS
        assert reader.buffered == 0


def test_byte_at_a_time():
    stream = b"".join(encode_packet(x, 5) for x in STREAM_PACKETS)
    reader = PacketReader()
    items = [i for b in stream for i in reader.feed(bytes((b,)))]
    assert [decode_packet(f, b, 5) for f, b in items] == STREAM_PACKETS


# -- hypothesis -------------------------------------------------------------------------------
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
pid = st.integers(1, 65535)
u32 = st.integers(0, 2**32 - 1)
user_props = st.lists(st.tuples(text, text), max_size=3)


def _props5(allowed):
    return st.fixed_dictionaries({}, optional={k: v for k, v in {
        "message_expiry_interval": u32, "content_type": text, "response_topic": text,
        "correlation_data": st.binary(max_size=20), "topic_alias": st.integers(1, 65535),
        "payload_format_indicator": st.integers(0, 1), "user_property": user_props.filter(bool),
        "reason_string": text, "session_expiry_interval": u32,
        "receive_maximum": st.integers(1, 65535), "subscription_identifier":
        st.lists(st.integers(1, 268_435_455), min_size=1, max_size=1),
    }.items() if k in allowed})


PUB_PROPS = {"message_expiry_interval", "content_type", "response_topic", "correlation_data",
             "topic_alias", "payload_format_indicator", "user_property", "subscription_identifier"}
ACK_PROPS = {"reason_string", "user_property"}


@st.composite
def any_packet(draw, version):
    five = version == 5
    kind = draw(st.sampled_from(range(1, 16 if five else 15)))
    P = (lambda allowed: draw(_props5(allowed))) if five else (lambda allowed: {})
    if kind == p.CONNECT:
        will = None
        if draw(st.booleans()):
            will = p.Will(draw(text), draw(st.binary(max_size=30)), draw(st.integers(0, 2)),
                          draw(st.booleans()), P(PUB_PROPS - {"topic_alias", "subscription_identifier"}))
        user = draw(st.none() | text)
        pw = draw(st.none() | st.binary(max_size=10)) if (five or user is not None) else None
        return p.Connect(draw(text), version, "MQTT", draw(st.booleans()), draw(st.integers(0, 65535)),
                         will, user, pw, P({"session_expiry_interval", "receive_maximum", "user_property"}))
    if kind == p.CONNACK:
        return p.ConnAck(draw(st.booleans()), draw(st.integers(0, 255)), P(ACK_PROPS))
    if kind == p.PUBLISH:
        qos = draw(st.integers(0, 2))
        return p.Publish(draw(text), draw(st.binary(max_size=200)), qos, draw(st.booleans()),
                         draw(st.booleans()) if qos else False, draw(pid) if qos else 0, P(PUB_PROPS))
    if kind in (p.PUBACK, p.PUBREC, p.PUBREL, p.PUBCOMP):
        cls = {p.PUBACK: p.PubAck, p.PUBREC: p.PubRec, p.PUBREL: p.PubRel, p.PUBCOMP: p.PubComp}[kind]
        return cls(draw(pid), draw(st.integers(0, 255)) if five else 0, P(ACK_PROPS))
    if kind == p.SUBSCRIBE:
        opts = st.builds(p.SubOptions, st.integers(0, 2), st.booleans(), st.booleans(),
                         st.integers(0, 2)) if five else st.builds(p.SubOptions, st.integers(0, 2))
        return p.Subscribe(draw(pid), draw(st.lists(st.tuples(text, opts), min_size=1, max_size=4)),
                           P({"subscription_identifier", "user_property"}))
    if kind == p.SUBACK:
        return p.SubAck(draw(pid), draw(st.lists(st.integers(0, 255), max_size=4)), P(ACK_PROPS))
    if kind == p.UNSUBSCRIBE:
        return p.Unsubscribe(draw(pid), draw(st.lists(text, min_size=1, max_size=4)), P({"user_property"}))
    if kind == p.UNSUBACK:
        return p.UnsubAck(draw(pid), draw(st.lists(st.integers(0, 255), max_size=4)) if five else [],
                          P(ACK_PROPS))
    if kind == p.PINGREQ:
        return p.PingReq()
    if kind == p.PINGRESP:
        return p.PingResp()
    if kind == p.DISCONNECT:
        return p.Disconnect(draw(st.integers(0, 255)) if five else 0,
                            P({"reason_string", "session_expiry_interval", "user_property"}))
    return p.Auth(draw(st.integers(0, 255)), P({"reason_string", "user_property"}))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([4, 5]).flatmap(lambda v: st.tuples(st.just(v), any_packet(v))))
def test_roundtrip_every_packet_type(vp):
    version, packet = vp
    assert roundtrip(packet, version) == packet


@settings(max_examples=100, deadline=None)
@given(st.lists(any_packet(5), min_size=1, max_size=5), st.data())
def test_random_splits(packets, data):
    stream = b"".join(encode_packet(x, 5) for x in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader, items, prev = PacketReader(), [], 0
    for cut in cuts + [len(stream)]:
        items += list(reader.feed(stream[prev:cut]))
        prev = cut
    assert [decode_packet(f, b, 5) for f, b in items] == packets


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([4, 5]))
def test_fuzz_raises_only_mqtt_errors(data, version):
    try:
        for first, body in PacketReader(4096).feed(data):
            decode_packet(first, body, version)
    except MQTTError:
        pass


@settings(max_examples=300, deadline=None)
@given(any_packet(5), st.integers(0, 10_000), st.integers(0, 255))
def test_fuzz_mutated_valid_packets(packet, where, value):
    data = bytearray(encode_packet(packet, 5))
    data[where % len(data)] = value
    try:
        for first, body in PacketReader(4096).feed(bytes(data)):
            decode_packet(first, body, 5)
    except MQTTError:
        pass
