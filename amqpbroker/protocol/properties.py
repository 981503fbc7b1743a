"""Basic content properties: a fast scanner for the hot path, pamqp for the rest.

"Properties bytes" throughout this module means the content-header payload after its
12-byte class-id/weight/body-size prefix: the property-flags word(s) followed by the
property list, exactly as on the wire (AMQP 0-9-1 spec 4.2.6.1).

The broker keeps those bytes verbatim and forwards them unparsed (see amqpbroker.message), so
the only per-message work is `scan_properties`, which reads the three properties routing
and queue features need without building any objects.  Everything else (full decode,
header rewriting for dead-lettering, reply-to rewriting for direct reply-to) is rare and
uses pamqp.

Wire layout reminder (spec 4.2.6.1; property order from class basic in amqp0-9-1.xml):

    flags u16 [u16 ...]   bit 15 = first property ... bit 2 = 14th, bit 0 = "another
                          flags word follows"
    content-type     shortstr   0x8000
    content-encoding shortstr   0x4000
    headers          table      0x2000
    delivery-mode    octet      0x1000
    priority         octet      0x0800
    correlation-id   shortstr   0x0400
    reply-to         shortstr   0x0200
    expiration       shortstr   0x0100
    message-id       shortstr   0x0080
    timestamp        u64        0x0040
    type             shortstr   0x0020
    user-id          shortstr   0x0010
    app-id           shortstr   0x0008
    cluster-id       shortstr   0x0004  (deprecated, but may still appear)
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import commands, encode

__all__ = [
    "decode_properties",
    "encode_properties",
    "scan_properties",
    "with_headers",
    "replace_reply_to",
]

Properties = commands.Basic.Properties

# Property flag bits (spec 4.2.6.1: the first property is the high bit of the first word).
FLAG_CONTENT_TYPE = 0x8000
FLAG_CONTENT_ENCODING = 0x4000
FLAG_HEADERS = 0x2000
FLAG_DELIVERY_MODE = 0x1000
FLAG_PRIORITY = 0x0800
FLAG_CORRELATION_ID = 0x0400
FLAG_REPLY_TO = 0x0200
FLAG_EXPIRATION = 0x0100
FLAG_MESSAGE_ID = 0x0080
FLAG_TIMESTAMP = 0x0040
FLAG_TYPE = 0x0020
FLAG_USER_ID = 0x0010
FLAG_APP_ID = 0x0008
FLAG_CLUSTER_ID = 0x0004
# Bit 0 of every flags word says another flags word follows (spec 4.2.6.1).
FLAG_CONTINUATION = 0x0001

_SHORTSTR, _TABLE, _OCTET, _TIMESTAMP = range(4)

# Property order on the wire; the slow-path walker below is driven by this table.
_LAYOUT: tuple[tuple[int, int], ...] = (
    (FLAG_CONTENT_TYPE, _SHORTSTR),
    (FLAG_CONTENT_ENCODING, _SHORTSTR),
    (FLAG_HEADERS, _TABLE),
    (FLAG_DELIVERY_MODE, _OCTET),
    (FLAG_PRIORITY, _OCTET),
    (FLAG_CORRELATION_ID, _SHORTSTR),
    (FLAG_REPLY_TO, _SHORTSTR),
    (FLAG_EXPIRATION, _SHORTSTR),
    (FLAG_MESSAGE_ID, _SHORTSTR),
    (FLAG_TIMESTAMP, _TIMESTAMP),
    (FLAG_TYPE, _SHORTSTR),
    (FLAG_USER_ID, _SHORTSTR),
    (FLAG_APP_ID, _SHORTSTR),
    (FLAG_CLUSTER_ID, _SHORTSTR),
)

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


# --------------------------------------------------------------------------- flags


def _skip_flag_words(props: bytes, pos: int) -> int:
    """Return the offset just past a chain of continuation flag words starting at `pos`.

    Basic defines only 14 properties, all in the first word, so extra words (spec 4.2.6.1
    allows them) carry nothing we understand; they only have to be stepped over.
    """
    while True:
        if pos + 2 > len(props):
            raise ValueError("content header property flags are truncated")
        more = props[pos + 1] & FLAG_CONTINUATION
        pos += 2
        if not more:
            return pos


def _read_flags(props: bytes) -> tuple[int, int]:
    """Return (first flags word, offset of the first property)."""
    if len(props) < 2:
        raise ValueError("content header property flags are truncated")
    flags = (props[0] << 8) | props[1]
    if flags & FLAG_CONTINUATION:
        return flags, _skip_flag_words(props, 2)
    return flags, 2


# --------------------------------------------------------------------------- fast scan


def scan_properties(props: bytes) -> tuple[int, int, str | None]:
    """Return (delivery_mode, priority, expiration) without building any objects.

    Absent properties read as 0 / 0 / None.  The whole property list is walked (not just
    up to expiration) so a truncated or malformed header is rejected at publish time
    instead of being forwarded verbatim to consumers that would choke on it.

    :raises ValueError: truncated input, or an expiration that is not valid UTF-8
    """
    delivery_mode = priority = 0
    expiration = None
    n = len(props)
    try:
        flags = (props[0] << 8) | props[1]
        pos = 2 if not flags & FLAG_CONTINUATION else _skip_flag_words(props, 2)
        # Each shortstr is a length octet plus that many bytes (spec 4.2.5.3); indexing
        # raises IndexError as soon as a length octet itself is missing, and the final
        # `pos > n` check catches a string (or table) that runs past the end.
        if flags & FLAG_CONTENT_TYPE:
            pos += props[pos] + 1
        if flags & FLAG_CONTENT_ENCODING:
            pos += props[pos] + 1
        if flags & FLAG_HEADERS:
            # Field table = u32 byte length + entries (spec 4.2.5.5); skipped, never parsed.
            pos += _U32.unpack_from(props, pos)[0] + 4
        if flags & FLAG_DELIVERY_MODE:
            delivery_mode = props[pos]
            pos += 1
        if flags & FLAG_PRIORITY:
            priority = props[pos]
            pos += 1
        if flags & FLAG_CORRELATION_ID:
            pos += props[pos] + 1
        if flags & FLAG_REPLY_TO:
            pos += props[pos] + 1
        if flags & FLAG_EXPIRATION:
            end = pos + 1 + props[pos]
            expiration = props[pos + 1 : end]
            pos = end
        if flags & 0x00BC:  # message-id, type, user-id, app-id, cluster-id: shortstrs
            pos = _skip_tail(props, pos, flags)
        elif flags & FLAG_TIMESTAMP:
            pos += 8
    except (IndexError, struct.error):
        raise ValueError("content header properties are truncated") from None
    if pos > n:
        raise ValueError("content header properties are truncated")
    if expiration is not None:
        # Decode only after the bounds check so a truncated slice is never reported as
        # a (shorter) expiration; invalid UTF-8 raises UnicodeDecodeError (a ValueError).
        return delivery_mode, priority, expiration.decode("utf-8")
    return delivery_mode, priority, None


def _skip_tail(props: bytes, pos: int, flags: int) -> int:
    """Skip the properties after expiration (rare on the hot path, hence out of line)."""
    if flags & FLAG_MESSAGE_ID:
        pos += props[pos] + 1
    if flags & FLAG_TIMESTAMP:
        pos += 8  # spec 4.2.5.4: a timestamp is a u64 of POSIX seconds
    if flags & FLAG_TYPE:
        pos += props[pos] + 1
    if flags & FLAG_USER_ID:
        pos += props[pos] + 1
    if flags & FLAG_APP_ID:
        pos += props[pos] + 1
    if flags & FLAG_CLUSTER_ID:
        pos += props[pos] + 1
    return pos


# --------------------------------------------------------------------------- slow path


def _field_end(props: bytes, pos: int, kind: int) -> int:
    """Return the offset just past one property value of `kind` starting at `pos`."""
    try:
        if kind == _SHORTSTR:
            end = pos + 1 + props[pos]
        elif kind == _TABLE:
            end = pos + 4 + _U32.unpack_from(props, pos)[0]
        elif kind == _OCTET:
            end = pos + 1
        else:
            end = pos + 8
    except (IndexError, struct.error):
        raise ValueError("content header properties are truncated") from None
    if end > len(props):
        raise ValueError("content header properties are truncated")
    return end


def _validate(props: bytes) -> tuple[int, int]:
    """Check the whole property list is present; return (flags, first property offset)."""
    flags, start = _read_flags(props)
    pos = start
    for bit, kind in _LAYOUT:
        if flags & bit:
            pos = _field_end(props, pos, kind)
    return flags, start


def _locate(props: bytes, target: int) -> tuple[int, int, int]:
    """Find the byte span of the property whose flag bit is `target`.

    Returns (flags, start, end); start == end when the property is absent, in which case
    start is where it would have to be inserted to keep the spec's property order.  The
    whole list is validated on the way, so callers splice only well-formed input.
    """
    flags, pos = _read_flags(props)
    start = end = -1
    for bit, kind in _LAYOUT:
        if bit == target:
            start = pos
        if flags & bit:
            pos = _field_end(props, pos, kind)
        if bit == target:
            end = pos
    return flags, start, end


def _splice(props: bytes, target: int, encoded: bytes | None) -> bytes:
    """Return `props` with property `target` replaced by `encoded` (None = remove it).

    Splicing (rather than decode + re-encode through pamqp) leaves every other property
    byte-identical: a pamqp round trip would re-type header integers, re-sort tables and
    turn millisecond timestamps into seconds, none of which a broker should do to a
    message it merely forwards.
    """
    flags, start, end = _locate(props, target)
    flags = flags | target if encoded is not None else flags & ~target
    # Only the first flags word can change: every Basic property lives there.
    return b"".join((_U16.pack(flags), props[2:start], encoded or b"", props[end:]))


def decode_properties(props: bytes) -> commands.Basic.Properties:
    """Decode properties bytes into a pamqp `Basic.Properties` (slow path).

    :raises ValueError: truncated or malformed input
    """
    # pamqp's own decoders slice past the end of a truncated shortstr silently, so the
    # structure is checked first to turn truncation into a ValueError.
    flags, start = _validate(props)
    result = Properties()
    try:
        # pamqp only consults the flag bits of known properties, so passing the first
        # word (with its continuation bit) is exactly what its own header decoder does.
        result.unmarshal(flags, props[start:])
    except (OverflowError, OSError, RecursionError, struct.error) as err:
        # A timestamp too large for datetime, or a table nested deeply enough to exhaust
        # the stack: malformed from the broker's point of view, never a crash.
        raise ValueError(f"invalid content header property: {err}") from err
    return result


def encode_properties(p: commands.Basic.Properties) -> bytes:
    """Encode a pamqp `Basic.Properties` into properties bytes (flags + list)."""
    return p.marshal()


def with_headers(props: bytes, headers: dict[str, Any] | None) -> bytes:
    """Return `props` with the headers table replaced (None removes it).

    Matches pamqp: an empty dict is still sent as a present-but-empty table.
    """
    encoded = None if headers is None else encode.field_table(headers)
    return _splice(props, FLAG_HEADERS, encoded)


def replace_reply_to(props: bytes, reply_to: str | None) -> bytes:
    """Return `props` with reply-to replaced (None or "" removes it, as pamqp would)."""
    if not reply_to:
        return _splice(props, FLAG_REPLY_TO, None)
    raw = reply_to.encode("utf-8")
    if len(raw) > 255:
        raise ValueError("reply_to exceeds the 255-byte shortstr limit")
    return _splice(props, FLAG_REPLY_TO, bytes((len(raw),)) + raw)
