"""Method frames through pamqp (the slow, complete path for everything but the hot methods)."""

from __future__ import annotations

import functools
import struct

from pamqp import commands
from pamqp.base import Frame as Method

from amqpbroker import errors
from amqpbroker.protocol import tables

_INDEX = struct.Struct(">I")


def decode_method(payload: bytes) -> Method:
    """Decode a method frame payload (class id, method id, arguments) with pamqp.

    An unknown class/method or undecodable arguments are connection errors: RabbitMQ
    answers 540 NOT_IMPLEMENTED for a method it does not know and 502 SYNTAX_ERROR for
    arguments it cannot parse.
    """
    if len(payload) < 4:
        raise errors.FrameError("method frame too short")
    index = _INDEX.unpack_from(payload)[0]
    cls = commands.INDEX_MAPPING.get(index)
    if cls is None:
        raise errors.NotImplemented_(
            f"unknown method class {index >> 16} method {index & 0xFFFF}",
            index >> 16, index & 0xFFFF)
    method = cls.__new__(cls)  # no __init__: it warns on deprecated methods, validates
    try:
        if _TABLE_FIELDS.get(cls) and tables.may_nest_deeper(payload, tables.MAX_DEPTH):
            _check_tables(cls, payload)
        method.unmarshal(payload[4:])
    except Exception as exc:  # struct.error, ValueError, UnicodeDecodeError, ...
        raise errors.SyntaxError_(
            f"cannot decode {cls.name} arguments: {exc}", index >> 16, index & 0xFFFF
        ) from None
    return method


def _has_tables(cls: type[Method]) -> bool:
    return any(cls.amqp_type(name) == "table" for name in cls.__slots__)


_TABLE_FIELDS = {cls: _has_tables(cls) for cls in commands.INDEX_MAPPING.values()}
_FIXED = {"octet": 1, "short": 2, "long": 4, "longlong": 8, "timestamp": 8}


def _check_tables(cls: type[Method], payload: bytes) -> None:
    """Walk the arguments to each table field and check its nesting (without recursion)
    before pamqp decodes it (tables.check_table)."""
    pos, in_bits = 4, False
    for name in cls.__slots__:
        kind = cls.amqp_type(name)
        if kind == "bit":
            pos += 0 if in_bits else 1
            in_bits = True
            continue
        in_bits = False
        if kind in _FIXED:
            pos += _FIXED[kind]
        elif kind == "shortstr":
            pos += 1 + payload[pos]
        elif kind == "longstr":
            pos += 4 + _INDEX.unpack_from(payload, pos)[0]
        elif kind == "table":
            pos = tables.check_table(payload, pos)


def method_ids(method: Method) -> tuple[int, int]:
    index = method.index
    return index >> 16, index & 0xFFFF


def build(cls: type[Method], **fields: object) -> Method:
    """A pamqp method without pamqp's client-side name validation.

    pamqp checks names against the spec's `^[a-zA-Z0-9-_.:]*$` domain, but RabbitMQ (and
    so this broker) accepts any UTF-8 name up to 255 bytes; replies must echo such names.
    """
    method = _unvalidated(cls).__new__(_unvalidated(cls))
    for name, value in fields.items():
        setattr(method, name, value)
    return method


@functools.cache
def _unvalidated(cls: type[Method]) -> type[Method]:
    return type(cls.__name__, (cls,), {"validate": lambda self: None})
