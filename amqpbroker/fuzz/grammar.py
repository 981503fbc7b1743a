"""Hypothesis strategies over the AMQP 0-9-1 frame grammar (spec 4.2.3-4.2.6).

Every method pamqp knows, with every field drawn from boundary values of its wire type
(0, 1, the signed/unsigned edges, the maximum; empty, 255-byte and non-UTF-8 short
strings; lying long-string lengths; nested and malformed tables), on channel 0, 1 or an
unopened one, mixed with content headers (announced body sizes at the edges), bodies,
heartbeats and raw frames of any type. Fields are encoded here, not by pamqp, so that
values a client library would refuse to send can be sent.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st
from pamqp import commands
from pamqp import encode as penc

from amqpbroker.fuzz.oracle import HANDSHAKE  # noqa: F401 (re-exported for callers)

METHODS = sorted(commands.INDEX_MAPPING.items())
_U8 = [0, 1, 127, 128, 254, 255]
_U16 = [0, 1, 2, 2047, 2048, 32767, 32768, 65534, 65535]
_U32 = [0, 1, 4096, 131072, 2**31 - 1, 2**31, 2**32 - 1]
_U64 = [0, 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1]


def frame_bytes(ftype: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes((end,))


def _shortstr() -> st.SearchStrategy[bytes]:
    raw = st.one_of(st.just(b""), st.binary(max_size=8), st.just(b"q" * 255),
                    st.sampled_from([b"amq.gen-x", b"\xff\xfe", b"amq.direct", b"q",
                                     b"amq.rabbitmq.reply-to", b"\xc3"]))
    return raw.map(lambda b: bytes((len(b),)) + b) | st.binary(min_size=1, max_size=4)


def _longstr() -> st.SearchStrategy[bytes]:
    ok = st.binary(max_size=16).map(lambda b: struct.pack(">I", len(b)) + b)
    lying = st.tuples(st.sampled_from(_U32), st.binary(max_size=8)).map(
        lambda t: struct.pack(">I", t[0]) + t[1])
    return ok | lying


_VALUES = st.recursive(
    st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.text(max_size=8),
              st.floats(width=32, allow_nan=False, allow_infinity=False), st.none()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4),
                                                                inner, max_size=3),
    max_leaves=8)


def _table() -> st.SearchStrategy[bytes]:
    valid = st.dictionaries(st.text(max_size=6), _VALUES, max_size=4).map(_encode_table)
    deep = st.integers(1, 80).map(_nested)
    junk = st.binary(max_size=12).map(lambda b: struct.pack(">I", len(b)) + b)
    lying = st.sampled_from(_U32).map(lambda n: struct.pack(">I", n))
    return st.one_of(valid, deep, junk, lying)


def _encode_table(value: dict) -> bytes:
    try:
        return penc.field_table(value)
    except (ValueError, TypeError, OverflowError, struct.error):
        return struct.pack(">I", 0)  # a value pamqp cannot encode: an empty table


def _nested(levels: int) -> bytes:
    body = b""
    for i in range(levels):
        body = b"\x01k" + (b"F" if i % 2 else b"A") + struct.pack(">I", len(body)) + \
            (body if i % 2 else body[2:] if body else b"")
    return struct.pack(">I", len(body)) + body


_FIELD = {
    "octet": st.sampled_from(_U8).map(lambda v: bytes((v,))),
    "short": st.sampled_from(_U16).map(lambda v: struct.pack(">H", v)),
    "long": st.sampled_from(_U32).map(lambda v: struct.pack(">I", v)),
    "longlong": st.sampled_from(_U64).map(lambda v: struct.pack(">Q", v)),
    "timestamp": st.sampled_from(_U64).map(lambda v: struct.pack(">Q", v)),
    "shortstr": _shortstr(),
    "longstr": _longstr(),
    "table": _table(),
}


@st.composite
def method_payload(draw: st.DrawFn, cls: type | None = None) -> bytes:
    if cls is None:
        index, cls = draw(st.sampled_from(METHODS))
    else:
        index = cls.index
    parts = [struct.pack(">I", index)]
    bits: list[bool] = []
    for name in cls.__slots__:
        kind = cls.amqp_type(name)
        if kind == "bit":
            bits.append(draw(st.booleans()))
            continue
        if bits:
            parts.append(bytes((sum(b << i for i, b in enumerate(bits)),)))
            bits = []
        parts.append(draw(_FIELD[kind]))
    if bits:
        parts.append(bytes((sum(b << i for i, b in enumerate(bits)),)))
    payload = b"".join(parts)
    if draw(st.integers(0, 9)) == 0:  # sometimes cut short or padded
        payload = payload[:draw(st.integers(0, len(payload)))] + draw(st.binary(max_size=4))
    return payload


_CHANNELS = st.sampled_from([0, 1, 1, 1, 2, 2047, 2048, 65535])


def content_header(body_size: int | None = None) -> st.SearchStrategy[bytes]:
    size = st.just(body_size) if body_size is not None else st.sampled_from(_U64 + [5, 100])
    flags = st.sampled_from([0, 0x8000, 0x2000, 0x1000, 0xFFFC, 0xFFFF])
    return st.tuples(st.sampled_from([60, 60, 60, 10, 0]), size, flags,
                     st.binary(max_size=24)).map(
        lambda t: struct.pack(">HHQH", t[0], 0, t[1], t[2]) + t[3])


def any_frame() -> st.SearchStrategy[bytes]:
    method = st.tuples(_CHANNELS, method_payload()).map(lambda t: frame_bytes(1, *t))
    header = st.tuples(_CHANNELS, content_header()).map(lambda t: frame_bytes(2, *t))
    body = st.tuples(_CHANNELS, st.binary(max_size=32)).map(lambda t: frame_bytes(3, *t))
    beat = _CHANNELS.map(lambda c: frame_bytes(8, c, b""))
    raw = st.tuples(st.integers(0, 255), _CHANNELS, st.binary(max_size=16),
                    st.sampled_from([0xCE, 0xCE, 0x00, 0xFF])).map(lambda t: frame_bytes(*t))
    publish = _CHANNELS.map(lambda c: frame_bytes(1, c, struct.pack(">IH", 0x003C0028, 0)
                                                  + b"\x00\x01q\x00"))
    return st.one_of(method, method, header, body, beat, raw, publish)


def sequences() -> st.SearchStrategy[tuple[list[bytes], int]]:
    """A list of frames, fed in chunks of one size (frames split at any byte)."""
    return st.tuples(st.lists(any_frame(), min_size=1, max_size=8), st.integers(1, 200))


def chunked(frames: list[bytes], size: int) -> list[bytes]:
    data = b"".join(frames)
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


# -- inputs of a known class (the table in docs/security.md) --------------------------------

def _method(cls: type, channel: int = 1) -> st.SearchStrategy[bytes]:
    return method_payload(cls).map(lambda p: frame_bytes(1, channel, p))


def _valid(method, channel: int = 1) -> bytes:
    from pamqp import frame

    return frame.marshal(method, channel)


_PUBLISH = _valid(commands.Basic.Publish(exchange="", routing_key="q"))
# channel_max (2047, negotiated by oracle.HANDSHAKE) counts open channels, whatever their
# numbers (rabbit_reader): channel 1 is open, these open 2..2047; one more is refused.
_OPEN_2047 = b"".join(_valid(commands.Channel.Open(), c) for c in range(2, 2048))
_KNOWN = {idx for idx, _ in METHODS}


def classified() -> st.SearchStrategy[tuple[str, bytes, bool]]:
    """(input class, bytes, after handshake?) for every row of oracle.EXPECTED."""
    def row(name: str, strat: st.SearchStrategy[bytes], hs: bool = True):
        return strat.map(lambda b: (name, b, hs))

    unknown = st.integers(0, 2**32 - 1).filter(lambda i: i not in _KNOWN)
    return st.one_of(
        row("bad_frame_type", st.tuples(st.integers(0, 255).filter(
            lambda t: t not in (1, 2, 3, 8)), _CHANNELS, st.binary(max_size=8)).map(
            lambda t: frame_bytes(*t))),
        row("oversize_frame", st.integers(131065, 2**32 - 1).map(
            lambda n: struct.pack(">BHI", 1, 1, n) + b"\x00" * 16)),
        row("bad_frame_end", st.tuples(method_payload(commands.Basic.Qos), st.integers(
            0, 255).filter(lambda e: e != 0xCE)).map(lambda t: frame_bytes(1, 1, t[0], t[1]))),
        row("large_frame_before_tune_ok", st.integers(4089, 131072).map(
            lambda n: b"AMQP\x00\x00\x09\x01" + frame_bytes(1, 0, b"\x00\x0a\x00\x0b"
                                                            + b"\x00" * (n - 4))), hs=False),
        row("heartbeat_on_channel", st.integers(1, 65535).map(
            lambda c: frame_bytes(8, c, b""))),
        row("body_over_announced_size", st.integers(1, 20).map(
            lambda n: _PUBLISH + frame_bytes(2, 1, struct.pack(">HHQH", 60, 0, n, 0))
            + frame_bytes(3, 1, b"x" * (n + 1)))),
        row("unknown_method", st.tuples(unknown, st.sampled_from([0, 1]),
                                        st.binary(max_size=8)).map(
            lambda t: frame_bytes(1, t[1], struct.pack(">I", t[0]) + t[2]))),
        row("truncated_arguments", st.sampled_from(
            [commands.Queue.Declare, commands.Exchange.Declare, commands.Basic.Consume,
             commands.Queue.Bind, commands.Basic.Get, commands.Basic.Qos]).map(
            lambda cls: frame_bytes(1, 1, struct.pack(">I", cls.index)))),
        row("bad_field_type", st.sampled_from(b"cCeEgGhHjJkKmMnNoOpPqQrRwWyYzZ").map(
            lambda t: frame_bytes(1, 1, struct.pack(">I", commands.Queue.Declare.index)
                                  + b"\x00\x00\x01q\x00" + struct.pack(">I", 7)
                                  + b"\x01k" + bytes((t,)) + b"\x00\x00\x00\x00"))),
        row("table_too_deep", st.integers(33, 2000).map(
            lambda n: frame_bytes(1, 1, struct.pack(">I", commands.Queue.Declare.index)
                                  + b"\x00\x00\x01q\x00" + _nested_tables(n)))),
        row("method_on_closed_channel", st.integers(2, 2047).map(
            lambda c: _valid(commands.Basic.Qos(prefetch_count=1), c))),
        row("channel_over_channel_max", st.integers(2048, 65535).map(
            lambda c: _OPEN_2047 + _valid(commands.Channel.Open(), c))),
        row("channel_before_open", st.integers(1, 65535).map(
            lambda c: b"AMQP\x00\x00\x09\x01" + _valid(commands.Channel.Open(), c)), hs=False),
        row("body_without_header", st.binary(max_size=16).map(
            lambda b: frame_bytes(3, 1, b))),
        row("header_without_publish", content_header(5).map(
            lambda h: frame_bytes(2, 1, h))),
        row("connection_method_out_of_state", st.sampled_from(
            [commands.Connection.Open(), commands.Connection.TuneOk(),
             commands.Connection.StartOk(mechanism="PLAIN", response="\0a\0b")]).map(
            lambda m: _valid(m, 0))),
        row("message_over_max_size", st.integers(16 * 1024 * 1024 + 1, 2**64 - 1).map(
            lambda n: _PUBLISH + frame_bytes(2, 1, struct.pack(">HHQH", 60, 0, n, 0)))),
    )


def _nested_tables(levels: int) -> bytes:
    body = b""
    for _ in range(levels):
        body = b"\x01kF" + struct.pack(">I", len(body)) + body
    return struct.pack(">I", len(body)) + body
