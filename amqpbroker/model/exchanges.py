"""Exchange types: direct, fanout, topic and headers.

An exchange here is just a binding table plus a ``route`` function; it does no
IO and knows nothing of queues. Destinations are opaque hashable objects (the
vhost passes queue and exchange objects). The default exchange and
exchange-to-exchange recursion belong to the vhost.

References:
  * AMQP 0-9-1 spec 3.1.3 (exchange types) and the ``exchange.declare`` /
    ``queue.bind`` rules in amqp0-9-1.xml.
  * https://www.rabbitmq.com/docs/exchanges (headers exchange and x-match).
  * RabbitMQ's rabbit_exchange.erl and rabbit_exchange_type_headers.erl for the
    behaviour the docs leave open (which arguments a redeclare compares, exact
    error texts, void values).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import Any, ClassVar

from amqpbroker.model.topic import TopicMatcher

__all__ = [
    "EXCHANGE_TYPES",
    "DirectExchange",
    "Exchange",
    "FanoutExchange",
    "HeadersExchange",
    "TopicExchange",
    "values_equal",
]

# (destination, routing key, frozen arguments): what makes a binding unique.
BindingKey = tuple[Hashable, str, Hashable]

_MISSING: Any = object()
_EMPTY: tuple = ()
_NO_HEADERS: Mapping[str, Any] = {}

# Arguments a redeclare compares. RabbitMQ's
# rabbit_exchange:assert_args_equivalence/2 checks only "alternate-exchange"
# ("The only arg we care about"); any other argument may differ freely.
EQUIVALENCE_ARGUMENTS: tuple[str, ...] = ("alternate-exchange",)


class Exchange:
    """Common binding bookkeeping; subclasses keep a routing index in sync."""

    type: ClassVar[str] = ""
    # Only the headers exchange looks at message headers, so the channel can
    # skip decoding them for every other type.
    needs_headers: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments: dict[str, Any] = dict(arguments) if arguments else {}
        # Insertion-ordered: bindings() must list them in the order made.
        self._bindings: dict[BindingKey, dict[str, Any]] = {}
        # Per destination, so deleting a queue need not scan every binding.
        self._by_dest: dict[Hashable, dict[BindingKey, None]] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} bindings={len(self._bindings)}>"

    # --------------------------------------------------------------- bindings

    def validate_binding(self, arguments: Mapping[str, Any]) -> None:
        """Raise ValueError (caller: 406 PRECONDITION_FAILED) for bad arguments."""

    def bind(
        self, dest: Hashable, routing_key: str, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        """Add a binding; False if the identical binding already exists.

        A binding is identified by (destination, routing key, arguments), so
        re-binding with the same three is a no-op, as in RabbitMQ, while the
        same key with different arguments is a second binding.
        """
        args = dict(arguments) if arguments else {}
        self.validate_binding(args)
        key = (dest, routing_key, _freeze_args(args))
        if key in self._bindings:
            return False
        self._bindings[key] = args
        self._by_dest.setdefault(dest, {})[key] = None
        self._add_route(key, args)
        return True

    def unbind(
        self, dest: Hashable, routing_key: str, arguments: Mapping[str, Any] | None = None
    ) -> bool:
        """Remove one binding; False if no identical binding exists."""
        key = (dest, routing_key, _freeze_args(arguments or {}))
        if key not in self._bindings:
            return False
        self._drop(key)
        return True

    def unbind_all(self, dest: Hashable) -> int:
        """Remove every binding to *dest* (it was deleted); returns how many."""
        keys = self._by_dest.get(dest)
        if not keys:
            return 0
        doomed = list(keys)
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def _drop(self, key: BindingKey) -> None:
        args = self._bindings.pop(key)
        dest = key[0]
        keys = self._by_dest[dest]
        del keys[key]
        if not keys:
            del self._by_dest[dest]
        self._remove_route(key, args)

    def bindings(self) -> Iterator[tuple[Hashable, str, dict[str, Any]]]:
        """(destination, routing key, arguments) in the order they were made."""
        for (dest, routing_key, _), args in list(self._bindings.items()):
            yield dest, routing_key, dict(args)

    def has_bindings(self) -> bool:
        return bool(self._bindings)

    # ---------------------------------------------------------------- routing

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple:
        """Destinations for a message, each at most once."""
        raise NotImplementedError

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        raise NotImplementedError

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ equivalence

    def is_equivalent(
        self,
        type: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: Mapping[str, Any] | None,
    ) -> bool:
        """Would redeclaring with these properties be accepted (else 406)?"""
        return self.inequivalent_field(type, durable, auto_delete, internal, arguments) is None

    def inequivalent_field(
        self,
        type: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: Mapping[str, Any] | None,
    ) -> str | None:
        """Name of the first property a redeclare disagrees on, or None.

        Same order as rabbit_exchange:assert_equivalence/6, so the caller can
        build RabbitMQ's "inequivalent arg '<field>' for exchange ..." text.
        """
        if type != self.type:
            return "type"
        if bool(durable) != bool(self.durable):
            return "durable"
        if bool(auto_delete) != bool(self.auto_delete):
            return "auto_delete"
        if bool(internal) != bool(self.internal):
            return "internal"
        theirs = arguments or _NO_HEADERS
        for name in EQUIVALENCE_ARGUMENTS:
            mine = self.arguments.get(name, _MISSING)
            other = theirs.get(name, _MISSING)
            # Present on one side only is a mismatch (rabbit_misc:assert_args_equivalence).
            if (mine is _MISSING) != (other is _MISSING):
                return name
            if mine is not _MISSING and _freeze(mine) != _freeze(other):
                return name
        return None


# --------------------------------------------------------------------- direct


class DirectExchange(Exchange):
    """Routes to bindings whose key equals the routing key (AMQP 3.1.3.1)."""

    type = "direct"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bindings that differ only in arguments share a destination, so
        # count them and route to the destination while any remains.
        self._counts: dict[str, dict[Hashable, int]] = {}
        # Precomputed answers: route() is a single dict lookup.
        self._routes: dict[str, tuple] = {}

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple:
        return self._routes.get(routing_key, _EMPTY)

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        dest, routing_key, _ = key
        counts = self._counts.setdefault(routing_key, {})
        if _incr(counts, dest):
            self._routes[routing_key] = tuple(counts)

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        dest, routing_key, _ = key
        counts = self._counts[routing_key]
        if not _decr(counts, dest):
            return
        if counts:
            self._routes[routing_key] = tuple(counts)
        else:
            del self._counts[routing_key]
            del self._routes[routing_key]


# --------------------------------------------------------------------- fanout


class FanoutExchange(Exchange):
    """Routes to every bound destination, ignoring the key (AMQP 3.1.3.2)."""

    type = "fanout"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counts: dict[Hashable, int] = {}
        self._routes: tuple = _EMPTY

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple:
        return self._routes

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        if _incr(self._counts, key[0]):
            self._routes = tuple(self._counts)

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        if _decr(self._counts, key[0]):
            self._routes = tuple(self._counts)


# ---------------------------------------------------------------------- topic


class TopicExchange(Exchange):
    """Routes by pattern over dot-separated words (AMQP 3.1.3.3); see topic.py."""

    type = "topic"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._matcher = TopicMatcher()
        # (pattern, dest) -> number of bindings (they may differ in arguments).
        self._counts: dict[tuple[str, Hashable], int] = {}

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple:
        return self._matcher.match(routing_key)

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        dest, pattern, _ = key
        if _incr(self._counts, (pattern, dest)):
            self._matcher.add(pattern, dest)

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        dest, pattern, _ = key
        if _decr(self._counts, (pattern, dest)):
            self._matcher.remove(pattern, dest)


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


# -------------------------------------------------------------------- helpers


_NO_ARGS_KEY: Hashable = ("F", ())


def _freeze_args(args: Mapping[str, Any]) -> Hashable:
    return _freeze(args) if args else _NO_ARGS_KEY


def _freeze(value: Any) -> Hashable:
    """A hashable, type-tagged form of an AMQP field value.

    Tagging keeps True and 1 (and 1 and 1.0) apart, as RabbitMQ's typed field
    tables do, and sorting table keys makes key order irrelevant.
    """
    if isinstance(value, Mapping):
        return ("F", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("A", tuple(_freeze(v) for v in value))
    if isinstance(value, bytearray):
        return ("x", bytes(value))
    try:
        hash(value)
    except TypeError:
        return ("?", type(value).__name__, repr(value))
    return (type(value).__name__, value)


def _incr(counts: dict[Any, int], item: Any) -> bool:
    """Count one more binding for *item*; True if it is the first."""
    n = counts.get(item, 0)
    counts[item] = n + 1
    return n == 0


def _decr(counts: dict[Any, int], item: Any) -> bool:
    """Count one binding less for *item*; True if it was the last."""
    n = counts[item] - 1
    if n:
        counts[item] = n
        return False
    del counts[item]
    return True


EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}
