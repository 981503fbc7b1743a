"""One AMQP channel: content assembly, deliveries, the unacked ledger, confirms, tx.

Method frames arrive through `method_frame`. The two per-message methods (basic.publish and
basic.ack) are decoded by the fast codec; everything else goes through pamqp and one small
handler per method (`session/*_methods.py`, joined in `HANDLERS` below). A `ChannelError`
raised by any handler becomes Channel.Close in exactly one place, `fail()`; connection
errors propagate to the connection.

Consumer timeouts live in the `ConsumerTimeouts` mixin (`session/consumer_timeout.py`).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable

import structlog
from pamqp import commands

from amqpbroker import errors
from amqpbroker.model import permissions
from amqpbroker.model.delayed import delay_of
from amqpbroker.model.message import Message
from amqpbroker.model.queue import FLOW_HIGH, Rejected
from amqpbroker.model.queue_args import parse_expiration
from amqpbroker.protocol import fastcodec
from amqpbroker.protocol.methods import decode_method, method_ids
from amqpbroker.protocol.properties import scan_properties
from amqpbroker.session import direct_reply
from amqpbroker.session.delayed_publish import publish_delayed
from amqpbroker.session.consumer_timeout import _NO_TIMEOUT, ConsumerTimeouts, _check_interval

if TYPE_CHECKING:
    from amqpbroker.model.queue import Queue
    from amqpbroker.session.connection import ClientConnection
    from amqpbroker.session.consumer import Consumer

log = structlog.get_logger("amqpbroker")


_PUBLISH = b"\x00\x3c\x00\x28"
_ACK = b"\x00\x3c\x00\x50"
PUBLISH_IDS = (60, 40)


class Channel(ConsumerTimeouts):
    def __init__(self, conn: "ClientConnection", channel_id: int) -> None:
        self.conn = conn
        self.id = channel_id
        self.vhost = conn.vhost
        self.core = conn.core
        self.closing = False
        self.closed = False
        # Content assembly (spec 4.2.6): publish args, then header, then body frames.
        self._publish: tuple[str, str, bool] | None = None
        self._props = b""
        self._body_size = 0
        self._body: list[bytes] = []
        self._received = 0
        self.consumers: dict[str, "Consumer"] = {}
        self.reply_queue: "direct_reply.ReplyQueue | None" = None  # direct reply-to
        self.next_tag = 1
        self.unacked: dict[int, tuple["Queue", Message, "Consumer | None"]] = {}
        self.prefetch = 0
        self.global_prefetch = 0
        self.last_queue = ""
        # Publisher confirms (https://www.rabbitmq.com/docs/confirms).
        self.confirm = False
        self.confirm_seq = 0
        self.confirm_upto = 0
        self.confirm_sent = 0
        self.pending: deque[tuple[int, int, bool]] = deque()  # (seq, sync generation, ack)
        self.tx: list[tuple[Any, ...]] | None = None
        # Exchanges this channel was allowed to publish to (write permission, checked once
        # per exchange: see model.permissions).
        self._may_write: set[str] = set()
        # Consumer timeout (see the module docstring): the check timer, and the marks
        # (first tag delivered after the mark, time of the mark).
        self._ct_marks: deque[tuple[int, float]] = deque()
        self._ct_interval = _check_interval(self.core.settings.consumer_timeout_ms)
        self._ct_timer: Any = None if self._ct_interval is not None else _NO_TIMEOUT

    @property
    def unacked_count(self) -> int:
        return len(self.unacked)

    # -- frames in ---------------------------------------------------------------------
    def method_frame(self, payload: bytes) -> None:
        if self._publish is not None:
            raise errors.UnexpectedFrame(
                f"expected content header for class 60, got a method frame on channel {self.id}")
        head = payload[:4]
        if self.closing:
            self._while_closing(payload)
            return
        try:
            if head == _PUBLISH:
                self._start_publish(payload)
            elif head == _ACK:
                tag, multiple = _decode(fastcodec.decode_ack, payload)
                self.ack(tag, multiple)
            else:
                method = decode_method(payload)
                handler = HANDLERS.get(type(method))
                if handler is None:
                    raise errors.CommandInvalid(
                        f"method {method.name} is not allowed from a client",
                        *method_ids(method))
                try:
                    handler(self, method)
                except errors.AMQPError as exc:
                    if not exc.class_id:
                        exc.class_id, exc.method_id = method_ids(method)
                    raise
        except errors.ChannelError as exc:
            if not exc.class_id and head == _ACK:
                exc.class_id, exc.method_id = 60, 80
            self.fail(exc)

    def _while_closing(self, payload: bytes) -> None:
        # Spec 1.5.2.5: after Channel.Close, discard everything but Close and Close-Ok.
        method = decode_method(payload)
        if isinstance(method, commands.Channel.CloseOk):
            self.conn.channels.pop(self.id, None)
        elif isinstance(method, commands.Channel.Close):
            self.conn.send_method(self.id, commands.Channel.CloseOk())

    def _start_publish(self, payload: bytes) -> None:
        exchange, routing_key, mandatory, immediate = _decode(fastcodec.decode_publish, payload)
        if immediate:  # RabbitMQ dropped immediate in 3.0: a connection error
            raise errors.NotImplemented_("immediate=true", *PUBLISH_IDS)
        self._publish = (exchange, routing_key, mandatory)

    def content_header(self, payload: bytes) -> None:
        if self.closing:
            return
        if self._publish is None or self._body_size < 0 or self._props:
            raise errors.UnexpectedFrame(
                f"content header on channel {self.id} without a basic.publish")
        class_id, _, body_size, props = _decode(fastcodec.decode_content_header, payload)
        if class_id != 60:
            raise errors.FrameError(f"content header for class {class_id}, expected 60")
        limit = self.core.settings.max_message_size
        if body_size > limit:
            self._publish = None
            self.fail(errors.PreconditionFailed(
                f"message size {body_size} is larger than configured max size {limit}",
                *PUBLISH_IDS))
            return
        self._props = props or b"\x00\x00"
        self._body_size = body_size
        if body_size == 0:
            self._complete(b"")

    def content_body(self, payload: bytes) -> None:
        if self.closing:
            return
        if self._publish is None or not self._props:
            raise errors.UnexpectedFrame(f"content body on channel {self.id} without a header")
        self._received += len(payload)
        if self._received > self._body_size:
            raise errors.FrameError(
                f"content body exceeds the declared body size {self._body_size}")
        if self._received == self._body_size:
            if self._body:
                self._body.append(payload)
                payload = b"".join(self._body)
                self._body = []
            self._complete(payload)
        else:
            self._body.append(payload)

    def _complete(self, body: bytes) -> None:
        exchange, routing_key, mandatory = self._publish  # type: ignore[misc]
        props = self._props
        self._publish = None
        self._props = b""
        self._received = 0
        try:
            props = direct_reply.rewrite_reply_to(self, props)
        except errors.ChannelError as exc:
            exc.class_id, exc.method_id = PUBLISH_IDS
            self.fail(exc)
            return
        try:
            delivery_mode, priority, expiration = scan_properties(props)
        except ValueError as exc:
            raise errors.FrameError(f"cannot decode content header properties: {exc}") from None
        msg = Message(exchange, routing_key, props, body, len(body), delivery_mode == 2,
                      priority, expiration)
        try:
            if expiration is not None:
                parse_expiration(expiration)  # 406 "invalid expiration '...'" as RabbitMQ
            if self.tx is not None:
                if exchange not in self._may_write:
                    self._check_write(exchange)
                self.vhost.exchange(exchange)  # fail early on a missing exchange
                self.tx.append(("publish", msg, mandatory))
            else:
                self.publish(msg, mandatory)
        except errors.ChannelError as exc:
            exc.class_id, exc.method_id = PUBLISH_IDS
            self.fail(exc)

    # -- publishing ------------------------------------------------------------------------
    def publish(self, msg: Message, mandatory: bool) -> None:
        """Route and enqueue one message, then return / confirm it (issue 3)."""
        if msg.exchange not in self._may_write:
            self._check_write(msg.exchange)
        vhost = self.vhost
        ex = vhost.exchanges.get(msg.exchange)
        if ex is None:
            raise errors.NotFound(f"no exchange '{msg.exchange}' in vhost '{vhost.name}'")
        if ex.internal:
            raise errors.AccessRefused(
                f"cannot publish to internal exchange '{msg.exchange}' in vhost '{vhost.name}'")
        if ex.delays:
            delay = delay_of(msg)
            if delay:  # x-delayed-message: held, routed later (session/delayed_publish.py)
                publish_delayed(self, ex, msg, mandatory, delay)
                return
        queues = vhost.route(ex, msg)
        if msg.expiration is not None:  # per-message TTL: plain queues start tracking it
            for q in queues:
                if q.features is None:
                    q.enable_message_expiry()
        if self.confirm:
            self.confirm_seq += 1
        if not queues:
            if mandatory:  # Basic.Return goes out before the confirm (confirms page)
                self._return(msg, 312, "NO_ROUTE")
            if self.confirm:
                self._confirm(self.confirm_seq, False)
            return
        durable = rejected = False
        persistent = msg.persistent
        for q in queues:
            try:
                q.publish(msg)
            except Rejected:  # x-overflow=reject-publish(-dlx): nack if confirming
                rejected = True
                continue
            if q.durable:
                durable = True
                if q.persist_all:  # quorum and stream queues store every message
                    persistent = True
            if len(q.ready) > FLOW_HIGH and q.over_flow_limit():
                self.conn.flow_block(q)
        if self.confirm:
            self._confirm(self.confirm_seq,
                          durable and persistent and self.core.store_needs_sync,
                          not rejected)
        elif durable and persistent and self.core.store_needs_sync:
            self.core.persister.dirty = True

    def _check_write(self, exchange: str) -> None:
        """basic.publish needs write permission on the exchange (403 before 404, as
        RabbitMQ checks it before looking the exchange up)."""
        permissions.check(self.conn.user, self.vhost.name, "write", "exchange", exchange,
                          self.conn.perm_cache)
        self._may_write.add(exchange)

    def _return(self, msg: Message, code: int, text: str) -> None:
        self.conn.send(fastcodec.encode_return(
            self.id, code, text, msg.exchange, msg.routing_key, msg.properties,
            self._body_of(msg), self.conn.frame_max))

    def _confirm(self, seq: int, needs_sync: bool, ack: bool = True) -> None:
        if needs_sync:
            self.pending.append((seq, self.core.persister.target(self), ack))
        elif self.pending:
            self.pending.append((seq, 0, ack))
        elif ack:
            self.confirm_upto = seq
        else:
            self._send_nack(seq)

    def flush_confirms(self) -> None:
        upto = self.confirm_upto
        if upto > self.confirm_sent:
            self.conn.send(fastcodec.encode_ack(self.id, upto, upto - self.confirm_sent > 1))
            self.confirm_sent = upto

    def _send_nack(self, seq: int) -> None:
        self.flush_confirms()
        self.conn.send(fastcodec.encode_nack(self.id, seq, False, False))
        self.confirm_upto = self.confirm_sent = seq

    def release_confirms(self, generation: int, failed: bool = False) -> bool:
        """A sync finished: confirm what waited for it. True if more still waits."""
        if self.closed:
            return False
        pending = self.pending
        while pending and pending[0][1] <= generation:
            seq, gen, ack = pending.popleft()
            if ack and not (failed and gen):
                self.confirm_upto = seq
            else:
                self._send_nack(seq)
        self.flush_confirms()
        return any(gen for _, gen, _ in pending)

    # -- deliveries ---------------------------------------------------------------------------
    def deliver(self, consumer: "Consumer", queue: "Queue", msg: Message,
                redelivered: bool) -> None:
        tag = self.next_tag
        self.next_tag = tag + 1
        self.conn.send(fastcodec.encode_deliver(
            self.id, consumer.tag, tag, redelivered, msg.exchange, msg.routing_key,
            msg.properties, self._body_of(msg), self.conn.frame_max))
        if consumer.no_ack:
            queue.settle(msg)
        else:
            self.unacked[tag] = (queue, msg, consumer)
            consumer.unacked += 1
            if self._ct_timer is None:
                self._watch_unacked(tag)

    def hold_get(self, tag: int, queue: "Queue", msg: Message) -> None:
        """A basic.get delivery (no_ack=false) waits for its ack."""
        self.unacked[tag] = (queue, msg, None)
        if queue.consumer_timeout_ms is not None:
            self.note_timeout(queue.consumer_timeout_ms)
        if self._ct_timer is None:
            self._watch_unacked(tag)

    def _body_of(self, msg: Message) -> bytes:
        body = msg.body
        if body is None:
            body = self.core.store.load_body(msg)  # type: ignore[union-attr]
        return body

    def ack(self, tag: int, multiple: bool) -> None:
        if self.tx is not None:
            self._check_tags(tag, multiple)
            self.tx.append(("ack", tag, multiple))
            return
        queues: set["Queue"] = set()
        for queue, msg, consumer in self._take(tag, multiple):
            queue.settle(msg)
            if consumer is not None:
                consumer.unacked -= 1
            queues.add(queue)
        for queue in queues:
            queue.dispatch()
        if self.global_prefetch:
            self.resume_consumers()

    def reject(self, tag: int, multiple: bool, requeue: bool) -> None:
        if self.tx is not None:
            self._check_tags(tag, multiple)
            self.tx.append(("reject", tag, multiple, requeue))
            return
        entries = self._take(tag, multiple)
        if requeue:
            self._requeue(entries)
        else:  # dead-lettered when the queue has a dead letter exchange, else dropped
            for queue, msg, consumer in entries:
                queue.reject(msg)
                if consumer is not None:
                    consumer.unacked -= 1
                queue.dispatch()

    def _check_tags(self, tag: int, multiple: bool) -> None:
        if not (multiple and tag == 0) and tag not in self.unacked:
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")

    def _take(self, tag: int, multiple: bool) -> list[tuple["Queue", Message, Any]]:
        unacked = self.unacked
        if not multiple:
            entry = unacked.pop(tag, None)
            if entry is None:
                raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
            return [entry]
        if tag == 0:  # spec: multiple with tag 0 means "everything outstanding"
            taken = list(unacked.values())
            unacked.clear()
            return taken
        if tag not in unacked:
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
        tags = []
        for t in unacked:
            if t > tag:
                break
            tags.append(t)
        return [unacked.pop(t) for t in tags]

    def _requeue(self, entries: Iterable[tuple["Queue", Message, Any]]) -> None:
        by_queue: dict["Queue", list[tuple[Message, bool]]] = {}
        for queue, msg, consumer in entries:
            by_queue.setdefault(queue, []).append((msg, True))
            if consumer is not None:
                consumer.unacked -= 1
        for queue, items in by_queue.items():
            queue.return_unacked(items)

    def recover(self) -> None:
        """basic.recover: requeue everything unacked (RabbitMQ requeues even for
        requeue=false; see docs/compatibility.md)."""
        entries = list(self.unacked.values())
        self.unacked.clear()
        self._requeue(entries)

    def resume_consumers(self) -> None:
        for queue in {c.queue for c in self.consumers.values()}:
            queue.dispatch()

    def server_cancel(self, consumer: "Consumer") -> None:
        """The queue went away under a consumer: tell clients that asked to know."""
        if self.consumers.pop(consumer.tag, None) is None or self.closed:
            return
        if self.conn.capabilities.get("consumer_cancel_notify"):
            self.conn.send_method(self.id, commands.Basic.Cancel(consumer.tag, nowait=True))

    # -- closing --------------------------------------------------------------------------------
    def fail(self, exc: errors.ChannelError) -> None:
        """The one place where a channel error becomes Channel.Close."""
        log.warning("channel.error", peer=self.conn.peer, channel=self.id,
                    code=exc.reply_code, text=exc.reply_text,
                    method=f"{exc.class_id}.{exc.method_id}")
        self.release()
        self.closing = True
        self.conn.send_method(self.id, commands.Channel.Close(
            reply_code=exc.reply_code, reply_text=exc.reply_text[:255],
            class_id=exc.class_id, method_id=exc.method_id))

    def release(self) -> None:
        """Give everything back: consumers cancelled, unacked messages requeued in order."""
        if self.closed:
            return
        self.closed = True
        self._publish = None
        if self._ct_timer is not None and self._ct_timer is not _NO_TIMEOUT:
            self._ct_timer.cancel()
        self._ct_timer = _NO_TIMEOUT
        left = [c.queue for c in self.consumers.values()]
        for consumer in list(self.consumers.values()):
            self.cancel_consumer(consumer, dispatch=False)
        entries = list(self.unacked.values())
        self.unacked.clear()
        self._requeue(entries)
        # A single active consumer's successor gets its turn once the messages are back.
        for queue in left:
            if queue.features and not queue.deleted:
                queue.dispatch()
        self.core.persister.waiting.discard(self)

    def cancel_consumer(self, consumer: "Consumer", dispatch: bool = True) -> None:
        self.consumers.pop(consumer.tag, None)
        queue = consumer.queue
        if queue.remove_consumer(consumer):
            self.vhost.remove_queue(queue)
        elif dispatch and queue.features and not queue.deleted:
            queue.dispatch()  # x-single-active-consumer: the next consumer takes over


def _decode(fn: Callable[[bytes], Any], payload: bytes) -> Any:
    try:
        return fn(payload)
    except ValueError as exc:
        raise errors.SyntaxError_(f"cannot decode method frame: {exc}") from None


from amqpbroker.session.handlers import HANDLERS  # noqa: E402  (handlers need Channel)
