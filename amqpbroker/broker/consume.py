"""basic.consume on quorum and stream queues: the checks RabbitMQ makes, and how a stream
consumer starts (https://www.rabbitmq.com/docs/streams#consuming).

`Session.check_consume` calls `check_consume` before the translator answers (AMQP
ConsumeOk) and `Session.consume` calls `start_consumer` instead of `queue.add_consumer`;
classic queues pass through both. Protocol-neutral: the consume's flags come as values.

Quorum queues: consumer arguments of other queue types are refused, then global QoS
(`basic.qos` with global=true and a non-zero count on the channel) is 540 NOT_IMPLEMENTED
"queue 'q' in vhost '/' does not support global qos" (rabbit_quorum_queue:consume/3).

Streams (rabbit_stream_queue:consume/3, in its order): `x-stream-offset` must be a valid
offset specification (406), `x-priority` is refused (406), a consumer prefetch is required
(406 "consumer prefetch count is not set for stream queue 's' in vhost '/'"), automatic
acknowledgement is 540, global QoS is 540. Deliveries carry `x-stream-offset`; acks only
return credit.

Server-side offset tracking (LavinMQ's extension, https://lavinmq.com/documentation/
server-side-offset-tracking-and-stream-filtering): a consumer with
`x-stream-automatic-offset-tracking: true`, or with `x-stream-offset` present but null
(void), is tracked under its consumer tag: the offset of each message it acks is stored
in the stream (durable with the next group commit), and when a consumer with the same tag
starts again it resumes after the stored offset. Without a stored offset it starts at its
`x-stream-offset` if one was given, else at `first`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amqpbroker.model.quorum import check_quorum_consume
from amqpbroker.model.stream import (
    OFFSET_HEADER,
    check_stream_consume,
    parse_consumer_arguments,
)

if TYPE_CHECKING:
    from amqpbroker.model.destination import Destination

TRACKING_ARGUMENT = "x-stream-automatic-offset-tracking"


def check_consume(q: "Destination", *, no_ack: bool, prefetch: int, global_prefetch: int,
                  arguments: dict[str, Any] | None) -> None:
    """Refuse a consume the queue's type does not allow (before ConsumeOk)."""
    if q.is_stream:
        parse_consumer_arguments(arguments, q.name, q.vhost)
        check_stream_consume(q.name, q.vhost, no_ack=no_ack, prefetch=prefetch,
                             global_prefetch=global_prefetch)
    elif q.is_quorum:
        check_quorum_consume(q.name, q.vhost, arguments, global_prefetch)


def tracking_wanted(arguments: dict[str, Any] | None) -> bool:
    """LavinMQ's two ways to ask for server-side offset tracking."""
    arguments = arguments or {}
    flag = arguments.get(TRACKING_ARGUMENT)
    if flag is True or (isinstance(flag, (str, bytes)) and flag in ("true", b"true")):
        return True
    return OFFSET_HEADER in arguments and arguments[OFFSET_HEADER] is None


def start_consumer(q: Any, consumer: Any) -> None:
    """Attach a consumer: a stream consumer at its offset, others as usual."""
    if not q.is_stream:
        q.add_consumer(consumer)
        return
    args = consumer.arguments
    opts = parse_consumer_arguments(args, q.name, q.vhost)
    tracking = consumer.tag if tracking_wanted(args) else None
    spec = opts.offset
    if tracking is not None:
        stored = q.stored_offset(tracking)
        if stored is not None:
            spec = stored + 1  # resume after the last acked message
        elif args.get(OFFSET_HEADER) is None:
            spec = "first"
    q.add_consumer(consumer, spec, opts.filters, opts.match_unfiltered, tracking_name=tracking)
