"""A virtual host: exchanges, queues and bindings, with RabbitMQ's rules for declaring them.

Plain synchronous Python: every operation either succeeds or raises an `AMQPError` carrying
the reply code and the wording RabbitMQ uses, so clients see the same errors.
Durable topology changes are appended to the definition store as the same operations clients
send; at startup `apply()` replays them through these very methods (LavinMQ's design: one
code path for live and recovered topology).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from amqpbroker import errors
from amqpbroker.clock import Scheduler
from amqpbroker.model.delayed import DelayedMessages, exchange_class, lavinmq_delayed
from amqpbroker.model.exchanges import (
    EQUIVALENCE_ARGUMENTS,
    EXCHANGE_TYPES,
    DirectExchange,
    Exchange,
)
from amqpbroker.message import Message
from amqpbroker.model.churn import Churn
from amqpbroker.model.names import server_named
from amqpbroker.model.destination import COUNTERS, Destination
from amqpbroker.model.policy import NONE, PolicySet
from amqpbroker.model.queue_types import (
    check_delete,
    equivalence_arguments,
    new_queue,
    with_default_type,
)

if TYPE_CHECKING:
    from amqpbroker.model.changes import DurableChanges

# https://www.rabbitmq.com/docs/exchanges#default-exchange and the amq.* set RabbitMQ
# predeclares in every vhost.
PREDECLARED = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
)


class VirtualHost:
    def __init__(
        self,
        name: str,
        changes: "DurableChanges | None" = None,
        scheduler: Scheduler | None = None,
        *,
        message_changes: bool = True,
    ) -> None:
        self.name = name
        # Durable topology changes go to `changes.definition`; durable queues' message
        # changes to the same stream when `message_changes` (a broker with a message store).
        self.definitions = changes
        self.changes = changes if message_changes else None
        # Clock and timers for queue features (TTL, x-expires): the core's, or a private one.
        self.scheduler = scheduler if scheduler is not None else Scheduler()
        self.streams: Any = None  # the core's StreamRegistry: where stream queues' logs live
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Destination] = {}
        # Direct reply-to addresses (amq.rabbitmq.reply-to.<token>) -> their pseudo-queues.
        self.reply_queues: dict[str, Any] = {}
        # Message counters of deleted queues (the management API's vhost totals keep them).
        self.retired_counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        # Queues declared, created and deleted (model/churn.py): the core's, shared by
        # every vhost, or a private one for a vhost built alone.
        self.churn = Churn()
        self.default_exchange = _make(DirectExchange, "", True, False, False, {})
        self.exchanges[""] = self.default_exchange
        for ex_name, ex_type in PREDECLARED:
            self.exchanges[ex_name] = _make(EXCHANGE_TYPES[ex_type], ex_name, True, False,
                                            False, {})
        self._replaying = False
        # Messages waiting in x-delayed-message exchanges (model/delayed.py).
        self.delayed = DelayedMessages(self)
        # Policies and operator policies (model/policy.py); set by the admin plane.
        self.policies = PolicySet()
        # Vhost limits ("max-queues", "max-connections"); a negative value is no limit.
        self.limits: dict[str, int] = {}

    # -- lookups ------------------------------------------------------------------------
    def exchange(self, name: str) -> Exchange:
        try:
            return self.exchanges[name]
        except KeyError:
            raise errors.NotFound(f"no exchange '{name}' in vhost '{self.name}'") from None

    def queue(self, name: str) -> Destination:
        try:
            return self.queues[name]
        except KeyError:
            raise errors.NotFound(f"no queue '{name}' in vhost '{self.name}'") from None

    # -- exchanges ------------------------------------------------------------------------
    def declare_exchange(
        self,
        name: str,
        type: str,
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> Exchange:
        arguments = arguments or {}
        if not name:  # passive or not (rabbit_channel: check_not_default_exchange)
            raise errors.AccessRefused("operation not permitted on the default exchange")
        if passive:
            return self.exchange(name)
        existing = self.exchanges.get(name)
        if existing is not None:
            self._check_equivalent_exchange(existing, type, durable, auto_delete, internal, arguments)
            return existing
        if name.startswith("amq."):
            raise errors.AccessRefused(
                f"exchange name '{name}' contains reserved prefix 'amq.*'"
            )
        cls = exchange_class(type, arguments, EXCHANGE_TYPES)  # 406 for an unknown type
        _check_exchange_arguments(arguments)
        try:
            cls.validate_arguments(arguments)  # e.g. x-consistent-hash's hash-header
        except ValueError as exc:
            raise errors.PreconditionFailed(str(exc)) from None
        ex = _make(cls, name, durable, auto_delete, internal, arguments)
        self.exchanges[name] = ex
        if self.policies:
            self.apply_policy(ex)
        if durable:
            self._record({"op": "exchange.declare", "name": name, "type": type,
                          "durable": True, "auto_delete": auto_delete, "internal": internal,
                          "arguments": arguments})
        return ex

    def _check_equivalent_exchange(self, ex: Exchange, type: str, durable: bool,
                                   auto_delete: bool, internal: bool, arguments: dict) -> None:
        for field, received, current in (
            ("type", type, ex.type),
            ("durable", durable, ex.durable),
            ("auto_delete", auto_delete, ex.auto_delete),
            ("internal", internal, ex.internal),
        ):
            if received != current:
                raise errors.PreconditionFailed(
                    f"inequivalent arg '{field}' for exchange '{ex.name}' in vhost "
                    f"'{self.name}': received {_fmt(received)} but current is {_fmt(current)}"
                )
        _check_equivalent_arguments("exchange", ex.name, self.name, ex.arguments, arguments,
                                    EQUIVALENCE_ARGUMENTS)

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        if not name or name.startswith("amq."):
            raise errors.AccessRefused(
                "operation not permitted on the default exchange" if not name else
                f"exchange '{name}' in vhost '{self.name}' is a predeclared exchange"
            )
        ex = self.exchanges.get(name)
        if ex is None:  # RabbitMQ: deleting a missing exchange succeeds (since 3.x)
            return
        if if_unused and (ex.has_bindings() or self._is_destination(ex)):
            raise errors.PreconditionFailed(f"exchange '{name}' in vhost '{self.name}' in use")
        self._remove_exchange(ex)

    def _remove_exchange(self, ex: Exchange) -> None:
        del self.exchanges[ex.name]
        if ex.delays:
            self.delayed.forget(ex)
        for other in list(self.exchanges.values()):
            other.unbind_all(ex)
        if ex.durable:
            self._record({"op": "exchange.delete", "name": ex.name})

    def _is_destination(self, ex: Exchange) -> bool:
        return any(d is ex for other in self.exchanges.values() for d, _, _ in other.bindings())

    # -- queues ---------------------------------------------------------------------------
    def declare_queue(
        self,
        name: str,
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        owner: Any = None,
        server_named_: bool = False,
    ) -> Destination:
        """Declare a queue; `server_named_` marks a name the server generated for an empty
        one (spec 1.7.2.1), which may use the otherwise reserved `amq.` prefix."""
        arguments = arguments or {}
        if passive:
            q = self.queue(name)
            self._check_exclusive(q, owner)
            q.declared()  # renews an x-expires lease
            return q
        if not self._replaying:
            self.churn.queue_declared += 1
        generated = server_named_ or not name
        if not name:
            name = server_named()
        elif name.startswith("amq.") and not server_named_:
            raise errors.AccessRefused(f"queue name '{name}' contains reserved prefix 'amq.*'")
        existing = self.queues.get(name)
        if existing is not None:
            self._check_exclusive(existing, owner)
            self._check_equivalent_queue(existing, durable, exclusive, auto_delete, arguments)
            existing.declared()
            return existing
        max_queues = self.limits.get("max-queues", -1)
        if 0 <= max_queues <= len(self.queues) and not self._replaying:
            raise errors.PreconditionFailed(  # rabbit_amqqueue:check_vhost_queue_limit
                f"cannot declare queue '{name}': queue limit in vhost '{self.name}' "
                f"({max_queues}) is reached")
        # RabbitMQ validates only new queues; replayed definitions were accepted once already.
        # The queue type (classic, quorum, stream) decides the checks and the class.
        q = new_queue(self, name, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
                      arguments=arguments, owner=owner, strict=not self._replaying,
                      server_named=generated)
        self.queues[name] = q
        if not self._replaying:
            self.churn.queue_created += 1
        if self.policies:
            self.apply_policy(q)
        if durable and not exclusive:
            self._record({"op": "queue.declare", "name": name, "durable": True,
                          "auto_delete": auto_delete, "arguments": arguments})
        return q

    def _check_exclusive(self, q: Destination, owner: Any) -> None:
        if q.exclusive_owner is not None and q.exclusive_owner is not owner:
            raise self._locked(q)

    def _locked(self, q: Queue) -> errors.ResourceLocked:
        return errors.ResourceLocked(
            f"cannot obtain exclusive access to locked queue '{q.name}' in vhost "
            f"'{self.name}'. It could be originally declared on another connection or "
            "the exclusive property value does not match that of the original declaration.")

    def _check_equivalent_queue(self, q: Destination, durable: bool, exclusive: bool,
                                auto_delete: bool, arguments: dict) -> None:
        """rabbit_amqqueue:assert_equivalence: durable, auto_delete (406), then the
        exclusive flag (405, even from the owning connection: check_exclusive_access
        strict), then the arguments."""
        for field, received, current in (
            ("durable", durable, q.durable),
            ("auto_delete", auto_delete, q.auto_delete),
        ):
            if received != current:
                raise errors.PreconditionFailed(
                    f"inequivalent arg '{field}' for queue '{q.name}' in vhost '{self.name}': "
                    f"received {_fmt(received)} but current is {_fmt(current)}"
                )
        if exclusive != (q.exclusive_owner is not None):
            raise self._locked(q)
        # Only the arguments of the queue's type count; no x-queue-type means classic.
        _check_equivalent_arguments("queue", q.name, self.name, with_default_type(q.arguments),
                                    with_default_type(arguments), equivalence_arguments(q))

    def delete_queue(self, name: str, *, if_unused: bool = False, if_empty: bool = False,
                     owner: Any = None) -> int:
        q = self.queues.get(name)
        if q is None:  # RabbitMQ answers DeleteOk(0) for a missing queue
            return 0
        self._check_exclusive(q, owner)
        check_delete(q, self.name, if_unused, if_empty)  # quorum queues: 540
        if if_unused and q.consumers:
            raise errors.PreconditionFailed(f"queue '{name}' in vhost '{self.name}' in use")
        if if_empty and q.ready:
            raise errors.PreconditionFailed(f"queue '{name}' in vhost '{self.name}' not empty")
        return self.remove_queue(q)

    def remove_queue(self, q: Destination) -> int:
        """Delete a queue for any reason (client, auto-delete, exclusive owner gone)."""
        if self.queues.get(q.name) is not q:
            return 0
        count = q.message_count
        del self.queues[q.name]
        q.deleted = True
        if not self._replaying:
            self.churn.queue_deleted += 1
        retired = self.retired_counters
        for counter in COUNTERS:
            retired[counter] += getattr(q, counter)
        if q.consumers:
            for consumer in list(q.consumers):  # consumer_cancel_notify
                consumer.queue_deleted(q)
            q.consumers.clear()
        for ex in list(self.exchanges.values()):
            if ex.unbind_all(q):
                self._maybe_auto_delete_exchange(ex)
        if q.changes is not None:
            q.changes.delete_queue(q.key)
        if q.is_stream:
            q.delete()  # its log's files go too
        else:
            q.removed()
        q.release_flow()
        if q.durable and q.exclusive_owner is None:
            self._record({"op": "queue.delete", "name": q.name})
        return count

    def purge_queue(self, name: str, owner: Any = None) -> int:
        q = self.queue(name)
        self._check_exclusive(q, owner)
        return q.purge()

    # -- policies -------------------------------------------------------------------------
    def apply_policy(self, obj: Any) -> None:
        """Give one queue or exchange the settings its matching policies leave in effect."""
        if isinstance(obj, Exchange):
            kind = "exchange"
        else:
            kind = "stream" if obj.is_stream else "quorum" if obj.is_quorum else "classic"
        effective = (self.policies.effective(kind, obj.name, obj.arguments) if self.policies
                     else NONE)
        obj.apply_policy(effective)

    def reapply_policies(self) -> None:
        """A policy was set, changed or cleared: every queue and exchange re-evaluates."""
        for q in list(self.queues.values()):
            if not q.deleted:
                self.apply_policy(q)
        for ex in list(self.exchanges.values()):
            if ex.name:
                self.apply_policy(ex)

    # -- bindings -------------------------------------------------------------------------
    def bind(self, destination: Destination | Exchange, source_name: str, routing_key: str,
             arguments: dict[str, Any] | None = None) -> None:
        arguments = arguments or {}
        if not source_name:
            raise errors.AccessRefused("operation not permitted on the default exchange")
        source = self.exchange(source_name)
        try:
            added = source.bind(destination, routing_key, arguments)
        except ValueError as exc:  # e.g. an invalid x-match value on a headers exchange
            raise errors.PreconditionFailed(str(exc)) from None
        if added and source.durable and destination.durable:
            self._record(_binding_op("bind", source, destination, routing_key, arguments))

    def unbind(self, destination: Destination | Exchange, source_name: str, routing_key: str,
               arguments: dict[str, Any] | None = None) -> None:
        arguments = arguments or {}
        if not source_name:
            raise errors.AccessRefused("operation not permitted on the default exchange")
        source = self.exchange(source_name)
        if source.unbind(destination, routing_key, arguments):
            if source.durable and destination.durable:
                self._record(_binding_op("unbind", source, destination, routing_key, arguments))
            self._maybe_auto_delete_exchange(source)

    def _maybe_auto_delete_exchange(self, ex: Exchange) -> None:
        # An auto-delete exchange goes when its last binding (as source) is removed.
        if ex.auto_delete and not ex.has_bindings() and self.exchanges.get(ex.name) is ex:
            self._remove_exchange(ex)

    # -- routing --------------------------------------------------------------------------
    def route(self, exchange: Exchange, msg: Message) -> Sequence[Destination]:
        """The queues a message published to `exchange` goes to (each once); the caller
        reads it and never changes it (it may be the exchange's own tuple)."""
        if exchange is self.default_exchange:
            q = self.queues.get(msg.routing_key)
            if q is None and self.reply_queues:  # direct reply-to (session/direct_reply.py)
                q = self.reply_queues.get(msg.routing_key)
            return [q] if q is not None else []
        dests = exchange.route(msg.routing_key,
                               _content(exchange, msg) if exchange.needs_headers else None)
        if not exchange.exchange_dests and (dests or exchange.alternate is None):
            return dests  # bound to queues only: nothing to sort out
        result: list[Destination] = []
        nested = False
        for d in dests:
            if not d.is_exchange:  # any Destination: classic, quorum, stream (issue 14)
                result.append(d)
            else:
                nested = True
        if not nested and (result or exchange.alternate is None):
            return result
        return self._route_nested(exchange, msg)

    def _route_nested(self, exchange: Exchange, msg: Message) -> list[Destination]:
        # Exchange-to-exchange bindings and alternate exchanges, loop-safe with a visited set
        # (https://www.rabbitmq.com/docs/e2e, https://www.rabbitmq.com/docs/ae).
        queues: dict[Destination, None] = {}
        visited: set[int] = set()
        stack = [exchange]
        while stack:
            ex = stack.pop()
            if id(ex) in visited:
                continue
            visited.add(id(ex))
            dests = ex.route(msg.routing_key, _content(ex, msg) if ex.needs_headers else None)
            found_any = False
            for d in dests:
                found_any = True
                if not d.is_exchange:
                    queues[d] = None
                else:
                    stack.append(d)
            if not found_any and ex.alternate is not None:
                alt = self.exchanges.get(ex.alternate)
                if alt is not None:
                    stack.append(alt)
        return list(queues)

    # -- replay of durable definitions -------------------------------------------------------
    def apply(self, op: dict[str, Any]) -> None:
        """Replay one recorded operation (startup recovery) through the live methods."""
        self._replaying = True
        try:
            kind = op["op"]
            if kind == "exchange.declare":
                self.declare_exchange(op["name"], op["type"], durable=True,
                                      auto_delete=op["auto_delete"], internal=op["internal"],
                                      arguments=op["arguments"])
            elif kind == "exchange.delete":
                ex = self.exchanges.get(op["name"])
                if ex is not None:
                    self._remove_exchange(ex)
            elif kind == "queue.declare":
                self.declare_queue(op["name"], durable=True, auto_delete=op["auto_delete"],
                                   arguments=op["arguments"])
            elif kind == "queue.delete":
                q = self.queues.get(op["name"])
                if q is not None:
                    self.remove_queue(q)
            elif kind in ("bind", "unbind"):
                dest = (self.queues if op["destination_type"] == "queue" else self.exchanges).get(
                    op["destination"])
                if dest is not None and op["source"] in self.exchanges:
                    getattr(self, kind)(dest, op["source"], op["routing_key"], op["arguments"])
        finally:
            self._replaying = False

    def durable_ops(self) -> Iterable[dict[str, Any]]:
        """The live durable topology as a minimal op list (for compaction and export)."""
        for ex in self.exchanges.values():
            if ex.durable and ex.name and not ex.name.startswith("amq."):
                yield {"op": "exchange.declare", "vhost": self.name, "name": ex.name,
                       "type": ex.type, "durable": True, "auto_delete": ex.auto_delete,
                       "internal": ex.internal, "arguments": ex.arguments}
        for q in self.queues.values():
            if q.durable and q.exclusive_owner is None:
                yield {"op": "queue.declare", "vhost": self.name, "name": q.name,
                       "durable": True, "auto_delete": q.auto_delete, "arguments": q.arguments}
        for ex in self.exchanges.values():
            if not ex.durable:
                continue
            for dest, key, args in ex.bindings():
                if dest.durable and getattr(dest, "exclusive_owner", None) is None:
                    op = _binding_op("bind", ex, dest, key, args)
                    op["vhost"] = self.name
                    yield op

    def _record(self, op: dict[str, Any]) -> None:
        if self.definitions is not None and not self._replaying:
            op["vhost"] = self.name
            self.definitions.definition(op)


def _content(ex: Exchange, msg: Message) -> Any:
    """What an exchange that looks past the routing key routes on: the headers, or the
    whole message (consistent hashing on a property)."""
    return msg if ex.needs_message else msg.headers


def _binding_op(kind: str, source: Exchange, dest: Destination | Exchange, key: str,
                arguments: dict) -> dict[str, Any]:
    return {"op": kind, "source": source.name, "destination": dest.name,
            "destination_type": "exchange" if dest.is_exchange else "queue",
            "routing_key": key, "arguments": arguments}


def _check_exchange_arguments(arguments: dict[str, Any]) -> None:
    ae = arguments.get("alternate-exchange")
    if ae is not None and not isinstance(ae, (str, bytes)):
        raise errors.PreconditionFailed(
            f"invalid arg 'alternate-exchange' for exchange: {ae!r} is not a string")


def _make(cls: type[Exchange], name: str, durable: bool, auto_delete: bool, internal: bool,
          arguments: dict[str, Any]) -> Exchange:
    ex = cls(name, durable=durable, auto_delete=auto_delete, internal=internal,
             arguments=arguments)
    # https://www.rabbitmq.com/docs/ae: unroutable messages go to this exchange.
    alternate = arguments.get("alternate-exchange")
    ex.alternate = alternate.decode("utf-8", "replace") if isinstance(alternate, bytes) else alternate  # type: ignore[attr-defined]
    if lavinmq_delayed(arguments):
        ex.delays = True  # type: ignore[misc]
    return ex


def _check_equivalent_arguments(kind: str, name: str, vhost: str, current: dict,
                                received: dict, compared: Iterable[str]) -> None:
    for key in compared:
        if current.get(key) != received.get(key):
            raise errors.PreconditionFailed(
                f"inequivalent arg '{key}' for {kind} '{name}' in vhost '{vhost}': "
                f"received {_fmt(received.get(key), True)} but current is "
                f"{_fmt(current.get(key), True)}"
            )


def _fmt(value: Any, argument: bool = False) -> str:
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    if value is None and argument:
        return "none"
    if isinstance(value, int):
        return f"'{value}'" if not argument else f"the value '{value}' of type 'long'"
    if isinstance(value, str) and argument:
        return f"the value '{value}' of type 'longstr'"
    return f"'{value}'"
