"""Hand-written codecs for the per-message AMQP 0-9-1 frames.

pamqp builds an object per frame and walks its attribute list generically; that is fine
for connection set-up but dominates CPU time when done for every publish, delivery and
ack.  The functions here cover exactly the hot-path methods (Basic.Publish, Ack, Nack,
Reject, Deliver, GetOk, Return, the content header and body frames) using precompiled
`struct.Struct` objects and slicing, and produce output byte-identical to pamqp (proved
by tests/protocol/test_fastcodec.py).  Everything else goes through `encode_method`.

Terminology:

* A *method frame payload* is the bytes between the 7-byte frame header and the
  frame-end octet: class-id u16, method-id u16, then the arguments (spec 4.2.4).
* *Properties bytes* are the content-header payload after its 12-byte prefix: the
  property-flags word(s) and the property list, verbatim (spec 4.2.6.1).  The broker never
  re-encodes them; see amqpbroker.protocol.properties.

Decoders take the payload as `bytes`, assume the caller already dispatched on the
class/method ids, and raise ValueError on truncation or invalid UTF-8 (the broker answers
that with a frame/syntax error).  Encoders return complete frames ready for the socket.

Integers are unsigned, as the spec says (4.2.5.1).  pamqp encodes and decodes `longlong`
as *signed*, so delivery tags >= 2**63 are the one place our output cannot be compared
with pamqp's value-for-value, only byte-for-byte (a two's-complement reinterpretation).
"""

from __future__ import annotations

import functools
import struct

from pamqp import base, frame

__all__ = [
    "FRAME_METHOD",
    "FRAME_HEADER",
    "FRAME_BODY",
    "FRAME_HEARTBEAT",
    "FRAME_END",
    "HEARTBEAT_FRAME",
    "encode_shortstr",
    "decode_publish",
    "decode_ack",
    "decode_nack",
    "decode_reject",
    "decode_content_header",
    "encode_method",
    "encode_content",
    "ContentParts",
    "encode_deliver",
    "encode_get_ok",
    "encode_return",
    "encode_ack",
    "encode_nack",
]

# Frame types and the frame-end octet (spec 4.2.3; 0-9-1 uses 8 for heartbeats).
FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = b"\xce"

# Spec 4.2.7: a heartbeat is an empty frame on channel 0.
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

_BASIC = 60  # class basic
# Seven header bytes plus the frame-end octet: what frame-max allows beyond the payload.
_FRAME_OVERHEAD = 8
# frame-max 0 means "no limit" (Connection.Tune); a frame's size field is still a u32.
_MAX_PAYLOAD = 0xFFFFFFFF

# type u8, channel u16, size u32 (spec 4.2.3) + class-id u16, method-id u16 (spec 4.2.4).
_METHOD_HEAD = struct.Struct(">BHIHH")
# As above plus a leading u16 argument: Basic.Return's reply-code.
_METHOD_HEAD_U16 = struct.Struct(">BHIHHH")
# Content header frame: frame header + class-id, weight, body-size (spec 4.2.6.1).
_HEADER_HEAD = struct.Struct(">BHIHHQ")
# Content body frame header (spec 4.2.6.2).
_BODY_HEAD = struct.Struct(">BHI")
# A delivery tag followed by one octet of packed bits (spec 4.2.5.2: consecutive bit
# arguments share octets, least significant bit first).
_TAG_BITS = struct.Struct(">QB")
# Whole Basic.Ack / Basic.Nack frame: header, ids, tag, bits, frame-end.
_TAG_BITS_FRAME = struct.Struct(">BHIHHQBB")
_U32 = struct.Struct(">I")
_CONTENT_PREFIX = struct.Struct(">HHQ")

_EMPTY = b""


# --------------------------------------------------------------------------- shortstr


@functools.lru_cache(maxsize=4096)
def encode_shortstr(value: str) -> bytes:
    """Encode a shortstr: length octet + UTF-8 bytes (spec 4.2.5.3).

    Cached because exchange names, routing keys and consumer tags repeat on every
    delivery; a miss costs one encode, a hit one dict lookup.

    :raises ValueError: more than 255 UTF-8 bytes, or unencodable (lone surrogate)
    """
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"shortstr exceeds 255 bytes: {value[:32]!r}...")
    return bytes((len(raw),)) + raw


# --------------------------------------------------------------------------- decoders


def decode_publish(payload: bytes) -> tuple[str, str, bool, bool]:
    """Decode a Basic.Publish (60,40) payload into (exchange, routing_key, mandatory,
    immediate).

    Layout after the ids: ticket u16 (deprecated, ignored), exchange shortstr, routing-key
    shortstr, then one octet with mandatory in bit 0 and immediate in bit 1 (spec 4.2.5.2).
    """
    try:
        # The bits octet is last, so reading it proves both strings are complete.
        rk_at = 7 + payload[6]
        bits_at = rk_at + 1 + payload[rk_at]
        bits = payload[bits_at]
    except IndexError:
        raise ValueError("truncated Basic.Publish") from None
    # Publishers reuse a few (exchange, routing key) pairs: share one pair of str objects
    # between all their queued messages (saves ~100 bytes per queued message, issue 7 M1).
    raw = payload[6:bits_at]
    names = _NAMES_CACHE.get(raw)
    if names is None:
        # UnicodeDecodeError is a ValueError, which is what the caller expects.
        names = (payload[7:rk_at].decode("utf-8"), payload[rk_at + 1 : bits_at].decode("utf-8"))
        if len(_NAMES_CACHE) >= _NAMES_CACHE_SIZE:
            _NAMES_CACHE.clear()
        _NAMES_CACHE[raw] = names
    return names[0], names[1], bool(bits & 1), bool(bits & 2)


_NAMES_CACHE: dict[bytes, tuple[str, str]] = {}
_NAMES_CACHE_SIZE = 4096


def _tag_and_bits(payload: bytes, name: str) -> tuple[int, int]:
    """Read the u64 delivery tag and bits octet that follow the method ids."""
    if len(payload) < 13:
        raise ValueError(f"truncated {name}")
    return _TAG_BITS.unpack_from(payload, 4)  # type: ignore[return-value]


def decode_ack(payload: bytes) -> tuple[int, bool]:
    """Decode a Basic.Ack (60,80) payload into (delivery_tag, multiple)."""
    tag, bits = _tag_and_bits(payload, "Basic.Ack")
    return tag, bool(bits & 1)


def decode_nack(payload: bytes) -> tuple[int, bool, bool]:
    """Decode a Basic.Nack (60,120) payload into (delivery_tag, multiple, requeue)."""
    tag, bits = _tag_and_bits(payload, "Basic.Nack")
    return tag, bool(bits & 1), bool(bits & 2)


def decode_reject(payload: bytes) -> tuple[int, bool]:
    """Decode a Basic.Reject (60,90) payload into (delivery_tag, requeue)."""
    tag, bits = _tag_and_bits(payload, "Basic.Reject")
    return tag, bool(bits & 1)


def decode_content_header(payload: bytes) -> tuple[int, int, int, bytes]:
    """Split a content header payload into (class_id, weight, body_size, properties).

    The properties bytes are returned verbatim for the broker to store and forward; at
    least the first flags word must be present (12-byte prefix + 2, spec 4.2.6.1).
    """
    if len(payload) < 14:
        raise ValueError("truncated content header")
    class_id, weight, body_size = _CONTENT_PREFIX.unpack_from(payload)
    return class_id, weight, body_size, payload[12:]


# --------------------------------------------------------------------------- content


def _append_body_frames(
    parts: list[bytes | memoryview], channel: int, body: bytes, frame_max: int
) -> None:
    """Split `body` into frames of at most frame_max - 8 payload bytes (spec 4.2.6.2)."""
    limit = frame_max - _FRAME_OVERHEAD if frame_max else _MAX_PAYLOAD
    if limit <= 0:
        raise ValueError(f"frame_max {frame_max} leaves no room for a body payload")
    # memoryview slices avoid copying each chunk before the final join copies it once.
    view = memoryview(body)
    for start in range(0, len(body), limit):
        chunk = view[start : start + limit]
        parts += (_BODY_HEAD.pack(FRAME_BODY, channel, len(chunk)), chunk, FRAME_END)


# A body over this size is not copied into its delivery: the delivery is ContentParts.
LARGE_BODY = 1 << 20


class ContentParts(list):  # type: ignore[type-arg]
    """The frames of a content whose body is larger than LARGE_BODY, as a list of buffers:
    frame headers and memoryviews of the body, never a copy of it. A connection writes
    them as they are (ClientConnection.send, `writelines`). Joining a 128 MiB delivery
    into one bytes object cost a second 128 MiB of RSS and, in fresh pages, about as
    much CPU as everything else the message took."""

    __slots__ = ("size",)


def _join_content(
    method: bytes, channel: int, properties: bytes, body: bytes, frame_max: int
) -> bytes:
    """Return `method` followed by the content header frame and body frames.

    One join for the whole delivery so the body is copied exactly once (a body over
    LARGE_BODY: not at all, see ContentParts).  An empty body gets no body frame at all:
    the header's body-size 0 already completes the message, which is what RabbitMQ sends
    and what pika/aio-pika/pamqp clients expect.
    """
    size = len(body)
    header = _HEADER_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties), _BASIC, 0, size)
    if not size:
        return b"".join((method, header, properties, FRAME_END))
    if size <= frame_max - _FRAME_OVERHEAD:  # the common case: a single body frame
        body_head = _BODY_HEAD.pack(FRAME_BODY, channel, size)
        return b"".join((method, header, properties, FRAME_END, body_head, body, FRAME_END))
    parts: list[bytes | memoryview] = [method, header, properties, FRAME_END]
    _append_body_frames(parts, channel, body, frame_max)
    if size > LARGE_BODY:
        large = ContentParts(parts)
        large.size = sum(map(len, parts))
        return large  # type: ignore[return-value]
    return b"".join(parts)


def encode_content(channel: int, properties: bytes, body: bytes, frame_max: int) -> bytes:
    """Encode a content header frame (class basic, weight 0) plus its body frames.

    `properties` are written verbatim after the 12-byte prefix (spec 4.2.6.1); weight is
    always 0 as the spec requires.  frame_max 0 means unlimited.
    """
    return _join_content(_EMPTY, channel, properties, body, frame_max)


# --------------------------------------------------------------------------- encoders


def encode_deliver(
    channel: int,
    consumer_tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """Encode Basic.Deliver (60,60) + content frames.

    Arguments: consumer-tag shortstr, delivery-tag u64, redelivered bit, exchange
    shortstr, routing-key shortstr. A consumer receives a few (exchange, routing key)
    pairs: the bytes around the delivery tag are built once per (channel, consumer,
    exchange, key) and the whole delivery is one join.
    """
    parts = _DELIVER_PARTS.get((channel, consumer_tag, exchange, routing_key))
    if parts is None:
        parts = _deliver_parts(channel, consumer_tag, exchange, routing_key)
    head, tail = parts
    size = len(body)
    if size and size <= frame_max - _FRAME_OVERHEAD:  # the common case: one body frame
        return b"".join((
            head, _TAG_BITS.pack(delivery_tag, 1 if redelivered else 0), tail,
            _HEADER_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties), _BASIC, 0, size),
            properties, FRAME_END, _BODY_HEAD.pack(FRAME_BODY, channel, size), body, FRAME_END))
    method = b"".join((head, _TAG_BITS.pack(delivery_tag, 1 if redelivered else 0), tail))
    return _join_content(method, channel, properties, body, frame_max)


_DELIVER_PARTS: dict[tuple[int, str, str, str], tuple[bytes, bytes]] = {}


def _deliver_parts(channel: int, consumer_tag: str, exchange: str,
                   routing_key: str) -> tuple[bytes, bytes]:
    """Basic.Deliver's bytes before the delivery tag (frame header, ids, consumer tag) and
    after the bits octet (exchange, routing key, frame end)."""
    ctag = encode_shortstr(consumer_tag)
    ex = encode_shortstr(exchange)
    rk = encode_shortstr(routing_key)
    # 4 id bytes + 8 tag bytes + 1 bits octet + the three strings.
    size = 13 + len(ctag) + len(ex) + len(rk)
    parts = (_METHOD_HEAD.pack(FRAME_METHOD, channel, size, _BASIC, 60) + ctag,
             ex + rk + FRAME_END)
    if len(_DELIVER_PARTS) >= _NAMES_CACHE_SIZE:
        _DELIVER_PARTS.clear()
    _DELIVER_PARTS[(channel, consumer_tag, exchange, routing_key)] = parts
    return parts


def encode_get_ok(
    channel: int,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
    message_count: int,
    properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """Encode Basic.GetOk (60,71) + content frames.

    Arguments: delivery-tag u64, redelivered bit, exchange shortstr, routing-key shortstr,
    message-count u32.
    """
    ex = encode_shortstr(exchange)
    rk = encode_shortstr(routing_key)
    size = 17 + len(ex) + len(rk)  # 4 ids + 8 tag + 1 bits + 4 count + strings
    method = b"".join(
        (
            _METHOD_HEAD.pack(FRAME_METHOD, channel, size, _BASIC, 71),
            _TAG_BITS.pack(delivery_tag, 1 if redelivered else 0),
            ex,
            rk,
            _U32.pack(message_count),
            FRAME_END,
        )
    )
    return _join_content(method, channel, properties, body, frame_max)


def encode_return(
    channel: int,
    reply_code: int,
    reply_text: str,
    exchange: str,
    routing_key: str,
    properties: bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """Encode Basic.Return (60,50) + content frames.

    Arguments: reply-code u16, reply-text shortstr, exchange shortstr, routing-key
    shortstr.
    """
    text = encode_shortstr(reply_text)
    ex = encode_shortstr(exchange)
    rk = encode_shortstr(routing_key)
    size = 6 + len(text) + len(ex) + len(rk)  # 4 ids + 2 reply-code + strings
    method = b"".join(
        (
            _METHOD_HEAD_U16.pack(FRAME_METHOD, channel, size, _BASIC, 50, reply_code),
            text,
            ex,
            rk,
            FRAME_END,
        )
    )
    return _join_content(method, channel, properties, body, frame_max)


def encode_ack(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    """Encode a server-to-client Basic.Ack (60,80) publisher confirm as one frame."""
    return _TAG_BITS_FRAME.pack(
        FRAME_METHOD, channel, 13, _BASIC, 80, delivery_tag, 1 if multiple else 0, 0xCE
    )


def encode_nack(
    channel: int, delivery_tag: int, multiple: bool, requeue: bool = False
) -> bytes:
    """Encode a server-to-client Basic.Nack (60,120) publisher confirm as one frame.

    Bits: multiple in bit 0, requeue in bit 1 (spec 4.2.5.2).  Clients ignore requeue on
    a confirm, hence the default.
    """
    bits = (1 if multiple else 0) | (2 if requeue else 0)
    return _TAG_BITS_FRAME.pack(FRAME_METHOD, channel, 13, _BASIC, 120, delivery_tag, bits, 0xCE)


def encode_method(channel: int, method: base.Frame) -> bytes:
    """Encode any pamqp method object as one method frame (slow path, via pamqp)."""
    return frame.marshal(method, channel)


# encode_deliver compiled where the install could (protocol/_speedups.pyx): the same bytes,
# its common case in one call; this module's function stays the reference and the rest.
encode_deliver_python = encode_deliver
try:
    from amqpbroker.protocol import _speedups
except ImportError:
    pass
else:
    _speedups.bind(_DELIVER_PARTS, _deliver_parts, encode_deliver_python)
    encode_deliver = _speedups.encode_deliver  # type: ignore[assignment]  # noqa: F811
