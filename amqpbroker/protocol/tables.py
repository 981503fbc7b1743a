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


# -- nesting limit (hostile input) ---------------------------------------------------------

# Tables and arrays nested deeper than this are refused before pamqp decodes them: pamqp
# recurses once per level and copies the rest of the buffer at each one, so a 128 KiB frame
# of nested tables would cost thousands of frames of recursion and gigabytes of copying.
# The broker sets it from `Settings.max_table_depth` (limits.max_table_depth).
MAX_DEPTH = 32
_NESTED = (b"F", b"A")


def may_nest_deeper(buf: bytes, max_depth: int) -> bool:
    """Cheap bound: every level needs one 'F' or 'A' octet, so fewer of them than
    `max_depth` means the precise check can be skipped (the common case, in C)."""
    return buf.count(b"F") + buf.count(b"A") >= max_depth


def check_table(buf: bytes, pos: int = 0, max_depth: int | None = None) -> int:
    """Walk the field table (u32 length + entries) at `pos` without recursion; return the
    offset just past it. ValueError if it is truncated, has an unknown value type, or
    nests tables/arrays more than `max_depth` levels (the table itself is level 1)."""
    limit = MAX_DEPTH if max_depth is None else max_depth
    if pos + 4 > len(buf):
        raise ValueError("field table is truncated")
    end = pos + 4 + _U32.unpack_from(buf, pos)[0]
    if end > len(buf):
        raise ValueError("field table length exceeds the frame")
    stack = [(end, True)]  # (end offset, is a table: entries have names)
    pos += 4
    while stack:
        level_end, is_table = stack[-1]
        if pos >= level_end:
            if pos > level_end:
                raise ValueError("field value overruns its table")
            stack.pop()
            continue
        if is_table:
            pos += 1 + buf[pos]
            if pos >= level_end:
                raise ValueError("field table entry is truncated")
        kind = buf[pos:pos + 1]
        if kind in _NESTED:
            if pos + 5 > level_end:
                raise ValueError("field value is truncated")
            inner_end = pos + 5 + _U32.unpack_from(buf, pos + 1)[0]
            if inner_end > level_end:
                raise ValueError("nested field value overruns its table")
            if len(stack) >= limit:
                raise ValueError(f"field tables nested deeper than {limit} levels")
            stack.append((inner_end, kind == b"F"))
            pos += 5
        else:
            pos = value_end(buf, pos)
    return end


def check_headers(props: bytes, max_depth: int | None = None) -> None:
    """Check the headers table of a content header's property bytes (check_table)."""
    _, start, end = _props._locate(props, _props.FLAG_HEADERS)
    if start != end:
        check_table(props, start, max_depth)
