"""One AMQP channel: content assembly, deliveries, the unacked ledger, confirms, tx.

A translator between frames and the broker core (issue 14): the broker's rules (access
control, routing, flow control, confirm ordering and the group commit) are applied by the
connection's `broker.session.Session`; this class keeps only AMQP's own state (content
assembly, delivery tags, the unacked ledger, prefetch, the confirm frames' mark) and
implements the core's `PublisherEvents` (returns, nacks, confirms ready) for its
`Publisher`.

Method frames arrive through `method_frame`. The two per-message methods (basic.publish and
basic.ack) are decoded by the fast codec; everything else goes through pamqp and one small
handler per method (`session/*_methods.py`, joined in `HANDLERS` below). A `ChannelError`
raised by any handler becomes Channel.Close in exactly one place, `fail()`; connection
errors propagate to the connection.

Consumer timeouts are a part it owns, `self.timeouts` (`session/consumer_timeout.py`).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Callable, Iterable

import structlog
from pamqp import commands

from amqpbroker import errors
from amqpbroker.message import Message
from amqpbroker.model.queue_args import parse_expiration
from amqpbroker.protocol import fastcodec, tables
from amqpbroker.protocol.fastcodec import encode_deliver  # the compiled one where built
from amqpbroker.protocol.methods import decode_method, method_ids
from amqpbroker.protocol.properties import scan_properties
from amqpbroker.session import direct_reply
from amqpbroker.session.consumer_timeout import ConsumerTimeouts

if TYPE_CHECKING:
    from amqpbroker.model.queue import Queue
    from amqpbroker.session.connection import ClientConnection
    from amqpbroker.session.consumer import Consumer

log = structlog.get_logger("amqpbroker")


_PUBLISH = b"\x00\x3c\x00\x28"
_TAG_BITS = struct.Struct(">QB")  # Basic.Ack's delivery tag and bits (fastcodec.decode_ack)
_ACK = b"\x00\x3c\x00\x50"
PUBLISH_IDS = (60, 40)
_REPLY_MARKER = direct_reply.PSEUDO_QUEUE.encode()
# scan_properties' answers by property bytes (pure, so shared by every channel; at most
# 1024 entries of at most 256 bytes).
_SCANNED: dict[bytes, tuple[int, int, str | None]] = {}


# Basic.Publish method payloads decoded to (exchange, routing key, mandatory): a publisher
# repeats the same few, and one dict lookup is a quarter of decoding one (at most 4096
# entries of at most 519 bytes; pure, so shared by every channel).
_PUBLISHES: dict[bytes, tuple[str, str, bool]] = {}


def _decode_publish(method: bytes) -> tuple[str, str, bool] | None:
    """A publish's arguments, remembered in _PUBLISHES; None if it does not decode or asks
    for immediate delivery (method_frame answers those)."""
    try:
        exchange, routing_key, mandatory, immediate = fastcodec.decode_publish(method)
    except ValueError:
        return None
    if immediate:
        return None
    if len(_PUBLISHES) >= 4096:
        _PUBLISHES.clear()
    decoded = _PUBLISHES[method] = (exchange, routing_key, mandatory)
    return decoded


class Channel:
    # Message counters for the management API's message_stats (class defaults; bumped
    # where the work happens: deliveries, basic.get, acks). Publishes are the publisher's.
    delivered = delivered_no_ack = redelivered = fetched = fetched_no_ack = 0
    fetched_empty = acked = 0
    def __init__(self, conn: "ClientConnection", channel_id: int) -> None:
        self.conn = conn
        self.id = channel_id
        self.vhost = conn.vhost
        self.core = conn.core
        self.session = conn.session
        # Publisher confirms (https://www.rabbitmq.com/docs/confirms): the core numbers and
        # orders them; this channel turns them into Basic.Ack / Basic.Nack frames.
        self.publisher = self.session.publisher(self)
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
        self.tx: list[tuple[Any, ...]] | None = None
        # Consumer timeouts (https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout)
        self.timeouts = ConsumerTimeouts(self, self.core.settings.consumer_timeout_ms)

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
            elif head == _ACK:  # the message path's acks come through ack_frame
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
        try:  # the per-message decoders are called inline (no `_decode` frame)
            exchange, routing_key, mandatory, immediate = fastcodec.decode_publish(payload)
        except ValueError as exc:
            raise errors.SyntaxError_(f"cannot decode method frame: {exc}") from None
        if immediate:  # RabbitMQ dropped immediate in 3.0: a connection error
            raise errors.NotImplemented_("immediate=true", *PUBLISH_IDS)
        self._publish = (exchange, routing_key, mandatory)

    def content_header(self, payload: bytes) -> None:
        if self.closing:
            return
        if self._publish is None or self._body_size < 0 or self._props:
            raise errors.UnexpectedFrame(
                f"content header on channel {self.id} without a basic.publish")
        try:
            class_id, _, body_size, props = fastcodec.decode_content_header(payload)
        except ValueError as exc:
            raise errors.SyntaxError_(f"cannot decode method frame: {exc}") from None
        # Nested headers tables are bounded (tables.MAX_DEPTH); only a header that has a
        # headers table (flag bit 13) can nest, so most publishes skip the count.
        if props[0] & 0x20 and tables.may_nest_deeper(props, tables.MAX_DEPTH):
            _check_headers(props)
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

    def ack_frame(self, payload: bytes) -> None:
        """A Basic.Ack method frame (FrameReader's FRAME_ACK): method_frame's ack branch,
        the second most frequent frame there is, without its dispatch."""
        if self._publish is not None or self.closing or len(payload) < 13:
            self.method_frame(payload)  # its errors, or discarded while closing
            return
        tag, bits = _TAG_BITS.unpack_from(payload, 4)
        try:
            self.ack(tag, bits & 1 == 1)
        except errors.ChannelError as exc:
            if not exc.class_id:
                exc.class_id, exc.method_id = 60, 80
            self.fail(exc)

    def ack_frames(self, payloads: list[bytes]) -> None:
        """Basic.Ack frames in a row (FrameReader's FRAME_ACK): each taken as ack_frame
        takes it, but the deliveries they settle go to the session together, so that each
        queue dispatches once for the lot, not once per ack (RabbitMQ's channel process
        likewise settles what one read brought before its queues deliver again)."""
        if len(payloads) == 1 or self.tx is not None or self._publish is not None:
            for payload in payloads:
                self.ack_frame(payload)
            return
        unacked = self.unacked
        entries = []
        for payload in payloads:
            if not self.closing and len(payload) >= 13:
                tag, bits = _TAG_BITS.unpack_from(payload, 4)
                if not bits & 1:
                    entry = unacked.pop(tag, None)
                    if entry is not None:
                        entries.append(entry)
                        continue
            # multiple, an unknown tag, a short frame, a closing channel: as ack_frame does,
            # after the acks before it
            if entries:
                self._settle_acks(entries)
                entries = []
            self.ack_frame(payload)
        if entries:
            self._settle_acks(entries)

    def _settle_acks(self, entries: list[tuple["Queue", Message, Any]]) -> None:
        """Deliveries acknowledged together (a multiple ack, or acks in a row)."""
        self.acked += len(entries)
        self.session.ack(entries)
        if self.global_prefetch:
            self.resume_consumers()

    def publish_content(self, method: bytes, props: bytes, body: bytes) -> None:
        """A Basic.Publish with its content header and whole body, cut from one read
        (FrameReader's FRAME_PUBLISH): what method_frame, content_header and content_body
        do for it, in one call. Anything they would refuse is left to them."""
        if self._publish is not None or self.closing:
            self.method_frame(method)  # 505 UNEXPECTED_FRAME, or discarded while closing
            return
        decoded = _PUBLISHES.get(method)
        if decoded is None:
            decoded = _decode_publish(method)
            if decoded is None:  # undecodable, or immediate=true: method_frame's errors
                self.method_frame(method)
                return
        exchange, routing_key, mandatory = decoded
        if props[0] & 0x20 and tables.may_nest_deeper(props, tables.MAX_DEPTH):
            _check_headers(props)
        limit = self.core.settings.max_message_size
        if len(body) > limit:
            self.fail(errors.PreconditionFailed(
                f"message size {len(body)} is larger than configured max size {limit}",
                *PUBLISH_IDS))
            return
        self._route(exchange, routing_key, mandatory, props, body)

    def _complete(self, body: bytes) -> None:
        exchange, routing_key, mandatory = self._publish  # type: ignore[misc]
        props = self._props
        self._publish = None
        self._props = b""
        self._received = 0
        self._route(exchange, routing_key, mandatory, props, body)

    def _route(self, exchange: str, routing_key: str, mandatory: bool, props: bytes,
               body: bytes) -> None:
        if _REPLY_MARKER in props:  # maybe reply_to "amq.rabbitmq.reply-to" (direct reply-to)
            try:
                props = direct_reply.rewrite_reply_to(self, props)
            except errors.ChannelError as exc:
                exc.class_id, exc.method_id = PUBLISH_IDS
                self.fail(exc)
                return
        # A publisher sends the same few property lists over and over: each short one is
        # scanned once (a long one, big headers, would cost more to hash than to scan).
        scanned = _SCANNED.get(props) if len(props) <= 256 else None
        if scanned is None:
            try:
                scanned = scan_properties(props)
            except ValueError as exc:
                raise errors.FrameError(
                    f"cannot decode content header properties: {exc}") from None
            if len(props) <= 256:
                if len(_SCANNED) >= 1024:
                    _SCANNED.clear()
                _SCANNED[props] = scanned
        delivery_mode, priority, expiration = scanned
        msg = Message(exchange, routing_key, props, body, len(body), delivery_mode == 2,
                      priority, expiration)
        try:
            if expiration is not None:
                parse_expiration(expiration)  # 406 "invalid expiration '...'" as RabbitMQ
            if self.tx is not None:
                self.session.check_publish(exchange, routing_key)  # 403 / 404 at publish time
                self.tx.append(("publish", msg, mandatory))
            else:
                self.session.publish(msg, mandatory, self.publisher)
        except errors.ChannelError as exc:
            exc.class_id, exc.method_id = PUBLISH_IDS
            self.fail(exc)

    # -- publisher events (from the core's Publisher) -----------------------------------
    @property
    def confirm(self) -> bool:
        return self.publisher.confirm

    def returned(self, msg: Message, code: int, text: str) -> None:
        self._return(msg, code, text)

    def nacked(self, seq: int) -> None:
        self._send_nack(seq)

    def confirms_ready(self) -> None:
        self.flush_confirms()

    def _return(self, msg: Message, code: int, text: str) -> None:
        self.conn.send(fastcodec.encode_return(
            self.id, code, text, msg.exchange, msg.routing_key, msg.properties,
            self._body_of(msg), self.conn.frame_max))

    def flush_confirms(self) -> None:
        pub = self.publisher
        upto = pub.upto
        if upto > pub.sent:
            self.conn.send(fastcodec.encode_ack(self.id, upto, upto - pub.sent > 1))
            pub.sent = upto

    def _send_nack(self, seq: int) -> None:
        self.flush_confirms()
        self.conn.send(fastcodec.encode_nack(self.id, seq, False, False))
        pub = self.publisher
        pub.upto = pub.sent = seq

    # -- deliveries ---------------------------------------------------------------------------
    def deliver(self, consumer: "Consumer", queue: "Queue", msg: Message,
                redelivered: bool) -> None:
        tag = self.next_tag
        self.next_tag = tag + 1
        conn = self.conn
        data = encode_deliver(
            self.id, consumer.tag, tag, redelivered, msg.exchange, msg.routing_key,
            msg.properties, msg.body if msg.body is not None else self._body_of(msg),
            conn.frame_max)
        out = conn.out
        if out and data.__class__ is bytes:  # output is waiting, so its flush is coming
            out.append(data)
            conn.out_bytes += len(data)
        else:
            conn.send(data)
        if redelivered:  # counters for the management API (here and below)
            self.redelivered += 1
            queue.redelivered += 1
        if consumer.no_ack:  # settled by the queue (model/queue.py)
            self.delivered_no_ack += 1
            queue.delivered_no_ack += 1
        else:
            self.delivered += 1
            queue.delivered += 1
            self.unacked[tag] = (queue, msg, consumer)
            consumer.unacked += 1
            timeouts = self.timeouts
            if timeouts.timer is None:
                timeouts.watch(tag)

    def hold_get(self, tag: int, queue: "Queue", msg: Message) -> None:
        """A basic.get delivery (no_ack=false) waits for its ack."""
        self.unacked[tag] = (queue, msg, None)
        if queue.consumer_timeout_ms is not None:
            self.timeouts.note_timeout(queue.consumer_timeout_ms)
        if self.timeouts.timer is None:
            self.timeouts.watch(tag)

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
        if multiple:
            self._settle_acks(self._take(tag, True))
            return
        # one basic.ack per delivery, the common case: no list of one
        entry = self.unacked.pop(tag, None)
        if entry is None:
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
        self.acked += 1
        self.session.ack_one(*entry)
        if self.global_prefetch:
            self.resume_consumers()

    def reject(self, tag: int, multiple: bool, requeue: bool) -> None:
        if self.tx is not None:
            self._check_tags(tag, multiple)
            self.tx.append(("reject", tag, multiple, requeue))
            return
        # requeued, or dead-lettered when the queue has a dead letter exchange, or dropped
        self.session.reject(self._take(tag, multiple), requeue)

    def _check_tags(self, tag: int, multiple: bool) -> None:
        if not (multiple and tag == 0) and tag not in self.unacked:
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")

    def _take(self, tag: int, multiple: bool) -> list[tuple["Queue", Message, Any]]:
        if not multiple:
            return [self._take_one(tag)]
        unacked = self.unacked
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

    def _take_one(self, tag: int) -> tuple["Queue", Message, Any]:
        entry = self.unacked.pop(tag, None)
        if entry is None:
            raise errors.PreconditionFailed(f"unknown delivery tag {tag}")
        return entry

    def _requeue(self, entries: Iterable[tuple["Queue", Message, Any]]) -> None:
        self.session.requeue(entries)

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
        if self.consumers.pop(consumer.tag, None) is None:
            return
        self.session.consumer_count -= 1
        if self.closed:
            return
        if self.conn.capabilities.get("consumer_cancel_notify"):
            self.conn.notify(self.id, commands.Basic.Cancel(consumer.tag, nowait=True))

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
        self.core.churn.channel_closed += 1
        self._publish = None
        self.timeouts.stop()
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
        self.publisher.close()
        self.session.counters.retire_deliveries(self)  # global counters keep its figures

    def cancel_consumer(self, consumer: "Consumer", dispatch: bool = True) -> None:
        if self.consumers.pop(consumer.tag, None) is not None:
            self.session.cancel(consumer, dispatch)


def _decode(fn: Callable[[bytes], Any], payload: bytes) -> Any:
    try:
        return fn(payload)
    except ValueError as exc:
        raise errors.SyntaxError_(f"cannot decode method frame: {exc}") from None


from amqpbroker.session.handlers import HANDLERS  # noqa: E402  (handlers need Channel)


def _check_headers(props: bytes) -> None:
    try:
        tables.check_headers(props)
    except (ValueError, IndexError, struct.error) as exc:
        raise errors.SyntaxError_(f"malformed headers table: {exc}", 60, 0) from None
