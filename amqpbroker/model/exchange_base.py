"""The exchange base class: a binding table with a `route` function (no IO).

Subclasses (`model/exchanges.py`, `model/headers_exchange.py`) keep their own routing index
in sync through `_add_route` / `_remove_route`. Destinations are opaque hashable objects.
See `model/exchanges.py` for the references.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from typing import Any, ClassVar

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
    # Management API counters: messages published into the exchange, and those of them
    # routed to at least one queue (class defaults; bumped by the core session's publish).
    published_in = 0
    published_out = 0
    # Bindings point at exchanges and at destinations (model.destination): routing tells
    # them apart by this flag.
    is_exchange: ClassVar[bool] = True
    # How many exchanges this one has bindings to: while none, what route() returns is
    # queues only and goes to the publisher as it is (VirtualHost.route).
    exchange_dests = 0
    # Only the headers exchange looks at message headers, so the channel can
    # skip decoding them for every other type.
    needs_headers: ClassVar[bool] = False
    # With needs_headers: route() gets the whole message instead of its headers (the
    # consistent-hash exchange hashing on a property).
    needs_message: ClassVar[bool] = False
    # Messages with an x-delay header wait before they are routed (x-delayed-message, or
    # LavinMQ's x-delayed-exchange argument); see model/delayed.py.
    delays: ClassVar[bool] = False
    # Set by a matching policy (model/policy.py; VirtualHost.apply_policy).
    policy: str | None = None
    operator_policy: str | None = None
    effective_policy_definition: dict[str, Any] = {}

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

    def apply_policy(self, effective: Any) -> None:
        """A policy's `alternate-exchange` applies unless the argument sets one
        (https://www.rabbitmq.com/docs/ae)."""
        self.policy = effective.policy
        self.operator_policy = effective.operator_policy
        self.effective_policy_definition = effective.definition
        args = effective.arguments if effective.policy else self.arguments
        alternate = args.get("alternate-exchange")
        self.alternate = alternate.decode() if isinstance(alternate, bytes) else alternate

    # --------------------------------------------------------------- bindings

    @classmethod
    def validate_arguments(cls, arguments: Mapping[str, Any]) -> None:
        """Raise ValueError (caller: 406 PRECONDITION_FAILED) for bad declare arguments."""

    def validate_binding(self, arguments: Mapping[str, Any]) -> None:
        """Raise ValueError (caller: 406 PRECONDITION_FAILED) for bad arguments."""

    def validate_destination(self, dest: Hashable, routing_key: str) -> None:
        """Raise ValueError (caller: 406) for a binding key or destination this type
        refuses (e.g. a consistent-hash weight that is not a number)."""

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
        self.validate_destination(dest, routing_key)
        key = (dest, routing_key, _freeze_args(args))
        if key in self._bindings:
            return False
        self._bindings[key] = args
        keys = self._by_dest.get(dest)
        if keys is None:
            keys = self._by_dest[dest] = {}
            if getattr(dest, "is_exchange", False):
                self.exchange_dests += 1
        keys[key] = None
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
            if getattr(dest, "is_exchange", False):
                self.exchange_dests -= 1
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


