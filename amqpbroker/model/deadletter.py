"""Dead lettering (https://www.rabbitmq.com/docs/dlx), as RabbitMQ 3.13+ does it.

A message leaves a queue for one of four reasons - `rejected` (basic.reject / basic.nack
with requeue=false), `expired` (message TTL), `maxlen` (length limit) and `delivery_limit`
(returned more often than x-delivery-limit) - and, when the queue has a dead letter
exchange, a copy is republished there:

* exchange = the dead letter exchange; routing key = x-dead-letter-routing-key if set (the
  CC header is then dropped), else the original one; the BCC header is always dropped;
* the `expiration` property is removed (kept as `original-expiration` in the x-death entry)
  so that the copy does not expire again wherever it goes;
* `x-death` (an array of tables, most recent first) gets one entry per {queue, reason}
  pair: count, reason, queue, time, exchange, routing-keys, original-expiration; dying
  again in the same queue for the same reason increments count and moves the entry to the
  front (its time, exchange and routing keys stay those of the first such death);
* `x-first-death-queue/-reason/-exchange` are set once, `x-last-death-*` every time.

A missing dead letter exchange drops the message silently. Cycles: a target queue the
message already died in is skipped (the message dropped for it) when no death since then,
that one included, was a rejection - RabbitMQ's rule, so a retry loop built from a
rejecting work queue and a TTL queue works while an automatic loop cannot spin forever.

Dead lettering is at-most-once here, as RabbitMQ's default for classic queues: the copy is
enqueued in its targets synchronously, without publisher confirms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amqpbroker.model.report import log
from amqpbroker.message import Message
from amqpbroker.protocol import tables

if TYPE_CHECKING:
    from amqpbroker.model.queue import Queue
    from amqpbroker.model.vhost import VirtualHost


REJECTED = "rejected"
EXPIRED = "expired"
MAXLEN = "maxlen"
DELIVERY_LIMIT = "delivery_limit"

_reported_cycles: set[tuple[str, str, str]] = set()


class Rejected(Exception):
    """Raised by Queue.publish when x-overflow=reject-publish(-dlx) refuses a message."""


def dead_lettered_copy(msg: Message, body: bytes, queue: str, reason: str, exchange: str,
                       routing_key: str | None, wall_now: float
                       ) -> tuple[Message, list[tuple[str, str]]]:
    """The copy of `msg` to republish, and its deaths [(queue, reason)], newest first."""
    items = tables.headers_of(msg.properties)
    headers = dict(items)
    routing_keys = [msg.routing_key]
    cc = headers.get("CC")
    if cc is not None and cc[:1] == b"A":
        routing_keys += [k for k in map(tables.read_text, tables.array_items(cc)) if k]

    updated: bytes | None = None
    older: list[bytes] = []
    existing = headers.get("x-death")
    for death in tables.array_items(existing) if existing and existing[:1] == b"A" else ():
        if updated is None and death[:1] == b"F":
            fields = tables.table_items(tables.table_body(death))
            found = dict(fields)
            if (tables.read_text(found.get("queue", b"")) == queue
                    and tables.read_text(found.get("reason", b"")) == reason):
                count = tables.read_int(found.get("count", b"")) or 0
                tables.set_header(fields, "count", tables.long(count + 1))
                updated = tables.table(fields)
                continue
        older.append(death)
    if updated is None:
        entry = [
            ("count", tables.long(1)),
            ("reason", tables.longstr(reason)),
            ("queue", tables.longstr(queue)),
            ("time", tables.timestamp(wall_now)),
            ("exchange", tables.longstr(msg.exchange)),
            ("routing-keys", tables.array(tables.longstr(k) for k in routing_keys)),
        ]
        if msg.expiration is not None:
            entry.append(("original-expiration", tables.longstr(msg.expiration)))
        updated = tables.table(entry)
    deaths_raw = [updated] + older
    tables.set_header(items, "x-death", tables.array(deaths_raw))
    if "x-first-death-queue" not in headers:
        tables.set_header(items, "x-first-death-queue", tables.longstr(queue))
        tables.set_header(items, "x-first-death-reason", tables.longstr(reason))
        tables.set_header(items, "x-first-death-exchange", tables.longstr(msg.exchange))
    tables.set_header(items, "x-last-death-queue", tables.longstr(queue))
    tables.set_header(items, "x-last-death-reason", tables.longstr(reason))
    tables.set_header(items, "x-last-death-exchange", tables.longstr(msg.exchange))
    drop = ("BCC", "CC") if routing_key is not None else ("BCC",)
    items = [(k, v) for k, v in items if k not in drop]

    props = tables.with_header_items(msg.properties, items)
    if msg.expiration is not None:
        props = tables.without_expiration(props)
    copy = Message(exchange, routing_key if routing_key is not None else msg.routing_key,
                   props, body, len(body), msg.persistent, msg.priority, None)
    return copy, [_death_key(d) for d in deaths_raw]


def _death_key(raw: bytes) -> tuple[str, str]:
    if raw[:1] != b"F":
        return ("", "")
    found = dict(tables.table_items(tables.table_body(raw)))
    return (tables.read_text(found.get("queue", b"")) or "",
            tables.read_text(found.get("reason", b"")) or "")


def is_cycle(target: str, deaths: list[tuple[str, str]]) -> bool:
    """True when the message already died in `target` with no rejection since then."""
    for queue, reason in deaths:
        if reason == REJECTED:
            return False
        if queue == target:
            return True
    return False


def dead_letter(vhost: "VirtualHost", source: "Queue", msg: Message, reason: str,
                wall_now: float) -> None:
    """Republish a message that left `source` for `reason` to its dead letter exchange."""
    config = source.features
    if config is None or config.dead_letter_exchange is None:
        return
    ex = vhost.exchanges.get(config.dead_letter_exchange)
    if ex is None:  # RabbitMQ: a missing dead letter exchange drops the message silently
        return
    body = msg.body
    if body is None:
        body = vhost.changes.load_body(msg)  # type: ignore[union-attr]
    copy, deaths = dead_lettered_copy(msg, body, source.name, reason, ex.name,
                                      config.dead_letter_routing_key, wall_now)
    for target in vhost.route(ex, copy):
        if is_cycle(target.name, deaths):
            key = (vhost.name, source.name, target.name)
            if key not in _reported_cycles and len(_reported_cycles) < 1000:
                _reported_cycles.add(key)
                log.warning("deadletter.cycle_dropped", vhost=vhost.name, queue=source.name,
                            target=target.name, reason=reason,
                            note="message dropped; this cycle is not reported again")
            continue
        try:
            target.publish(copy)
        except Rejected:  # the target is full (reject-publish): at-most-once, dropped
            pass
