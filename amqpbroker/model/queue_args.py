"""Optional queue arguments: RabbitMQ's validation (and wording), and the parsed result.

`validate_queue_arguments` runs when a queue is created (queue.declare of a new queue, the
YAML topology, recovery replay): an invalid value is a 406 PRECONDITION_FAILED channel error
worded as RabbitMQ 4.x words it (rabbit_amqqueue's declare-argument validators):

    invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}

The trailing term is printed the way Erlang's `~p` prints it, since clients and people
grep for these strings. `parse_queue_arguments` turns valid arguments into a
`QueueConfig`, or None when none of the features that change how a queue works are set:
such queues keep the plain fast path (see model.queue).

The queue type check is isolated in `check_queue_type`: classic, quorum and stream queues
exist (`model.queue_types` builds each; quorum rules in `model.quorum`, stream rules in
`model.stream`). `validate_queue_arguments` is the classic queue's validation.

References: https://www.rabbitmq.com/docs/queues#optional-arguments, /docs/ttl,
/docs/maxlength, /docs/dlx, /docs/priority, /docs/consumers#single-active-consumer,
/docs/consumers#per-queue-delivery-timeouts-using-an-optional-queue-argument,
/docs/quorum-queues#poison-message-handling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from amqpbroker.model.report import log
from amqpbroker import errors
from amqpbroker.model.arguments import Atom, amqp_type_name, as_int, as_text, term


# RabbitMQ's limit for TTLs and expiries (Erlang timers): rabbit_misc:check_expiry/1.
MAX_EXPIRY_MS = 4294967295
MAX_PRIORITY = 255
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
DROP_HEAD, REJECT_PUBLISH, REJECT_PUBLISH_DLX = OVERFLOW_MODES
QUEUE_MODES = ("default", "lazy")

# Arguments that only quorum or stream queues accept: RabbitMQ 4.x refuses them on a
# classic queue ("... of queue type rabbit_classic_queue"). x-delivery-limit is quorum-only
# in RabbitMQ too, but this broker implements it on its (classic) queues: see
# docs/compatibility.md.
_OTHER_TYPES_ONLY = (
    "x-dead-letter-strategy", "x-max-in-memory-length", "x-max-in-memory-bytes",
    "x-quorum-initial-group-size", "x-max-age", "x-stream-max-segment-size-bytes",
    "x-stream-filter-size-bytes", "x-initial-cluster-size",
)


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """The features a queue was declared with (times in milliseconds)."""

    message_ttl: int | None = None
    expires: int | None = None
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: str = DROP_HEAD
    max_priority: int = 0  # 0 = not a priority queue
    single_active_consumer: bool = False
    delivery_limit: int | None = None  # None = unlimited
    two_priorities: bool = False  # a quorum queue's ready list (model.quorum.QuorumReady)

    @property
    def has_length_limit(self) -> bool:
        return self.max_length is not None or self.max_length_bytes is not None


# -- validators (None = fine, else the error term) ------------------------------------------

def _non_neg_int(value: Any) -> Any:
    err = as_int(value)
    if err is None and value < 0:
        return (Atom("value_negative"), value)
    return err


def _expiry(value: int) -> Any:
    if value > MAX_EXPIRY_MS:
        return (Atom("value_too_big"), value)
    if value < 0:
        return (Atom("value_negative"), value)
    return None


def check_expires(value: Any, args: Mapping[str, Any]) -> Any:
    err = as_int(value)
    if err is not None:
        return err
    if value == 0:
        return (Atom("value_zero"), value)
    return _expiry(value)


def check_message_ttl(value: Any, args: Mapping[str, Any]) -> Any:
    err = as_int(value)
    return err if err is not None else _expiry(value)


def check_dlx(value: Any, args: Mapping[str, Any]) -> Any:
    if as_text(value) is None:
        return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))
    return None


def check_dlrk(value: Any, args: Mapping[str, Any]) -> Any:
    if as_text(value) is None:
        return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))
    if args.get("x-dead-letter-exchange") is None:
        return Atom("routing_key_but_no_dlx_defined")
    return None


def check_non_neg(value: Any, args: Mapping[str, Any]) -> Any:
    return _non_neg_int(value)


def check_max_priority(value: Any, args: Mapping[str, Any]) -> Any:
    err = _non_neg_int(value)
    if err is None and value > MAX_PRIORITY:
        return (Atom("max_value_exceeded"), value)
    return err


def check_overflow(value: Any, args: Mapping[str, Any]) -> Any:
    text = as_text(value)
    if text is None:
        return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))
    return None if text in OVERFLOW_MODES else Atom("invalid_overflow")


def check_queue_mode(value: Any, args: Mapping[str, Any]) -> Any:
    text = as_text(value)
    if text is None:
        return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))
    return None if text in QUEUE_MODES else f"unsupported queue mode '{text}'"


def check_queue_version(value: Any, args: Mapping[str, Any]) -> Any:
    err = _non_neg_int(value)
    if err is None and value not in (1, 2):
        return f"unsupported queue version '{value}'"
    return err


def check_bool(value: Any, args: Mapping[str, Any]) -> Any:
    if isinstance(value, bool):
        return None
    return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))


def check_delivery_limit(value: Any, args: Mapping[str, Any]) -> Any:
    return as_int(value)  # a negative limit means "no limit" (RabbitMQ 4.x quorum queues)


# In RabbitMQ's order (rabbit_amqqueue:declare_args/0): the first invalid one is reported.
VALIDATORS: tuple[tuple[str, Callable[[Any, Mapping[str, Any]], Any]], ...] = (
    ("x-expires", check_expires),
    ("x-message-ttl", check_message_ttl),
    ("x-dead-letter-exchange", check_dlx),
    ("x-dead-letter-routing-key", check_dlrk),
    ("x-max-length", check_non_neg),
    ("x-max-length-bytes", check_non_neg),
    ("x-max-priority", check_max_priority),
    ("x-overflow", check_overflow),
    ("x-queue-mode", check_queue_mode),
    ("x-queue-version", check_queue_version),
    ("x-single-active-consumer", check_bool),
    ("x-delivery-limit", check_delivery_limit),
    ("x-consumer-timeout", check_non_neg),
)


def describe(queue: str, vhost: str) -> str:
    return f"queue '{queue}' in vhost '{vhost}'"


QUEUE_TYPES = ("classic", "quorum", "stream")


def check_queue_type(arguments: Mapping[str, Any], queue: str, vhost: str) -> str:
    """The queue type a declaration asks for ("classic" when none is given); raises
    RabbitMQ's 406 for an unknown one.

    The one place that decides which queue types exist."""
    value = arguments.get("x-queue-type")
    if value is None:
        return "classic"
    text = as_text(value)
    where = f"invalid arg 'x-queue-type' for {describe(queue, vhost)}"
    if text is None:
        raise errors.PreconditionFailed(
            f"{where}: {term((Atom('unacceptable_type'), Atom(amqp_type_name(value))))}")
    if text in QUEUE_TYPES:
        return text
    reason = f"unsupported queue type '{text}'"
    raise errors.PreconditionFailed(f"{where}: {term(reason)}")


def validate_queue_arguments(arguments: Mapping[str, Any] | None, queue: str,
                             vhost: str, strict: bool = True) -> None:
    """Raise PreconditionFailed (RabbitMQ's wording) for the first invalid argument.

    `strict=False` (replaying durable definitions at startup) only logs: a queue that was
    accepted before these checks existed must not stop the broker from starting."""
    if not arguments:
        return
    try:
        _validate(arguments, queue, vhost)
    except errors.PreconditionFailed as exc:
        if strict:
            raise
        log.warning("queue.invalid_arguments_recovered", vhost=vhost, queue=queue,
                    error=exc.text, note="recovered as a classic queue; invalid values ignored")


def _validate(arguments: Mapping[str, Any], queue: str, vhost: str) -> None:
    queue_type = check_queue_type(arguments, queue, vhost)
    for key, check in VALIDATORS:
        if key in arguments and arguments[key] is not None:
            err = check(arguments[key], arguments)
            if err is not None:
                raise errors.PreconditionFailed(
                    f"invalid arg '{key}' for {describe(queue, vhost)}: {term(err)}")
    for key in arguments:
        if key in _OTHER_TYPES_ONLY:
            raise errors.PreconditionFailed(
                f"invalid arg '{key}' for {describe(queue, vhost)} of queue type "
                f"rabbit_{queue_type}_queue")


def parse_queue_arguments(arguments: Mapping[str, Any] | None) -> QueueConfig | None:
    """The features of (already validated) arguments; None when no feature is in use."""
    if not arguments:
        return None

    def num(key: str, minimum: int = 0) -> int | None:
        # Out-of-range values only get here from definitions recovered without checks
        # (see validate_queue_arguments): they are ignored.
        value = arguments.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        return None

    max_priority = num("x-max-priority") or 0
    dlx = as_text(arguments.get("x-dead-letter-exchange"))
    dlrk = as_text(arguments.get("x-dead-letter-routing-key")) if dlx is not None else None
    overflow = as_text(arguments.get("x-overflow"))
    config = QueueConfig(
        message_ttl=num("x-message-ttl"),
        expires=num("x-expires", 1),
        dead_letter_exchange=dlx,
        dead_letter_routing_key=dlrk,
        max_length=num("x-max-length"),
        max_length_bytes=num("x-max-length-bytes"),
        overflow=overflow if overflow in OVERFLOW_MODES else DROP_HEAD,
        max_priority=min(max_priority, MAX_PRIORITY),
        single_active_consumer=arguments.get("x-single-active-consumer") is True,
        delivery_limit=num("x-delivery-limit"),  # negative: unlimited
    )
    # x-consumer-timeout alone changes nothing in the queue (the channel reads it), nor
    # does an overflow mode without a length limit.
    if config.max_length is None and config.max_length_bytes is None:
        config = replace(config, overflow=DROP_HEAD)
    return None if config == _PLAIN else config


_PLAIN = QueueConfig()


def consumer_timeout_of(arguments: Mapping[str, Any] | None) -> int | None:
    """`x-consumer-timeout` (ms) of a queue's or a consumer's arguments, if set."""
    if not arguments:
        return None
    value = arguments.get("x-consumer-timeout")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def parse_expiration(expiration: str) -> int:
    """The per-message TTL in ms of a message's `expiration` property.

    Raises PreconditionFailed worded as RabbitMQ's channel does for basic.publish
    ("invalid expiration '<value>': <reason>"): the string must be a decimal integer
    between 0 and 4294967295, an optional sign allowed (Erlang's string:to_integer)."""
    s = expiration
    i = 1 if s[:1] in ("+", "-") else 0
    j = i
    while j < len(s) and "0" <= s[j] <= "9":
        j += 1
    if j == i:
        reason: Any = Atom("no_integer")
    elif j < len(s):
        reason = (Atom("leftover_string"), s[j:])
    else:
        value = int(s[:j])
        reason = _expiry(value)
        if reason is None:
            return value
    raise errors.PreconditionFailed(f"invalid expiration '{expiration}': {term(reason)}")
