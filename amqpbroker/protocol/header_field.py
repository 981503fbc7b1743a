"""Read or rewrite one top-level header of a message's property bytes without decoding the
whole table (pamqp's decode costs tens of microseconds; this is a short scan).

Used for `x-delay` (model/delayed.py), read on every publish to a delaying exchange and
rewritten to -delay when the message is routed. Splicing keeps every other byte as the
publisher sent it (see `properties._splice`). Field value types: AMQP 0-9-1 as RabbitMQ
and pamqp encode them (https://www.rabbitmq.com/amqp-0-9-1-errata#section_3).
"""

from __future__ import annotations

import struct
from decimal import Decimal
from typing import Any

from amqpbroker.protocol.properties import FLAG_HEADERS, _locate

_U32 = struct.Struct(">I")
# type byte -> (size, struct format or None)
_FIXED: dict[int, tuple[int, str | None]] = {
    ord("t"): (1, ">?"), ord("b"): (1, ">b"), ord("B"): (1, ">B"), ord("s"): (2, ">h"),
    ord("u"): (2, ">H"), ord("I"): (4, ">i"), ord("i"): (4, ">I"), ord("l"): (8, ">q"),
    ord("f"): (4, ">f"), ord("d"): (8, ">d"), ord("D"): (5, None), ord("T"): (8, ">Q"),
    ord("V"): (0, None),
}
_VARIABLE = frozenset(map(ord, "SxFA"))


def find(props: bytes, name: str) -> tuple[int, int, int, int] | None:
    """(type byte, value start, value end, table start) of header `name`, or None.

    :raises ValueError: malformed properties or table
    """
    _, start, end = _locate(props, FLAG_HEADERS)
    if start == end:
        return None
    key = name.encode("utf-8")
    pos = start + 4
    try:
        while pos < end:
            klen = props[pos]
            kend = pos + 1 + klen
            kind = props[kend]
            vstart = kend + 1
            if kind in _VARIABLE:
                vend = vstart + 4 + _U32.unpack_from(props, vstart)[0]
            else:
                vend = vstart + _FIXED[kind][0]
            if vend > end:
                raise ValueError("header table is truncated")
            if props[pos + 1:kend] == key:
                return kind, vstart, vend, start
            pos = vend
    except (IndexError, KeyError, struct.error):
        raise ValueError("malformed header table") from None
    return None


def read(props: bytes, name: str) -> Any:
    """The value of a scalar header (int, float, bool, str, bytes, Decimal), else None."""
    found = find(props, name)
    if found is None:
        return None
    kind, vstart, vend, _ = found
    if kind == ord("S"):
        return props[vstart + 4:vend].decode("utf-8", "replace")
    if kind == ord("x"):
        return bytes(props[vstart + 4:vend])
    if kind == ord("D"):
        exp = props[vstart]
        return Decimal(struct.unpack_from(">i", props, vstart + 1)[0]).scaleb(-exp)
    fmt = _FIXED.get(kind, (0, None))[1]
    if fmt is None or kind == ord("T"):
        return None
    return struct.unpack_from(fmt, props, vstart)[0]


def replace_int(props: bytes, name: str, value: int) -> bytes:
    """`props` with header `name` set to the integer `value` (it must be present)."""
    found = find(props, name)
    if found is None:
        raise KeyError(name)
    _, vstart, vend, tstart = found
    encoded = (b"I" + struct.pack(">i", value) if -(2**31) <= value < 2**31
               else b"l" + struct.pack(">q", value))
    old_len = _U32.unpack_from(props, tstart)[0]
    new_len = old_len + len(encoded) - (vend - vstart + 1)
    return b"".join((props[:tstart], _U32.pack(new_len), props[tstart + 4:vstart - 1],
                     encoded, props[vend:]))
