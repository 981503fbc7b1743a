"""Queue types: which class a queue.declare builds, and the rules that depend on the type.

`VirtualHost` calls into this module at the few places where classic, quorum and stream
queues differ (https://www.rabbitmq.com/docs/queues#type):

* `new_queue` - validation in RabbitMQ's order and wording, then a classic `Queue`, a
  quorum `Queue` (`quorum=True`, see `model.quorum`) or a `StreamQueue` (`model.stream`,
  its files opened by the core's `StreamRegistry`, `amqpbroker.streams`);
* `equivalence_arguments` / `with_default_type` - a redeclaration compares the arguments
  the existing queue's type takes (rabbit_amqqueue:assert_args_equivalence), and a missing
  `x-queue-type` means the default type, classic (so `{}` and `{"x-queue-type":
  "classic"}` are equivalent, as in RabbitMQ 4.x);
* `check_delete` - quorum queues refuse if-unused / if-empty (540).

Quorum and stream queues are never server-named (their capability server_named=false):
"Cannot declare a server-named queue for type rabbit_quorum_queue".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from amqpbroker import errors
from amqpbroker.model import quorum
from amqpbroker.model.queue import Queue
from amqpbroker.model.queue_args import check_queue_type, validate_queue_arguments
from amqpbroker.model.stream import StreamQueue, validate_stream_arguments

if TYPE_CHECKING:
    from amqpbroker.model.vhost import VirtualHost

# The arguments a redeclaration compares for a classic queue (this broker's list; RabbitMQ
# compares rabbit_classic_queue's queue_arguments), a quorum queue and a stream
# (rabbit_stream_queue:capabilities()), in RabbitMQ's order.
CLASSIC_EQUIVALENCE_ARGUMENTS = (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
    "x-queue-type", "x-single-active-consumer", "x-delivery-limit",
    "x-dead-letter-strategy", "x-max-age", "x-stream-max-segment-size-bytes",
)
STREAM_EQUIVALENCE_ARGUMENTS = (
    "x-max-length-bytes", "x-queue-type", "x-max-age", "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size", "x-queue-leader-locator",
)
_TYPE_MODULES = {"quorum": "rabbit_quorum_queue", "stream": "rabbit_stream_queue"}


def queue_type_of(q: Any) -> str:
    if q.is_stream:
        return "stream"
    return "quorum" if q.is_quorum else "classic"


def new_queue(host: "VirtualHost", name: str, *, durable: bool, exclusive: bool,
              auto_delete: bool, arguments: dict[str, Any], owner: Any, strict: bool,
              server_named: bool = False) -> Queue | StreamQueue:
    """Validate a declaration of a queue that does not exist yet and build it.

    `strict=False` (replaying durable definitions) logs invalid argument values instead of
    refusing them: what was accepted once must not stop the broker from starting."""
    try:
        queue_type = check_queue_type(arguments, name, host.name)
    except errors.PreconditionFailed:
        if strict:
            raise
        queue_type = "classic"  # validate_queue_arguments logs it below
    if server_named and queue_type != "classic":
        raise errors.PreconditionFailed(
            f"Cannot declare a server-named queue for type {_TYPE_MODULES[queue_type]}")
    if queue_type == "quorum":
        quorum.validate_quorum_declaration(name, host.name, durable, exclusive, auto_delete,
                                           arguments, strict)
        return Queue(host.name, name, durable=True, auto_delete=False, arguments=arguments,
                     changes=host.changes, host=host, quorum=True)
    if queue_type == "stream":
        validate_stream_arguments(name, host.name, durable, exclusive, auto_delete, arguments)
        streams = host.streams
        if streams is None:  # a vhost without files (config checks, offline tools)
            return StreamQueue(host.name, name, None, arguments=arguments)
        return streams.open(host.name, name, arguments)
    validate_queue_arguments(arguments, name, host.name, strict=strict)
    return Queue(host.name, name, durable=durable, exclusive_owner=owner if exclusive else None,
                 auto_delete=auto_delete, arguments=arguments, changes=host.changes, host=host)


def equivalence_arguments(q: Any) -> Iterable[str]:
    """The arguments compared when `q` is declared again."""
    if q.is_stream:
        return STREAM_EQUIVALENCE_ARGUMENTS
    return quorum.QUORUM_ARGUMENTS if q.is_quorum else CLASSIC_EQUIVALENCE_ARGUMENTS


def with_default_type(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    """`arguments` as compared on redeclaration: no x-queue-type means classic."""
    if arguments.get("x-queue-type") is None:
        return {**arguments, "x-queue-type": "classic"}
    return arguments


def check_delete(q: Any, vhost: str, if_unused: bool, if_empty: bool) -> None:
    """Type-specific refusals of queue.delete (before RabbitMQ's in-use / not-empty)."""
    if q.is_quorum:
        quorum.check_quorum_delete(q.name, vhost, if_unused, if_empty)
