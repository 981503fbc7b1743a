"""The protocol-neutral broker core (issue 14): the one place every protocol plugs into.

Protocol translators (AMQP 0-9-1 in `amqpbroker/session/`, MQTT next), the management
facade (`broker/admin.py`) and replication all talk to this package; none of them
re-implements a broker rule. The API, in the order a client uses it::

    core = BrokerCore(settings, message_store, definition_store)   # broker/core.py
    core.recover()                                    # replay definitions, reload messages

    user = core.authenticate(username, password, loopback)         # 403 LoginRefused
    session = core.open_session(user, "/", events)                 # broker/session.py
    #   events: SessionEvents -- reading(paused), blocked(on, reason), force_close(code, text)

    # topology (permissions checked here, RabbitMQ's declare rules in model/vhost.py)
    session.declare_exchange("x", "topic", durable=True)
    q = session.declare_queue("q", durable=True, arguments={...})  # -> Destination
    session.bind_queue("q", "x", "a.*") ; session.unbind_queue(...)
    session.bind_exchange(dest, source, key) ; session.unbind_exchange(...)
    session.delete_queue("q", if_unused=False, if_empty=False) -> message count
    session.delete_exchange("x") ; session.purge("q") -> message count

    # publishing: a publisher handle receives the events of its publishes
    pub = session.publisher(events)   # events: PublisherEvents -- returned(msg, code,
    pub.confirm = True                #   text), nacked(seq), confirms_ready()
    msg = Message.create("x", "a.b", b"body", persistent=True, headers={...})
    session.publish(msg, mandatory=True, publisher=pub)
    #   pub.upto: every seq <= upto is confirmed (after the group commit for a persistent
    #   message on a durable queue); returns come before confirms.

    # consuming: a consumer is any object with tag, priority, exclusive, unacked,
    # arguments, queue, can_take() (its credit: prefetch), deliver(queue, msg,
    # redelivered) and queue_deleted(queue) (the broker cancelled it)
    q = session.check_consume("q", exclusive=False, no_ack=False, prefetch=10,
                              global_prefetch=0, arguments={})
    session.consume(q, consumer) ; session.cancel(consumer)
    got = session.get("q")                          # (queue, msg, redelivered) | None

    # settling: the translator keeps its ledger of outstanding deliveries and hands
    # entries (queue, msg, consumer-or-None) back
    session.ack(entries) ; session.ack_one(queue, msg, consumer)
    session.reject(entries, requeue) ; session.requeue(entries)

    session.close()                                  # exclusive queues go, flow waits end

    # group commit (the server's sync loop): core.persister -- begin(), complete(gen),
    # fail(gen, exc); waiters are tickets: Publisher.release(gen, failed) and one-shot
    # callbacks (Persister.after_sync), never a session or a channel object.

Destinations (`model.destination.Destination`): classic and quorum queues
(`model.queue.Queue`), streams (`model.stream.StreamQueue`), the direct reply-to
pseudo-queue (`model.reply_queue.ReplyQueue`). `Message` (`amqpbroker.message`) lives below
the model and the store. See docs/architecture.md for the rings and one publish traced
from socket to socket.
"""

from amqpbroker.broker.core import BrokerCore
from amqpbroker.broker.persister import Persister, SyncWaiter
from amqpbroker.broker.publisher import Publisher, PublisherEvents
from amqpbroker.broker.session import Session, SessionEvents
from amqpbroker.message import Message
from amqpbroker.model.destination import Destination

__all__ = [
    "BrokerCore",
    "Destination",
    "Message",
    "Persister",
    "Publisher",
    "PublisherEvents",
    "Session",
    "SessionEvents",
    "SyncWaiter",
]
