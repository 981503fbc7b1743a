"""One client's session with the broker core: a user on a virtual host (issue 14).

Every protocol translator (AMQP 0-9-1 `session/connection.py` today, MQTT next) opens one
`Session` per client connection with `BrokerCore.open_session` and turns its frames into
the operations below; the session applies the broker's rules once for every protocol:
access control (https://www.rabbitmq.com/docs/access-control, see `model.permissions`),
routing, flow control (credit flow, resource alarms), publisher confirms through the group
commit, exclusive ownership. Errors are raised as `errors.AMQPError` subclasses carrying
their reply code; each translator maps them to its wire (AMQP Channel.Close, MQTT reason
codes) in one place.

What the translator hears back goes through small event interfaces, never through frames:
`SessionEvents` (reading paused/resumed, blocked by an alarm, closed by the broker),
`publisher.PublisherEvents` (returns, nacks, confirms ready) and the consumers it attaches
(the `ConsumerLike` duck type of `model.queue`: `can_take()` is its credit,
`deliver(queue, msg, redelivered)` its delivery event, `queue_deleted(queue)` its cancel).
The unacked ledger stays in the translator (AMQP delivery tags, MQTT packet ids): it hands
settled deliveries back as `(queue, msg, consumer)` entries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Literal, Protocol

from amqpbroker import errors
from amqpbroker.broker.consume import check_consume, start_consumer
from amqpbroker.broker.global_counters import AMQP091
from amqpbroker.broker.publisher import Publisher, PublisherEvents
from amqpbroker.message import Message
from amqpbroker.model import permissions, topic_permissions
from amqpbroker.model.deadletter import Rejected
from amqpbroker.model.delayed import delay_of
from amqpbroker.model.destination import Destination
from amqpbroker.model.exchanges import Exchange
from amqpbroker.model.queue_features import FLOW_HIGH
from amqpbroker.model.reply_queue import PSEUDO_QUEUE

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore
    from amqpbroker.model.users import User
    from amqpbroker.model.vhost import VirtualHost

Entry = tuple  # (destination, message, consumer or None): one outstanding delivery


class SessionEvents(Protocol):
    """What a protocol translator hears from the core about its whole session."""

    def reading(self, paused: bool) -> None:
        """Stop (True) or resume (False) reading from this client (flow control)."""

    def blocked(self, on: bool, reason: str) -> None:
        """A resource alarm blocks (or unblocks) this publishing client."""

    def force_close(self, code: int, text: str) -> None:
        """The broker ends the session (vhost deleted: 320 CONNECTION_FORCED)."""


class Session:
    def __init__(self, core: "BrokerCore", user: "User", vhost: "VirtualHost",
                 events: SessionEvents, protocol: str = AMQP091) -> None:
        self.core = core
        # RabbitMQ's global counters of this client's protocol (broker/global_counters.py);
        # the management API's own sessions count as AMQP 0-9-1, as in RabbitMQ.
        self.counters = core.global_counters.of(protocol)
        self.sizes = self.counters.sizes
        self.user = user
        self.vhost = vhost
        self.events = events
        self.closed = False
        # Permission grants already checked (one user and vhost per session), so the publish
        # path costs one set lookup; `permissions_changed` forgets them.
        self.perm_cache: set[tuple[str, str, str]] = set()
        self._may_write: set[str] = set()  # exchanges this session may publish to
        self.exclusive_queues: list[Destination] = []
        self.consumer_count = 0
        # Flow control (see model.queue_features.FLOW_HIGH): the queues that asked us to
        # stop reading from this publisher; resource alarms.
        self.flow_blocked_by: set[Destination] = set()
        self.published = False  # this client publishes: an alarm blocks it
        self.alarm_blocked = False
        self.reading_paused = False
        # MQTT's client id, for `{client_id}` in topic permissions (None for AMQP 0-9-1).
        self.client_id: str | None = None

    def set_protocol(self, protocol: str) -> None:
        """The translator learned its client's protocol version (MQTT's CONNECT): count
        this session's publishes under that label from now on."""
        self.counters = self.core.global_counters.of(protocol)
        self.sizes = self.counters.sizes

    # -- access control ---------------------------------------------------------------
    def allow(self, kind: permissions.Kind, resource: permissions.ResourceKind,
              name: str) -> None:
        permissions.check(self.user, self.vhost.name, kind, resource, name, self.perm_cache)

    def allow_topic(self, exchange: str, permission: Literal["write", "read"],
                    routing_key: str) -> None:
        """Topic permissions (model/topic_permissions.py): on a topic exchange with a
        topic permission for this user, the routing key must match (403 otherwise)."""
        table = self.core.runtime.topic_permissions
        if table and topic_permissions.applies(table, self.user.name, self.vhost.name,
                                               exchange):
            ex = self.vhost.exchanges.get(exchange)
            if ex is not None and ex.type == "topic":
                topic_permissions.check(table, self.user.name, self.vhost.name, exchange,
                                        permission, routing_key, self.client_id)

    def permissions_changed(self) -> None:
        """An administrator changed this user's permissions (management API): forget the
        grants remembered for the fast path; the next operation checks the new ones."""
        self.perm_cache.clear()
        self._may_write.clear()

    # -- exchanges -------------------------------------------------------------------------
    def declare_exchange(self, name: str, type: str, *, passive: bool = False,
                         durable: bool = False, auto_delete: bool = False,
                         internal: bool = False, arguments: dict[str, Any] | None = None
                         ) -> Exchange:
        arguments = arguments or {}
        if not passive and name:
            self.allow("configure", "exchange", name)
            alternate = arguments.get("alternate-exchange")
            if isinstance(alternate, (str, bytes)) and name not in self.vhost.exchanges:
                self.allow("read", "exchange", name)
                self.allow("write", "exchange",
                           alternate.decode("utf-8", "replace") if isinstance(alternate, bytes) else alternate)
        return self.vhost.declare_exchange(
            name, type, passive=passive, durable=durable, auto_delete=auto_delete,
            internal=internal, arguments=arguments)

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        if name and not name.startswith("amq."):
            self.allow("configure", "exchange", name)
        self.vhost.delete_exchange(name, if_unused=if_unused)

    def bind_exchange(self, destination: str, source: str, routing_key: str,
                      arguments: dict[str, Any] | None = None) -> None:
        self.allow("write", "exchange", destination)
        self.allow("read", "exchange", source)
        self.allow_topic(source, "read", routing_key)
        self.vhost.bind(self.vhost.exchange(destination), source, routing_key, arguments)

    def unbind_exchange(self, destination: str, source: str, routing_key: str,
                        arguments: dict[str, Any] | None = None) -> None:
        self.allow("write", "exchange", destination)
        self.allow("read", "exchange", source)
        self.allow_topic(source, "read", routing_key)
        vhost = self.vhost
        dest = vhost.exchanges.get(destination)
        if dest is not None and source in vhost.exchanges:
            vhost.unbind(dest, source, routing_key, arguments)

    # -- queues ----------------------------------------------------------------------------
    def declare_queue(self, name: str, *, passive: bool = False, durable: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None,
                      server_named: bool = False) -> Destination:
        """queue.declare; `name` is already generated when `server_named`."""
        vhost = self.vhost
        arguments = arguments or {}
        if not passive:
            self.allow("configure", "queue", name)
            dlx = arguments.get("x-dead-letter-exchange")
            if isinstance(dlx, (str, bytes)) and name not in vhost.queues:
                self.allow("read", "queue", name)
                self.allow("write", "exchange", dlx.decode("utf-8", "replace") if isinstance(dlx, bytes) else dlx)
        existed = name in vhost.queues
        q = vhost.declare_queue(
            name, passive=passive, durable=durable, exclusive=exclusive,
            auto_delete=auto_delete, arguments=arguments, owner=self,
            server_named_=server_named)
        if not existed and q.exclusive_owner is self:
            self.exclusive_queues.append(q)
        return q

    def queue(self, name: str) -> Destination:
        """An existing queue this session may use (404, 405 for another's exclusive)."""
        q = self.vhost.queue(name)
        self.vhost._check_exclusive(q, self)
        return q

    def bind_queue(self, queue: str, exchange: str, routing_key: str,
                   arguments: dict[str, Any] | None = None) -> None:
        self.allow("write", "queue", queue)
        self.allow("read", "exchange", exchange)
        self.allow_topic(exchange, "read", routing_key)
        self.vhost.bind(self.queue(queue), exchange, routing_key, arguments)

    def unbind_queue(self, queue: str, exchange: str, routing_key: str,
                     arguments: dict[str, Any] | None = None) -> None:
        self.allow("write", "queue", queue)
        self.allow("read", "exchange", exchange)
        self.allow_topic(exchange, "read", routing_key)
        vhost = self.vhost
        # RabbitMQ answers UnbindOk when the queue or the exchange no longer exists.
        q = vhost.queues.get(queue)
        if q is not None and exchange in vhost.exchanges:
            vhost._check_exclusive(q, self)
            vhost.unbind(q, exchange, routing_key, arguments)

    def purge(self, queue: str) -> int:
        self.allow("read", "queue", queue)
        return self.vhost.purge_queue(queue, owner=self)

    def delete_queue(self, queue: str, *, if_unused: bool = False,
                     if_empty: bool = False) -> int:
        self.allow("configure", "queue", queue)
        q = self.vhost.queues.get(queue)
        count = self.vhost.delete_queue(queue, if_unused=if_unused, if_empty=if_empty,
                                        owner=self)
        if q is not None and q in self.exclusive_queues:
            self.exclusive_queues.remove(q)
        return count

    # -- publishing --------------------------------------------------------------------------
    def publisher(self, events: PublisherEvents) -> Publisher:
        """A handle for one stream of publishes (see `broker.publisher`)."""
        return Publisher(events, self.core.persister, self.counters)

    def check_publish(self, exchange: str, routing_key: str = "") -> None:
        """What a publish checks before it is accepted (tx mode checks it at publish time,
        routes at commit): write permission (403 before 404, as RabbitMQ), existence."""
        if exchange not in self._may_write:
            self._check_write(exchange, routing_key)
        self.vhost.exchange(exchange)

    def publish(self, msg: Message, mandatory: bool, publisher: Publisher) -> bool:
        """Route and enqueue one message, then return / confirm it through `publisher`.
        True if it waits for the group commit (persistent on a durable destination)."""
        self.published = True
        if msg.exchange not in self._may_write:
            self._check_write(msg.exchange, msg.routing_key)
        vhost = self.vhost
        ex = vhost.exchanges.get(msg.exchange)
        if ex is None:
            raise errors.NotFound(f"no exchange '{msg.exchange}' in vhost '{vhost.name}'")
        if ex.internal:
            raise errors.AccessRefused(
                f"cannot publish to internal exchange '{msg.exchange}' in vhost '{vhost.name}'")
        if ex.delays:
            delay = delay_of(msg)
            if delay:  # x-delayed-message: held, routed when due (model/delayed.py)
                return self._publish_delayed(ex, msg, mandatory, publisher, delay)
        sizes = self.sizes  # rabbitmq_message_size_bytes; inline: most take one comparison
        size = msg.body_size
        if size <= 100:
            sizes.total += size
            sizes.counts[0] += 1
        else:
            sizes.observe(size)
        queues = vhost.route(ex, msg)
        publisher.published += 1  # counters for the management API's message_stats
        ex.published_in += 1
        if msg.expiration is not None:  # per-message TTL: plain queues start tracking it
            for q in queues:
                if q.features is None:
                    q.enable_message_expiry()
        confirm = publisher.confirm
        if confirm:
            publisher.seq += 1
        if not queues:
            if mandatory:  # the return goes out before the confirm (confirms page)
                publisher.returned_unroutable += 1
                publisher.events.returned(msg, 312, "NO_ROUTE")
            else:
                publisher.dropped_unroutable += 1
            if confirm:
                publisher.settle(publisher.seq, False)
            return False
        ex.published_out += 1
        durable = rejected = False
        persistent = msg.persistent
        for q in queues:
            try:
                q.publish(msg)
            except Rejected:  # x-overflow=reject-publish(-dlx): nack if confirming
                rejected = True
                continue
            q.published += 1
            if q.durable:
                durable = True
                if q.persist_all:  # quorum and stream queues store every message
                    persistent = True
            if len(q.ready) > FLOW_HIGH and q.deep():
                self.flow_block(q)
        needs_sync = durable and persistent and self.core.store_needs_sync
        if confirm:
            publisher.settle(publisher.seq, needs_sync, not rejected)
        elif needs_sync:
            self.core.persister.dirty = True
        return needs_sync

    def _publish_delayed(self, ex: Any, msg: Message, mandatory: bool, publisher: Publisher,
                         delay_ms: int) -> bool:
        """Mandatory: the plugin returns every mandatory delayed publish at once (it cannot
        know the bindings of later). Here one is returned with 312 NO_ROUTE -- and not
        kept, as any unroutable mandatory message -- only if no binding of the delayed
        type (nor an alternate exchange) would take it now; otherwise it is kept and
        routed when due by the bindings of that time. A delayed message of a durable
        exchange is a durable change: its confirm waits for the group commit."""
        if publisher.confirm:
            publisher.seq += 1
        self.sizes.observe(msg.body_size)  # rabbitmq_message_size_bytes
        publisher.published += 1  # counters for the management API's message_stats
        ex.published_in += 1
        if mandatory and not self.vhost.route(ex, msg):
            publisher.returned_unroutable += 1
            publisher.events.returned(msg, 312, "NO_ROUTE")
            if publisher.confirm:
                publisher.settle(publisher.seq, False)
            return False
        needs_sync = self.vhost.delayed.hold(ex, msg, delay_ms) and self.core.store_needs_sync
        if publisher.confirm:
            publisher.settle(publisher.seq, needs_sync)
        elif needs_sync:
            self.core.persister.dirty = True
        return needs_sync

    def _check_write(self, exchange: str, routing_key: str) -> None:
        self.allow("write", "exchange", exchange)
        table = self.core.runtime.topic_permissions
        if table and topic_permissions.applies(table, self.user.name, self.vhost.name,
                                               exchange):
            ex = self.vhost.exchanges.get(exchange)
            if ex is not None and ex.type == "topic":
                # the routing key is checked at every publish: not remembered
                self.allow_topic(exchange, "write", routing_key)
                return
        self._may_write.add(exchange)

    # -- consuming ---------------------------------------------------------------------------
    def check_consume(self, queue: str, *, exclusive: bool, no_ack: bool, prefetch: int,
                      global_prefetch: int, arguments: dict[str, Any] | None) -> Destination:
        """Every refusal of a consume, before the translator confirms it (AMQP ConsumeOk
        must precede the first delivery): permission, existence, exclusivity, x-priority,
        the queue type's rules."""
        self.allow("read", "queue", queue)
        q = self.queue(queue)
        # RabbitMQ refuses an exclusive consumer on a single-active-consumer queue the same way.
        if (q.exclusive_consumer is not None or (exclusive and q.consumers)
                or (exclusive and q.features and q.features.single_active_consumer)):
            raise errors.AccessRefused(
                f"queue '{q.name}' in vhost '{self.vhost.name}' in exclusive use")
        priority = (arguments or {}).get("x-priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise errors.PreconditionFailed(
                f"invalid arg 'x-priority' for consumer: {priority!r} is not an integer")
        check_consume(q, no_ack=no_ack, prefetch=prefetch, global_prefetch=global_prefetch,
                      arguments=arguments)
        return q

    def consume(self, queue: Destination, consumer: Any) -> None:
        """Attach a consumer checked by `check_consume`; deliveries start now. Its credit
        is its `can_take()` (prefetch)."""
        self.consumer_count += 1
        start_consumer(queue, consumer)

    def attach_reply_consumer(self, queue: Destination, consumer: Any) -> None:
        """Direct reply-to: the pseudo-queue's one no-ack consumer."""
        self.consumer_count += 1
        queue.add_consumer(consumer)

    def cancel(self, consumer: Any, dispatch: bool = True) -> None:
        """Detach a consumer (its unacked deliveries stay with the translator's ledger)."""
        self.consumer_count -= 1
        queue = consumer.queue
        if queue.remove_consumer(consumer):
            self.vhost.remove_queue(queue)
        elif dispatch and queue.features and not queue.deleted:
            queue.dispatch()  # x-single-active-consumer: the next consumer takes over

    def get(self, queue: str) -> tuple[Destination, Message, bool] | None:
        """basic.get: the head message of `queue` (the caller acks it or settles at once)."""
        self.allow("read", "queue", queue)
        q = self.queue(queue)
        got = q.get()
        if got is None:
            q.fetched_empty += 1
            return None
        q.fetched += 1
        return q, got[0], got[1]

    # -- settling ----------------------------------------------------------------------------
    def ack(self, entries: list[Entry]) -> None:
        """Deliveries acknowledged: gone for good."""
        if len(entries) == 1:
            self.ack_one(*entries[0])
            return
        queues: set[Destination] = set()
        for queue, msg, consumer in entries:
            queue.acked += 1
            queue.settle(msg)
            if consumer is not None:
                consumer.unacked -= 1
            queues.add(queue)
        for queue in queues:
            queue.dispatch()

    def ack_one(self, queue: Destination, msg: Message, consumer: Any) -> None:
        """One delivery acknowledged (one basic.ack per delivery: no set of queues)."""
        queue.acked += 1
        queue.settle(msg)
        if consumer is not None:
            consumer.unacked -= 1
        queue.dispatch()

    def reject(self, entries: Iterable[Entry], requeue: bool) -> None:
        """reject/nack: back to their queues, or dead-lettered / dropped."""
        if requeue:
            self.requeue(entries)
            return
        for queue, msg, consumer in entries:
            queue.reject(msg)
            if consumer is not None:
                consumer.unacked -= 1
            queue.dispatch()

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Deliveries come back in their original order (recover, the client went away)."""
        by_queue: dict[Destination, list[tuple[Message, bool]]] = {}
        for queue, msg, consumer in entries:
            by_queue.setdefault(queue, []).append((msg, True))
            if consumer is not None:
                consumer.unacked -= 1
        for queue, items in by_queue.items():
            queue.return_unacked(items)

    # -- flow control and alarms --------------------------------------------------------------
    def flow_block(self, queue: Destination) -> None:
        """A queue is over its limit. Pure publishers wait; a session that also consumes is
        never paused (it could not send the acks that drain the queue)."""
        if queue in self.flow_blocked_by or self.consumer_count:
            return
        queue.wait_for_flow(self)
        self.flow_blocked_by.add(queue)
        self._update_reading()

    def flow_released(self, queue: Destination) -> None:
        self.flow_blocked_by.discard(queue)
        self._update_reading()

    def set_alarm(self, on: bool) -> None:
        """A resource alarm went on (for a publisher) or off
        (https://www.rabbitmq.com/docs/connection-blocked)."""
        if on == self.alarm_blocked or self.closed:
            return
        self.alarm_blocked = on
        self.events.blocked(on, "low on memory")
        self._update_reading()

    def check_alarm(self) -> None:
        """After a read: a client that just started publishing during an alarm is blocked."""
        if self.published and self.core.memory_alarm and not self.alarm_blocked:
            self.set_alarm(True)

    def _update_reading(self) -> None:
        paused = bool(self.flow_blocked_by) or self.alarm_blocked
        if paused != self.reading_paused:
            self.reading_paused = paused
            self.events.reading(paused)

    # -- closing ---------------------------------------------------------------------------------
    def close(self) -> None:
        """The client is gone: flow waits dropped, its exclusive queues deleted. (The
        translator first gives back its consumers and unacked deliveries.)"""
        if self.closed:
            return
        self.closed = True
        for q in self.flow_blocked_by:
            q.stop_waiting(self)
        self.flow_blocked_by.clear()
        for q in self.exclusive_queues:
            self.vhost.remove_queue(q)
        self.exclusive_queues.clear()
        if self in self.core.sessions:  # a client session (the admin's are never listed)
            self.core.sessions.discard(self)
            self.core.churn.connection_closed += 1


def is_reply_pseudo_queue(name: str) -> bool:
    return name == PSEUDO_QUEUE
