"""The headers exchange (https://www.rabbitmq.com/docs/exchanges#headers): routing on
message headers with x-match all / any / all-with-x / any-with-x, RabbitMQ's value
comparison rules and its error texts (rabbit_exchange_type_headers.erl)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from amqpbroker.model.exchange_base import _EMPTY, _MISSING, _NO_HEADERS, BindingKey, Exchange

# -------------------------------------------------------------------- headers

# x-match values RabbitMQ accepts (rabbit_exchange_type_headers:validate_binding/2).
X_MATCH_MODES = frozenset({"all", "any", "all-with-x", "any-with-x"})

# Same-type values of these classes compare with plain ==.
_PLAIN_TYPES = frozenset({str, int, float, bytes})
_TEXT_TYPES = (str, bytes, bytearray)


# One binding pair: (header name, wanted value, wanted value's class when a
# plain == on an identical class decides equality, else None).
_HeadersPair = tuple[str, Any, type | None]
# A compiled binding: (destination, match-any?, pairs).
_HeadersRule = tuple[Hashable, bool, tuple[_HeadersPair, ...]]


class HeadersExchange(Exchange):
    """Routes on message headers against binding arguments (AMQP 3.1.3.4).

    x-match=all (the default) needs every binding pair to match, x-match=any
    needs one. Binding keys starting with "x-" are not matched under all/any;
    under all-with-x/any-with-x they are (only x-match itself is skipped).
    A void (None) binding value matches when the header is present with any
    value. https://www.rabbitmq.com/docs/exchanges#headers
    """

    type = "headers"
    needs_headers = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rules: dict[BindingKey, _HeadersRule] = {}
        # Snapshot iterated by route(); rebuilt on every binding change.
        self._table: tuple[_HeadersRule, ...] = _EMPTY

    def validate_binding(self, arguments: Mapping[str, Any]) -> None:
        mode = arguments.get("x-match", _MISSING)
        # The spec is vague on whether x-match may be omitted; RabbitMQ allows
        # it and defaults to "all".
        if mode is _MISSING or (isinstance(mode, str) and mode in X_MATCH_MODES):
            return
        raise ValueError(_x_match_error(mode))

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple:
        if headers is None:
            headers = _NO_HEADERS
        hits: dict[Hashable, None] = {}
        for dest, match_any, pairs in self._table:
            if dest in hits:
                continue
            if _match_any(pairs, headers) if match_any else _match_all(pairs, headers):
                hits[dest] = None
        return tuple(hits) if hits else _EMPTY

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        self._rules[key] = _compile_headers_rule(key[0], args)
        self._table = tuple(self._rules.values())

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        del self._rules[key]
        self._table = tuple(self._rules.values())


def _compile_headers_rule(dest: Hashable, args: Mapping[str, Any]) -> _HeadersRule:
    """Pre-digest binding arguments so route() only compares values."""
    mode = args.get("x-match", "all")
    with_x = mode.endswith("-with-x")
    pairs = tuple(
        (name, value, _plain_class(value))
        for name, value in args.items()
        # x-match itself is never a header to match; other "x-" arguments
        # only count in the -with-x modes (rabbit_exchange_type_headers.erl).
        if name != "x-match" and (with_x or not name.startswith("x-"))
    )
    return dest, mode.startswith("any"), pairs


def _plain_class(value: Any) -> type | None:
    cls = value.__class__
    return cls if cls in _PLAIN_TYPES else None


# route() runs these for every headers binding, so the common case -- header
# and binding value of the same plain class, usually str -- costs one class
# check and one ==; everything else goes through values_equal().


def _match_all(pairs: tuple[_HeadersPair, ...], headers: Mapping[str, Any]) -> bool:
    # An empty pair list matches everything, even a message with no headers.
    for name, wanted, cls in pairs:
        got = headers.get(name, _MISSING)
        if got.__class__ is cls:
            if got != wanted:
                return False
        elif got is _MISSING:
            return False
        elif wanted is not None and not values_equal(wanted, got):
            return False
    return True


def _match_any(pairs: tuple[_HeadersPair, ...], headers: Mapping[str, Any]) -> bool:
    for name, wanted, cls in pairs:
        got = headers.get(name, _MISSING)
        if got.__class__ is cls:
            if got == wanted:
                return True
        elif got is not _MISSING and (wanted is None or values_equal(wanted, got)):
            return True
    return False


def values_equal(a: Any, b: Any) -> bool:
    """AMQP field-value equality as RabbitMQ's headers exchange applies it.

    RabbitMQ compares decoded values with Erlang ``==``: booleans are atoms
    and never equal numbers (unlike Python's ``True == 1``), integers equal
    floats of the same value, and a long string equals a byte array holding
    the same bytes.
    """
    cls = a.__class__
    if cls is b.__class__ and cls in _PLAIN_TYPES:
        return a == b
    if cls is bool or b.__class__ is bool:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, _TEXT_TYPES) and isinstance(b, _TEXT_TYPES):
        return _as_bytes(a) == _as_bytes(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(values_equal, a, b))
    return cls is b.__class__ and a == b


def _as_bytes(value: str | bytes | bytearray) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


# ------------------------------------------------------- x-match error texts


def _x_match_error(mode: Any) -> str:
    """RabbitMQ's wording (rabbit_exchange_type_headers:validate_binding/2)."""
    if isinstance(mode, (str, bytes)):
        return (
            f"Invalid x-match field value {_erlang_binary(_as_bytes(mode))}; "
            "expected all, any, all-with-x, or any-with-x"
        )
    return (
        f"Invalid x-match field type {_amqp_type_name(mode)} "
        f"(value {_erlang_term(mode)}); expected longstr"
    )


def _amqp_type_name(value: Any) -> str:
    """RabbitMQ's name for the field type a client would most likely have used."""
    if value is None:
        return "void"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return _int_type_name(value)
    if isinstance(value, float):
        return "double"
    if isinstance(value, bytearray):
        return "binary"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__.lower()


def _int_type_name(value: int) -> str:
    # The wire type is lost once decoded; guess the smallest type, as common
    # clients (pamqp, the Java client) pick when encoding.
    for low, high, name in (
        (-(2**7), 2**7 - 1, "byte"),
        (-(2**15), 2**15 - 1, "short"),
        (-(2**31), 2**31 - 1, "signedint"),
    ):
        if low <= value <= high:
            return name
    return "long"


def _erlang_term(value: Any) -> str:
    """Roughly how Erlang's ~tp prints the decoded value."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray)):
        return _erlang_binary(bytes(value))
    return repr(value)


def _erlang_binary(data: bytes) -> str:
    if not data:
        return "<<>>"
    if all(32 <= b < 127 for b in data):
        return '<<"' + _erlang_escape(data.decode("ascii")) + '">>'
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and text.isprintable():
        return '<<"' + _erlang_escape(text) + '"/utf8>>'
    return "<<" + ",".join(str(b) for b in data) + ">>"


def _erlang_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


