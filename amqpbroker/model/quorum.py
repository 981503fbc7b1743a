"""Quorum queues on one node (issue 10, part 1): RabbitMQ 4.x's rules, replication factor 1.

A quorum queue here is a `model.queue.Queue` built with `quorum=True`: always durable,
never exclusive nor auto-delete, every message written to the message store (the
broker's durable log) and confirmed after the group commit's fsync whatever its
delivery_mode - the delivered message keeps the properties it was published with. What
differs from a classic queue lives in this module:

* `validate_quorum_declaration` - RabbitMQ 4.x's checks in its order
  (rabbit_amqqueue:check_declare_arguments, then rabbit_quorum_queue:declare): argument
  values (only the validators of the arguments quorum queues take), then arguments only
  other queue types take ("invalid arg 'x-max-priority' for queue 'q' in vhost '/' of
  queue type rabbit_quorum_queue"), then the properties ("invalid property 'auto-delete' |
  'exclusive-owner' | 'non-durable' for queue 'q' in vhost '/'").
* `quorum_config` - the features: `x-delivery-limit` defaults to 20 (4.x; a negative value
  means unlimited), `x-overflow=reject-publish-dlx` falls back to drop-head with a warning
  (rabbit_quorum_queue:overflow/3), `x-dead-letter-strategy=at-least-once` without
  `x-overflow=reject-publish` falls back to at-most-once with RabbitMQ's warning.
* `QuorumReady` - the ready list: two priorities, as RabbitMQ 4.x (rabbit_fifo_q):
  priority 0-4 (or none) is normal, 5 and above high; high is favoured 2:1 and returned
  (requeued) messages go first, in the order they were returned.
* `check_quorum_consume` / `check_quorum_delete` - global QoS is 540 at basic.consume
  ("queue 'q' in vhost '/' does not support global qos"), consumer arguments other than
  the quorum queue's own are refused, queue.delete with if-unused / if-empty is 540.

Ignored, as on a one-node RabbitMQ: x-quorum-initial-group-size (validated),
x-queue-leader-locator (validated), x-max-in-memory-length/-bytes.
References: https://www.rabbitmq.com/docs/quorum-queues, rabbit_quorum_queue.erl.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping

from amqpbroker.model.report import log
from amqpbroker import errors
from amqpbroker.model.arguments import Atom, amqp_type_name, as_int, as_text, term
from amqpbroker.model.queue_args import (
    DROP_HEAD,
    REJECT_PUBLISH,
    REJECT_PUBLISH_DLX,
    QueueConfig,
    check_bool,
    check_dlrk,
    check_dlx,
    check_expires,
    check_message_ttl,
    check_non_neg,
    check_overflow,
    describe,
    parse_queue_arguments,
)


QUEUE_TYPE = "rabbit_quorum_queue"
DEFAULT_DELIVERY_LIMIT = 20  # RabbitMQ 4.x (?DEFAULT_DELIVERY_LIMIT)
HIGH_PRIORITY_ABOVE = 4  # priorities 5..255 are "high"
WEIGHT = 2  # high priority messages are favoured 2:1 (rabbit_fifo_q ?WEIGHT)
DEAD_LETTER_STRATEGIES = ("at-most-once", "at-least-once")
LEADER_LOCATORS = ("client-local", "balanced", "random", "least-leaders", "min-masters")

# rabbit_quorum_queue:capabilities() queue_arguments: what a quorum queue takes (and what
# a redeclaration compares, in this order).
QUORUM_ARGUMENTS = (
    "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy",
    "x-expires", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
    "x-max-in-memory-bytes", "x-overflow", "x-single-active-consumer", "x-queue-type",
    "x-quorum-initial-group-size", "x-delivery-limit", "x-message-ttl",
    "x-queue-leader-locator",
)
# Arguments only classic queues or streams take: refused by name, in the client's order.
OTHER_TYPES_ONLY = frozenset((
    "x-max-priority", "x-queue-mode", "x-queue-version", "x-queue-master-locator",
    "x-max-age", "x-stream-max-segment-size-bytes", "x-initial-cluster-size",
))
# Consumer arguments of other queue types (a quorum consumer takes x-priority only).
CONSUMER_ARGS_OTHER_TYPES_ONLY = ("x-stream-offset", "x-stream-filter",
                                  "x-stream-match-unfiltered")


# -- declaration ------------------------------------------------------------------------

def check_dl_strategy(value: Any, args: Mapping[str, Any]) -> Any:
    if isinstance(value, (str, bytes)):
        return None if as_text(value) in DEAD_LETTER_STRATEGIES else Atom("invalid_dlx_strategy")
    return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))


def check_group_size(value: Any, args: Mapping[str, Any]) -> Any:
    err = check_non_neg(value, args)
    if err is None and value == 0:
        return (Atom("value_zero"), value)
    return err


def check_locator(value: Any, args: Mapping[str, Any]) -> Any:
    if isinstance(value, (str, bytes)):
        return None if as_text(value) in LEADER_LOCATORS else Atom("invalid_queue_locator_arg")
    return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))


# rabbit_amqqueue:declare_args/0 order, restricted to the quorum queue's arguments; the
# last two are this broker's own checks (RabbitMQ does not validate them).
VALIDATORS: tuple[tuple[str, Callable[[Any, Mapping[str, Any]], Any]], ...] = (
    ("x-expires", check_expires),
    ("x-message-ttl", check_message_ttl),
    ("x-dead-letter-exchange", check_dlx),
    ("x-dead-letter-routing-key", check_dlrk),
    ("x-dead-letter-strategy", check_dl_strategy),
    ("x-max-length", check_non_neg),
    ("x-max-length-bytes", check_non_neg),
    ("x-max-in-memory-length", check_non_neg),
    ("x-max-in-memory-bytes", check_non_neg),
    ("x-overflow", check_overflow),
    ("x-single-active-consumer", check_bool),
    ("x-quorum-initial-group-size", check_group_size),
    ("x-queue-leader-locator", check_locator),
    ("x-delivery-limit", lambda v, a: as_int(v)),
    ("x-consumer-timeout", check_non_neg),
)


def validate_quorum_arguments(arguments: Mapping[str, Any], queue: str, vhost: str) -> None:
    """Argument values, then arguments of other queue types (RabbitMQ's order)."""
    where = describe(queue, vhost)
    for key, check in VALIDATORS:
        if arguments.get(key) is not None:
            err = check(arguments[key], arguments)
            if err is not None:
                raise errors.PreconditionFailed(f"invalid arg '{key}' for {where}: {term(err)}")
    for key in arguments:
        if key in OTHER_TYPES_ONLY:
            raise errors.PreconditionFailed(
                f"invalid arg '{key}' for {where} of queue type {QUEUE_TYPE}")


def check_properties(queue: str, vhost: str, durable: bool, exclusive: bool,
                     auto_delete: bool) -> None:
    """rabbit_queue_type_util:check_auto_delete / check_exclusive / check_non_durable."""
    for bad, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"),
                      (not durable, "non-durable")):
        if bad:
            raise errors.PreconditionFailed(
                f"invalid property '{prop}' for {describe(queue, vhost)}")


def validate_quorum_declaration(queue: str, vhost: str, durable: bool, exclusive: bool,
                                auto_delete: bool, arguments: Mapping[str, Any],
                                strict: bool = True) -> None:
    """Raise PreconditionFailed (RabbitMQ's wording) unless this declares a valid quorum
    queue. `strict=False` (replayed definitions) only logs invalid argument values."""
    try:
        validate_quorum_arguments(arguments, queue, vhost)
    except errors.PreconditionFailed as exc:
        if strict:
            raise
        log.warning("queue.invalid_arguments_recovered", vhost=vhost, queue=queue,
                    error=exc.text, note="recovered as a quorum queue; invalid values ignored")
    check_properties(queue, vhost, durable, exclusive, auto_delete)


def quorum_config(arguments: Mapping[str, Any] | None, queue: str = "",
                  vhost: str = "") -> QueueConfig:
    """The features of a quorum queue's (validated) arguments; never the plain config."""
    arguments = arguments or {}
    config = parse_queue_arguments(arguments) or QueueConfig()
    limit = arguments.get("x-delivery-limit")
    if limit is None:
        delivery_limit: int | None = DEFAULT_DELIVERY_LIMIT
    elif isinstance(limit, int) and not isinstance(limit, bool):
        delivery_limit = limit if limit >= 0 else None  # negative: unlimited (4.x)
    else:
        delivery_limit = DEFAULT_DELIVERY_LIMIT  # only from unchecked recovered definitions
    overflow = config.overflow
    if as_text(arguments.get("x-overflow")) == REJECT_PUBLISH_DLX:
        log.warning("quorum.invalid_overflow", vhost=vhost, queue=queue,
                    overflow=REJECT_PUBLISH_DLX, used=DROP_HEAD,
                    note="Invalid overflow strategy for quorum queue (as RabbitMQ)")
        overflow = DROP_HEAD
    strategy = as_text(arguments.get("x-dead-letter-strategy"))
    if (strategy == "at-least-once" and config.dead_letter_exchange is not None
            and overflow != REJECT_PUBLISH):
        log.warning("quorum.dead_letter_strategy_fallback", vhost=vhost, queue=queue,
                    note="Falling back to dead-letter-strategy at-most-once because "
                         "at-least-once is incompatible with overflow strategy drop-head")
    return replace(config, max_priority=0, two_priorities=True,
                   delivery_limit=delivery_limit, overflow=overflow)


# -- the ready list ---------------------------------------------------------------------

class QuorumReady:
    """Ready messages of a quorum queue: returned ones first, then two priorities.

    The deque-like interface `model.queue` uses (as `model.ready.PriorityReady`): len,
    truth, append, put_back (returns), popleft, [0], iteration in delivery order,
    clear, heads() (the FIFOs whose heads may expire) and `count`. Between high and
    normal, two dequeues out of three take high; the third takes whichever head was
    enqueued first (rabbit_fifo_q), compared by store id (every quorum message is stored,
    and store ids grow with enqueue order)."""

    __slots__ = ("returns", "hi", "lo", "count", "turn")

    def __init__(self) -> None:
        self.returns: deque[Any] = deque()
        self.hi: deque[Any] = deque()
        self.lo: deque[Any] = deque()
        self.count = 0
        self.turn = 0  # dequeues from hi/lo since normal last had its chance

    def append(self, entry: tuple) -> None:
        (self.hi if (entry[0].priority or 0) > HIGH_PRIORITY_ABOVE else self.lo).append(entry)
        self.count += 1

    def put_back(self, back: list[tuple]) -> None:
        """Returned messages go to the tail of the returns, in the order they came back:
        rabbit_fifo delivers its returns queue before anything else, first returned first
        (not to their original places, as classic queues do; docs/compatibility.md)."""
        self.returns.extend(back)
        self.count += len(back)

    def _next(self) -> deque[Any]:
        if self.returns:
            return self.returns
        hi, lo = self.hi, self.lo
        if hi and lo and self.turn >= WEIGHT:
            return hi if hi[0][0].store_id < lo[0][0].store_id else lo
        return hi if hi else lo

    def popleft(self) -> Any:
        if not self.count:
            raise IndexError("pop from an empty queue")
        level = self._next()
        entry = level.popleft()
        self.count -= 1
        if level is not self.returns:
            self.turn = 0 if self.turn >= WEIGHT else self.turn + 1
        return entry

    def __getitem__(self, index: int) -> Any:
        if index != 0 or not self.count:
            raise IndexError("only the head of a queue can be read")
        return self._next()[0]

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[Any]:
        yield from self.returns
        yield from self.hi
        yield from self.lo

    def clear(self) -> None:
        self.returns.clear()
        self.hi.clear()
        self.lo.clear()
        self.count = 0

    def heads(self) -> Iterator[deque[Any]]:
        return (level for level in (self.returns, self.hi, self.lo) if level)


# -- consuming and deleting -------------------------------------------------------------

def check_quorum_consume(queue: str, vhost: str, arguments: Mapping[str, Any] | None,
                         global_prefetch: int) -> None:
    """basic.consume on a quorum queue: other types' consumer arguments are refused
    (rabbit_amqqueue:check_consume_arguments), then global QoS is 540
    (rabbit_quorum_queue:consume/3)."""
    where = describe(queue, vhost)
    for key in arguments or ():
        if key in CONSUMER_ARGS_OTHER_TYPES_ONLY:
            raise errors.PreconditionFailed(
                f"invalid arg '{key}' for {where} of queue type {QUEUE_TYPE}")
    if global_prefetch:
        raise errors.NotImplemented_(f"{where} does not support global qos")


def check_quorum_delete(queue: str, vhost: str, if_unused: bool, if_empty: bool) -> None:
    """rabbit_quorum_queue:delete/4 refuses the conditional deletes (540)."""
    for flag, name in ((if_unused, "if-unused"), (if_empty, "if-empty")):
        if flag:
            raise errors.NotImplemented_(
                f"cannot delete {describe(queue, vhost)}. queue.delete operations with "
                f"{name} flag set are not supported by quorum queues")
