"""Field tables edited as bytes (spec 4.2.5.5), for headers the broker itself writes.

Dead-lettering adds `x-death` / `x-first-death-*` / `x-last-death-*` headers, a delivery
limit adds `x-delivery-count`. Decoding the whole headers table to Python and encoding it
again would re-type the publisher's integers and timestamps (pamqp picks the smallest
integer type), so these helpers keep every entry they do not touch byte for byte, and
write the broker's own entries with the types RabbitMQ uses (`long` counts, `timestamp`
times, `longstr` strings).

Values are handled as "raw values": the type octet followed by the encoded value.
"""

from __future__ import annotations

import struct
from typing import Iterable

from amqpbroker.protocol import properties as _props

_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")

# Fixed sizes of the value after its type octet (RabbitMQ's and pamqp's type letters).
_FIXED = {
    b"t": 1, b"b": 1, b"B": 1, b"s": 2, b"u": 2, b"I": 4, b"i": 4, b"l": 8, b"L": 8,
    b"f": 4, b"d": 8, b"D": 5, b"T": 8, b"V": 0, b"\x00": 0,
}
_SIZED = (b"S", b"A", b"F", b"x")  # u32 length + that many bytes
_INTS = {
    b"b": struct.Struct(">b"), b"B": struct.Struct(">B"), b"s": struct.Struct(">h"),
    b"u": struct.Struct(">H"), b"I": struct.Struct(">i"), b"i": struct.Struct(">I"),
    b"l": _I64, b"L": _I64,
}


def value_end(buf: bytes, pos: int) -> int:
    """Offset just past the raw value (type octet first) that starts at `pos`."""
    kind = buf[pos:pos + 1]
    size = _FIXED.get(kind)
    if size is not None:
        end = pos + 1 + size
    elif kind in _SIZED:
        end = pos + 5 + _U32.unpack_from(buf, pos + 1)[0]
    else:
        raise ValueError(f"unknown field type {kind!r}")
    if end > len(buf):
        raise ValueError("field value is truncated")
    return end


def table_items(body: bytes) -> list[tuple[str, bytes]]:
    """The (name, raw value) entries of a field table body (without its length)."""
    items = []
    pos, n = 0, len(body)
    while pos < n:
        klen = body[pos]
        name = body[pos + 1:pos + 1 + klen].decode("utf-8", "replace")
        start = pos + 1 + klen
        end = value_end(body, start)
        items.append((name, body[start:end]))
        pos = end
    return items


def array_items(raw: bytes) -> list[bytes]:
    """The raw values of a raw array value (b'A' + length + values)."""
    body = raw[5:]
    values, pos = [], 0
    while pos < len(body):
        end = value_end(body, pos)
        values.append(body[pos:end])
        pos = end
    return values


def table_body(raw: bytes) -> bytes:
    """The entries of a raw table value (b'F' + length + entries)."""
    return raw[5:]


# -- encoders ---------------------------------------------------------------------------

def encode_table(items: Iterable[tuple[str, bytes]]) -> bytes:
    """A field table (u32 length + entries) from (name, raw value) pairs."""
    parts = []
    for name, raw in items:
        key = name.encode("utf-8")
        parts.append(bytes((len(key),)) + key + raw)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def longstr(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"S" + _U32.pack(len(data)) + data


def long(value: int) -> bytes:
    return b"l" + _I64.pack(value)


def timestamp(seconds: float) -> bytes:
    return b"T" + _U64.pack(int(seconds))


def array(values: Iterable[bytes]) -> bytes:
    body = b"".join(values)
    return b"A" + _U32.pack(len(body)) + body


def table(items: Iterable[tuple[str, bytes]]) -> bytes:
    return b"F" + encode_table(items)


# -- readers -----------------------------------------------------------------------------

def read_text(raw: bytes) -> str | None:
    if raw[:1] == b"S":
        return raw[5:].decode("utf-8", "replace")
    return None


def read_int(raw: bytes) -> int | None:
    unpack = _INTS.get(raw[:1])
    return unpack.unpack_from(raw, 1)[0] if unpack is not None else None


# -- the headers property -----------------------------------------------------------------

def headers_of(props: bytes) -> list[tuple[str, bytes]]:
    """The headers table of properties bytes as (name, raw value) entries."""
    _, start, end = _props._locate(props, _props.FLAG_HEADERS)
    if start == end:
        return []
    return table_items(props[start + 4:end])


def with_header_items(props: bytes, items: list[tuple[str, bytes]]) -> bytes:
    """Properties bytes with the headers table replaced by `items` (kept even if empty)."""
    return _props._splice(props, _props.FLAG_HEADERS, encode_table(items))


def without_expiration(props: bytes) -> bytes:
    return _props._splice(props, _props.FLAG_EXPIRATION, None)


def set_header(items: list[tuple[str, bytes]], name: str, raw: bytes) -> None:
    """Replace `name` in place (keeping its position) or append it."""
    for i, (key, _) in enumerate(items):
        if key == name:
            items[i] = (name, raw)
            return
    items.append((name, raw))
