"""Byte-identity of the hand-written hot-path codecs with pamqp.

Every encoder is compared with `pamqp.frame.marshal` of the equivalent pamqp objects and
every decoder with `pamqp.frame.unmarshal` of pamqp-marshalled input.  Two pamqp quirks
shape the comparisons:

* pamqp treats `longlong` as signed, so delivery tags >= 2**63 are fed to pamqp as their
  two's-complement negative (same bytes) and read back modulo 2**64.
* pamqp's Basic.* constructors and marshal() validate exchange names against a narrow
  regex; the spec allows any shortstr on the wire, so the comparison objects come from
  subclasses with validation switched off.
"""

from __future__ import annotations

import datetime
import os
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import base, commands, frame, header, heartbeat

from amqpbroker.protocol import fastcodec as fc
from amqpbroker.protocol import properties as pr

Basic = commands.Basic

FAST = settings(max_examples=150, deadline=None)
BIG = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- pamqp helpers


class _Publish(Basic.Publish):
    def validate(self) -> None:  # spec allows any shortstr; pamqp checks a regex
        pass


class _Deliver(Basic.Deliver):
    def validate(self) -> None:
        pass


class _GetOk(Basic.GetOk):
    def validate(self) -> None:
        pass


class _Return(Basic.Return):
    def validate(self) -> None:
        pass


def _signed(tag: int) -> int:
    """pamqp packs longlong as signed '>q': same bytes for the two's-complement value."""
    return tag - 2**64 if tag >= 2**63 else tag


def _payload(data: bytes) -> bytes:
    """Method frame payload: between the 7-byte frame header and the frame-end octet."""
    return data[7:-1]


def _pamqp_content(channel: int, props: Basic.Properties, body: bytes, frame_max: int) -> bytes:
    out = [frame.marshal(header.ContentHeader(0, len(body), props), channel)]
    step = frame_max - 8
    out += [
        frame.marshal(pbody.ContentBody(body[i : i + step]), channel)
        for i in range(0, len(body), step)
    ]
    return b"".join(out)


def _copy_props(p: Basic.Properties, **changes: object) -> Basic.Properties:
    values = {name: getattr(p, name) for name in p.attributes()}
    values.update(changes)
    return Basic.Properties(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- strategies

UTF8 = st.characters(codec="utf-8")
SHORTSTR = st.one_of(
    st.text(UTF8, max_size=63),  # at most 4 bytes a code point: always <= 252 bytes
    st.text(st.characters(codec="ascii"), min_size=200, max_size=255),
    st.text(UTF8, min_size=60, max_size=255).filter(lambda s: len(s.encode()) <= 255),
)
TAGS = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]),
)
CHANNELS = st.integers(0, 65535)
TIMESTAMPS = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2),
    max_value=datetime.datetime(2100, 1, 1),
    timezones=st.just(datetime.UTC),
).map(lambda d: d.replace(microsecond=0))
HEADER_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(UTF8, max_size=40),
    st.floats(width=32, allow_nan=False),
    st.binary(max_size=20).map(bytearray),
    TIMESTAMPS,
)
HEADER_KEYS = st.text(UTF8, max_size=20)
HEADERS = st.dictionaries(
    HEADER_KEYS,
    st.recursive(
        HEADER_SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(HEADER_KEYS, inner, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=5,
)
EXPIRATION = st.one_of(st.integers(0, 10**10).map(str), SHORTSTR)


@st.composite
def properties(draw: st.DrawFn) -> Basic.Properties:
    """Basic.Properties with a random subset of fields set."""

    def maybe(strategy: st.SearchStrategy) -> object:
        return draw(st.none() | strategy)

    return Basic.Properties(
        content_type=maybe(SHORTSTR),
        content_encoding=maybe(SHORTSTR),
        headers=maybe(HEADERS),
        delivery_mode=maybe(st.sampled_from([1, 2])),
        priority=maybe(st.integers(0, 9)),
        correlation_id=maybe(SHORTSTR),
        reply_to=maybe(SHORTSTR),
        expiration=maybe(EXPIRATION),
        message_id=maybe(SHORTSTR),
        timestamp=maybe(TIMESTAMPS),
        message_type=maybe(SHORTSTR),
        user_id=maybe(SHORTSTR),
        app_id=maybe(SHORTSTR),
    )


@st.composite
def body_and_frame_max(draw: st.DrawFn) -> tuple[bytes, int]:
    """A body of 0..300 KB with a frame_max in [4096, 131072], biased to chunk edges."""
    frame_max = draw(st.integers(4096, 131072))
    chunk = frame_max - 8
    size = draw(
        st.one_of(
            st.integers(0, 64),
            st.integers(0, 300 * 1024),
            st.tuples(st.integers(1, 2), st.integers(-1, 1)).map(lambda kd: kd[0] * chunk + kd[1]),
        )
    )
    # Built from a seed, not st.binary: generating 300 KB through hypothesis is slow.
    seed = draw(st.integers(0, 2**32 - 1))
    return random.Random(seed).randbytes(size), frame_max


# --------------------------------------------------------------------------- encoders


@pytest.mark.skipif(not os.environ.get("AMQPBROKER_EXPECT_COMPILED"),
                    reason="only where the install must have built it (.ci/run)")
def test_the_install_built_the_compiled_encoder():
    assert fc.encode_deliver is not fc.encode_deliver_python  # protocol/_speedups.pyx


@BIG
@given(
    CHANNELS, SHORTSTR, TAGS, st.booleans(), SHORTSTR, SHORTSTR, properties(), body_and_frame_max()
)
def test_encode_deliver_matches_pamqp(
    channel: int,
    ctag: str,
    tag: int,
    redelivered: bool,
    exchange: str,
    rk: str,
    props: Basic.Properties,
    bf: tuple[bytes, int],
) -> None:
    body, frame_max = bf
    expected = frame.marshal(
        _Deliver(ctag, _signed(tag), redelivered, exchange, rk), channel
    ) + _pamqp_content(channel, props, body, frame_max)
    args = (channel, ctag, tag, redelivered, exchange, rk, props.marshal(), body, frame_max)
    assert fc.encode_deliver(*args) == expected  # compiled, where the install built it
    assert fc.encode_deliver_python(*args) == expected
    # a body that is not `bytes` (the compiled one takes only bytes) is left to Python's
    assert fc.encode_deliver(*args[:7], bytearray(body), frame_max) == expected


@BIG
@given(
    CHANNELS,
    TAGS,
    st.booleans(),
    SHORTSTR,
    SHORTSTR,
    st.integers(0, 2**32 - 1),
    properties(),
    body_and_frame_max(),
)
def test_encode_get_ok_matches_pamqp(
    channel: int,
    tag: int,
    redelivered: bool,
    exchange: str,
    rk: str,
    count: int,
    props: Basic.Properties,
    bf: tuple[bytes, int],
) -> None:
    body, frame_max = bf
    expected = frame.marshal(
        _GetOk(_signed(tag), redelivered, exchange, rk, count), channel
    ) + _pamqp_content(channel, props, body, frame_max)
    got = fc.encode_get_ok(
        channel, tag, redelivered, exchange, rk, count, props.marshal(), body, frame_max
    )
    assert got == expected


@BIG
@given(
    CHANNELS,
    st.integers(0, 65535),
    SHORTSTR,
    SHORTSTR,
    SHORTSTR,
    properties(),
    body_and_frame_max(),
)
def test_encode_return_matches_pamqp(
    channel: int,
    code: int,
    text: str,
    exchange: str,
    rk: str,
    props: Basic.Properties,
    bf: tuple[bytes, int],
) -> None:
    body, frame_max = bf
    expected = frame.marshal(_Return(code, text, exchange, rk), channel) + _pamqp_content(
        channel, props, body, frame_max
    )
    got = fc.encode_return(channel, code, text, exchange, rk, props.marshal(), body, frame_max)
    assert got == expected


@BIG
@given(CHANNELS, properties(), body_and_frame_max())
def test_encode_content_matches_pamqp(
    channel: int, props: Basic.Properties, bf: tuple[bytes, int]
) -> None:
    body, frame_max = bf
    got = fc.encode_content(channel, props.marshal(), body, frame_max)
    assert got == _pamqp_content(channel, props, body, frame_max)


@FAST
@given(CHANNELS, TAGS, st.booleans())
def test_encode_ack_matches_pamqp(channel: int, tag: int, multiple: bool) -> None:
    expected = frame.marshal(Basic.Ack(_signed(tag), multiple), channel)
    assert fc.encode_ack(channel, tag, multiple) == expected


@FAST
@given(CHANNELS, TAGS, st.booleans(), st.booleans())
def test_encode_nack_matches_pamqp(channel: int, tag: int, multiple: bool, requeue: bool) -> None:
    expected = frame.marshal(Basic.Nack(_signed(tag), multiple, requeue), channel)
    assert fc.encode_nack(channel, tag, multiple, requeue) == expected


def test_encode_nack_requeue_defaults_to_false() -> None:
    assert fc.encode_nack(1, 7, True) == frame.marshal(Basic.Nack(7, True, False), 1)


@pytest.mark.parametrize(
    "method",
    [
        commands.Connection.Tune(2047, 131072, 60),
        commands.Connection.Close(320, "CONNECTION_FORCED - bye", 0, 0),
        commands.Channel.OpenOk(),
        commands.Queue.DeclareOk("amq.gen-xyz", 12, 3),
        Basic.ConsumeOk("ctag-1"),
        Basic.QosOk(),
        Basic.GetEmpty(),
        commands.Confirm.SelectOk(),
    ],
    ids=lambda m: m.name,
)
@FAST
@given(channel=CHANNELS)
def test_encode_method_matches_pamqp(method: base.Frame, channel: int) -> None:
    assert fc.encode_method(channel, method) == frame.marshal(method, channel)


def test_heartbeat_frame() -> None:
    assert fc.HEARTBEAT_FRAME == heartbeat.Heartbeat.marshal()
    assert isinstance(frame.unmarshal(fc.HEARTBEAT_FRAME)[2], heartbeat.Heartbeat)


def test_empty_body_has_no_body_frame() -> None:
    props = Basic.Properties(delivery_mode=2).marshal()
    data = fc.encode_deliver(1, "c", 1, False, "", "q", props, b"", 4096)
    used, _, deliver = frame.unmarshal(data)
    assert isinstance(deliver, Basic.Deliver)
    used2, _, content_header = frame.unmarshal(data[used:])
    assert isinstance(content_header, header.ContentHeader)
    assert content_header.body_size == 0
    assert used + used2 == len(data)


def test_frame_max_zero_means_unlimited() -> None:
    body = bytes(200_000)
    data = fc.encode_content(3, b"\x00\x00", body, 0)
    assert data == _pamqp_content(3, Basic.Properties(), body, len(body) + 8)


@pytest.mark.parametrize("frame_max", [1, 8])
def test_frame_max_too_small_raises(frame_max: int) -> None:
    with pytest.raises(ValueError):
        fc.encode_content(1, b"\x00\x00", b"x", frame_max)


def test_shortstr_too_long_raises() -> None:
    with pytest.raises(ValueError):
        fc.encode_deliver(1, "c", 1, False, "", "é" * 128, b"\x00\x00", b"", 4096)
    with pytest.raises(ValueError):
        fc.encode_shortstr("x" * 256)
    assert fc.encode_shortstr("x" * 255) == b"\xff" + b"x" * 255


# --------------------------------------------------------------------------- decoders


@FAST
@given(SHORTSTR, SHORTSTR, st.booleans(), st.booleans(), st.integers(0, 65535))
def test_decode_publish_matches_pamqp(
    exchange: str, rk: str, mandatory: bool, immediate: bool, ticket: int
) -> None:
    data = frame.marshal(_Publish(ticket, exchange, rk, mandatory, immediate), 1)
    method = frame.unmarshal(data)[2]
    got = fc.decode_publish(_payload(data))
    assert got == (method.exchange, method.routing_key, method.mandatory, method.immediate)
    assert got == (exchange, rk, mandatory, immediate)


@FAST
@given(TAGS, st.booleans())
def test_decode_ack_matches_pamqp(tag: int, multiple: bool) -> None:
    data = frame.marshal(Basic.Ack(_signed(tag), multiple), 1)
    method = frame.unmarshal(data)[2]
    assert fc.decode_ack(_payload(data)) == (method.delivery_tag % 2**64, method.multiple)
    assert fc.decode_ack(_payload(data)) == (tag, multiple)


@FAST
@given(TAGS, st.booleans(), st.booleans())
def test_decode_nack_matches_pamqp(tag: int, multiple: bool, requeue: bool) -> None:
    data = frame.marshal(Basic.Nack(_signed(tag), multiple, requeue), 1)
    method = frame.unmarshal(data)[2]
    expected = (method.delivery_tag % 2**64, method.multiple, method.requeue)
    assert fc.decode_nack(_payload(data)) == expected == (tag, multiple, requeue)


@FAST
@given(TAGS, st.booleans())
def test_decode_reject_matches_pamqp(tag: int, requeue: bool) -> None:
    data = frame.marshal(Basic.Reject(_signed(tag), requeue), 1)
    method = frame.unmarshal(data)[2]
    assert fc.decode_reject(_payload(data)) == (method.delivery_tag % 2**64, method.requeue)
    assert fc.decode_reject(_payload(data)) == (tag, requeue)


@FAST
@given(properties(), st.integers(0, 2**64 - 1))
def test_decode_content_header_matches_pamqp(props: Basic.Properties, body_size: int) -> None:
    data = frame.marshal(header.ContentHeader(0, body_size, props), 1)
    ch = frame.unmarshal(data)[2]
    class_id, weight, size, raw = fc.decode_content_header(_payload(data))
    assert (class_id, weight, size) == (ch.class_id, ch.weight, ch.body_size)
    assert raw == props.marshal()
    assert pr.decode_properties(raw) == ch.properties


def test_decode_content_header_keeps_weight_and_class() -> None:
    # pamqp always writes class 60 / weight 0; the decoder must report what it was sent.
    payload = struct.pack(">HHQ", 70, 3, 5) + b"\x00\x00"
    assert fc.decode_content_header(payload) == (70, 3, 5, b"\x00\x00")


def test_decoders_ignore_trailing_bytes_like_pamqp() -> None:
    payload = _payload(frame.marshal(Basic.Ack(5, True), 1)) + b"junk"
    assert fc.decode_ack(payload) == (5, True)


def test_decode_publish_invalid_utf8_raises() -> None:
    payload = b"\x00\x3c\x00\x28\x00\x00" + b"\x01\xff" + b"\x00" + b"\x00"
    with pytest.raises(ValueError):
        fc.decode_publish(payload)
    payload = b"\x00\x3c\x00\x28\x00\x00" + b"\x00" + b"\x02\xc3\x28" + b"\x00"
    with pytest.raises(ValueError):
        fc.decode_publish(payload)


def _all_cuts_raise(fn: object, payload: bytes, keep: int = 0) -> None:
    for cut in range(keep, len(payload)):
        with pytest.raises(ValueError):
            fn(payload[:cut])  # type: ignore[operator]


@FAST
@given(SHORTSTR, SHORTSTR, st.booleans(), st.booleans(), TAGS)
def test_truncated_method_payloads_raise(
    exchange: str, rk: str, mandatory: bool, flag: bool, tag: int
) -> None:
    _all_cuts_raise(
        fc.decode_publish, _payload(frame.marshal(_Publish(0, exchange, rk, mandatory, flag), 1))
    )
    _all_cuts_raise(fc.decode_ack, _payload(frame.marshal(Basic.Ack(_signed(tag), flag), 1)))
    _all_cuts_raise(
        fc.decode_nack, _payload(frame.marshal(Basic.Nack(_signed(tag), flag, mandatory), 1))
    )
    _all_cuts_raise(
        fc.decode_reject, _payload(frame.marshal(Basic.Reject(_signed(tag), flag), 1))
    )


def test_truncated_content_header_raises() -> None:
    payload = _payload(frame.marshal(header.ContentHeader(0, 10, Basic.Properties()), 1))
    assert len(payload) == 14
    _all_cuts_raise(fc.decode_content_header, payload)


# --------------------------------------------------------------------------- properties


@FAST
@given(properties())
def test_scan_properties_matches_decode(props: Basic.Properties) -> None:
    raw = props.marshal()
    decoded = pr.decode_properties(raw)
    expected = (decoded.delivery_mode or 0, decoded.priority or 0, decoded.expiration)
    assert pr.scan_properties(raw) == expected
    # And decode_properties agrees with pamqp's own content-header decoder.
    data = frame.marshal(header.ContentHeader(0, 0, props), 1)
    assert decoded == frame.unmarshal(data)[2].properties


@FAST
@given(properties())
def test_encode_properties_is_pamqp_marshal(props: Basic.Properties) -> None:
    raw = pr.encode_properties(props)
    assert raw == props.marshal()
    assert pr.encode_properties(pr.decode_properties(raw)) == raw


@settings(max_examples=60, deadline=None)
@given(properties())
def test_truncated_properties_raise(props: Basic.Properties) -> None:
    raw = props.marshal()
    _all_cuts_raise(pr.scan_properties, raw)
    _all_cuts_raise(pr.decode_properties, raw)


def test_scan_properties_absent_values() -> None:
    assert pr.scan_properties(b"\x00\x00") == (0, 0, None)
    raw = Basic.Properties(content_type="text/plain", priority=0).marshal()
    assert pr.scan_properties(raw) == (0, 0, None)


def test_scan_properties_invalid_utf8_expiration_raises() -> None:
    raw = struct.pack(">H", pr.FLAG_EXPIRATION) + b"\x01\xff"
    with pytest.raises(ValueError):
        pr.scan_properties(raw)


def test_properties_with_continuation_flag_words() -> None:
    # Spec 4.2.6.1 allows further flags words (bit 0 = "more follow"); Basic uses none of
    # their bits, but a peer may still send them.  Compare with pamqp's header decoder.
    flags = pr.FLAG_DELIVERY_MODE | pr.FLAG_EXPIRATION | pr.FLAG_CONTINUATION
    raw = struct.pack(">HHH", flags, 0x0001, 0x0000) + b"\x02" + b"\x03600"
    assert pr.scan_properties(raw) == (2, 0, "600")
    ch = header.ContentHeader()
    ch.unmarshal(struct.pack(">HHQ", 60, 0, 0) + raw)
    assert pr.decode_properties(raw) == ch.properties
    _all_cuts_raise(pr.scan_properties, raw)


def test_decode_properties_bad_timestamp_raises() -> None:
    raw = struct.pack(">HQ", pr.FLAG_TIMESTAMP, 2**64 - 1)
    assert pr.scan_properties(raw) == (0, 0, None)
    with pytest.raises(ValueError):
        pr.decode_properties(raw)


@FAST
@given(properties(), st.none() | HEADERS)
def test_with_headers_matches_pamqp(props: Basic.Properties, headers: dict | None) -> None:
    got = pr.with_headers(props.marshal(), headers)
    assert got == _copy_props(props, headers=headers).marshal()
    if headers is None:
        assert pr.decode_properties(got).headers is None
    assert pr.scan_properties(got) == pr.scan_properties(props.marshal())


@FAST
@given(properties(), st.none() | SHORTSTR)
def test_replace_reply_to_matches_pamqp(props: Basic.Properties, reply_to: str | None) -> None:
    got = pr.replace_reply_to(props.marshal(), reply_to)
    assert got == _copy_props(props, reply_to=reply_to).marshal()
    assert pr.decode_properties(got).reply_to == (reply_to or None)


def test_splice_keeps_other_properties_verbatim() -> None:
    # A header integer sent as 'l' (8 bytes) though it would fit an octet, and a
    # millisecond timestamp: a pamqp decode/re-encode would rewrite both.
    table = b"\x01n" + b"l" + struct.pack(">q", 5)
    flags = pr.FLAG_HEADERS | pr.FLAG_TIMESTAMP
    raw = struct.pack(">HI", flags, len(table)) + table + struct.pack(">Q", 1_700_000_000_123)
    out = pr.replace_reply_to(raw, "amq.rabbitmq.reply-to.abc")
    expected_flags = struct.pack(">H", flags | pr.FLAG_REPLY_TO)
    assert out == (
        expected_flags + raw[2 : 6 + len(table)] + b"\x19amq.rabbitmq.reply-to.abc" + raw[-8:]
    )
    assert pr.replace_reply_to(out, None) == raw
    redone = pr.with_headers(raw, {"x-death": [{"count": 1}]})
    assert redone[-8:] == raw[-8:]
    assert pr.decode_properties(redone).headers == {"x-death": [{"count": 1}]}


def test_with_headers_rejects_truncated_input() -> None:
    with pytest.raises(ValueError):
        pr.with_headers(struct.pack(">H", pr.FLAG_CONTENT_TYPE) + b"\x05ab", {})
