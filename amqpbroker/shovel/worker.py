"""One running shovel: consume from the source, publish to the destination, acknowledge
at the source as `ack-mode` says (https://www.rabbitmq.com/docs/shovel#ack-mode):

* on-confirm - the destination runs publisher confirms; a message is acked at the
  source once the destination confirmed it (nacked by the destination: requeued at
  the source). Nothing is lost if either side restarts; some messages may be shovelled
  twice (at-least-once).
* on-publish - acked at the source once handed to the destination's socket.
* no-ack     - consumed with no_ack: fastest, loses in-flight messages on failure.

A failure (connection refused or lost, a channel error) ends the session: state
"terminated" with the reason, a wait of `reconnect-delay` seconds (doubling after each
failure in a row, up to 16 x, back to the base once a session has run), state
"starting", a new session. Messages unacknowledged at the source when a session ends
are redelivered to the next one by the source broker.

Throughput: up to `src-prefetch-count` messages are in flight at once (aiormq runs one
task per delivery; publishes are not drained one by one), and the source is acknowledged
with one `basic.ack multiple=True` per run of settled deliveries (`_SourceAcks`). A
destination URI without a host is this broker: publishes go into its core directly
(shovel/local.py), as RabbitMQ's shovel uses a direct connection for one.

This is the network edge (asyncio, aiormq, the client aio-pika is built on); the broker's
model knows nothing about it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable

import aiormq
import structlog
from pamqp import commands as spec

from amqpbroker.model.shovel_spec import ShovelSpec
from amqpbroker.shovel.local import LocalDestination

log = structlog.get_logger("amqpbroker")

MAX_BACKOFF = 16


class ShovelFinished(Exception):
    """src-delete-after reached: the shovel removes itself."""


class ShovelWorker:
    def __init__(self, vhost: str, name: str, spec_: ShovelSpec,
                 resolve: Callable[[str], str], on_finished: Callable[["ShovelWorker"], None],
                 node: str = "amqpbroker",
                 local: Callable[[str], LocalDestination | None] | None = None) -> None:
        self.vhost = vhost
        self.name = name
        self.spec = spec_
        self.resolve = resolve
        # A destination URI that means this broker -> a direct destination (shovel/local.py)
        self.local = local
        self.on_finished = on_finished
        self.node = node
        self.state = "starting"
        self.reason: str | None = None
        self.timestamp = time.time()
        self.transferred = 0  # messages published to the destination (all sessions)
        self.sessions = 0
        self._left: int | None = None  # src-delete-after: messages still to move
        self._limit_known = False
        self._inflight = 0
        self._task: asyncio.Task[None] | None = None
        self._conns: list[Any] = []  # aiormq connections, a LocalDestination

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self._close()

    def status(self) -> dict[str, Any]:
        """One entry of RabbitMQ's GET /api/shovels."""
        s = self.spec
        out: dict[str, Any] = {
            "name": self.name, "vhost": self.vhost, "type": "dynamic", "node": self.node,
            "state": self.state, "timestamp": time.strftime(
                "%Y-%m-%d %H:%M:%S", time.gmtime(self.timestamp)),
            "src_uri": _redact(s.src_uri), "src_protocol": "amqp091",
            "dest_uri": _redact(s.dest_uri), "dest_protocol": "amqp091",
            "messages_transferred": self.transferred,
        }
        if s.src_queue is not None:
            out["src_queue"] = s.src_queue
        else:
            out.update(src_exchange=s.src_exchange, src_exchange_key=s.src_exchange_key)
        if s.dest_queue is not None:
            out["dest_queue"] = s.dest_queue
        elif s.dest_exchange is not None:
            out["dest_exchange"] = s.dest_exchange
            if s.dest_exchange_key is not None:
                out["dest_exchange_key"] = s.dest_exchange_key
        if self.state == "terminated" and self.reason:
            out["reason"] = self.reason
        return out

    def _set(self, state: str, reason: str | None = None) -> None:
        if state != self.state or reason != self.reason:
            self.state, self.reason, self.timestamp = state, reason, time.time()
            log.info("shovel.state", vhost=self.vhost, shovel=self.name, state=state,
                     reason=reason)

    async def _run(self) -> None:
        failures = 0
        while True:
            self._set("starting")
            started = time.monotonic()
            try:
                await self._session()
            except ShovelFinished:
                await self._close()
                self._set("terminated", "src-delete-after reached")
                self.on_finished(self)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure means: wait, then reconnect
                await self._close()
                if time.monotonic() - started > 10 * max(self.spec.reconnect_delay, 1):
                    failures = 0  # it ran for a while: start the backoff again
                failures += 1
                log.debug("shovel.failed", shovel=self.name, exc_info=exc)
                self._set("terminated", _describe(exc))
                delay = self.spec.reconnect_delay * min(2 ** (failures - 1), MAX_BACKOFF)
                await asyncio.sleep(delay)

    async def _close(self) -> None:
        conns, self._conns = self._conns, []
        for conn in conns:
            if isinstance(conn, LocalDestination):
                conn.close()
                continue
            try:
                await asyncio.wait_for(conn.close(), 5)
            except BaseException:
                pass

    # -- one session ------------------------------------------------------------------------
    async def _session(self) -> None:
        s = self.spec
        self.sessions += 1
        # A list of URIs: try them in turn, one per session (RabbitMQ picks at random).
        src_uri = self.resolve(s.src_uris[(self.sessions - 1) % len(s.src_uris)])
        dest_raw = s.dest_uris[(self.sessions - 1) % len(s.dest_uris)]
        src = await aiormq.connect(src_uri)
        self._conns.append(src)
        local = self.local(dest_raw) if self.local is not None else None
        dch: Any
        if local is not None:  # this broker: publish into its core, no socket
            self._conns.append(local)
            local.confirm = s.ack_mode == "on-confirm"
            if s.dest_queue is not None:
                await local.declare_queue(s.dest_queue)
            dch, dest_closing = local, local.closing
        else:
            dest = await aiormq.connect(self.resolve(dest_raw))
            self._conns.append(dest)
            await self._dest_setup(dest)
            dch = await dest.channel(publisher_confirms=s.ack_mode == "on-confirm")
            dest_closing = dest.closing
        queue = await self._source_queue(src)
        sch = await src.channel()
        if not self._limit_known:
            self._left = await self._limit(sch, queue)
            self._limit_known = True
        if self._left == 0:
            raise ShovelFinished
        await sch.basic_qos(prefetch_count=s.prefetch)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        no_ack = s.ack_mode == "no-ack"
        acks = _SourceAcks(sch)
        broken: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        self._inflight = 0

        # aiormq runs this as one task per delivery, in delivery order: up to `prefetch`
        # messages are in flight at once, their publishes pipelined (no wait per message).
        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            tag = message.delivery.delivery_tag
            if self._left is not None and self._left - self._inflight <= 0:
                if not no_ack:  # beyond src-delete-after: back to the source queue
                    acks.add(tag)
                    acks.settle(tag, False)
                return
            self._inflight += 1
            if not no_ack:
                acks.add(tag)
            try:
                moved = await self._forward(message, dch)
            except Exception as exc:  # e.g. the destination closed the channel: end the
                if not broken.done():  # session; the source requeues what is unacked
                    broken.set_result(exc)
                return
            finally:
                self._inflight -= 1
            if not no_ack:
                acks.settle(tag, moved)  # nacked by the destination: requeued at the source
            if moved:
                self.transferred += 1
                if self._left is not None:
                    self._left -= 1
                    if self._left <= 0 and not done.done():
                        done.set_result(None)

        consume = await sch.basic_consume(queue, on_message, no_ack=no_ack)
        self._set("running")
        waits = [asyncio.ensure_future(src.closing), asyncio.ensure_future(dest_closing), done,
                 broken]
        try:
            finished, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits[:2]:
                if not w.done():
                    w.cancel()
        if done in finished:
            try:
                await sch.basic_cancel(consume.consumer_tag)
                await acks.drain()
            except Exception:
                pass
            raise ShovelFinished
        # The publish error first: closing the local session completes `dest_closing` in the
        # same step, and a set has no order.
        if broken in finished:
            raise broken.result()
        closed = next(w for w in waits[:2] if w in finished)
        raise ConnectionError(_closed_reason(closed))

    async def _forward(self, message: Any, dch: Any) -> bool:
        """Publish one message to the destination; True once it is moved (on-confirm:
        confirmed by the destination)."""
        s = self.spec
        props = message.header.properties
        if s.add_forward_headers or s.add_timestamp_header or s.publish_properties:
            props = self._with_extra_headers(props, message)
        if s.dest_queue is not None:
            exchange, key = "", s.dest_queue
        else:
            exchange = s.dest_exchange if s.dest_exchange is not None else message.delivery.exchange
            key = (s.dest_exchange_key if s.dest_exchange_key is not None
                   else message.delivery.routing_key)
        # wait=False: no drain of the socket per message (aiormq's write queue is bounded,
        # which is the back-pressure); with confirms this still awaits the confirm.
        confirmation = await dch.basic_publish(message.body, exchange=exchange, routing_key=key,
                                               properties=props, wait=False)
        return s.ack_mode != "on-confirm" or isinstance(confirmation, spec.Basic.Ack)

    def _with_extra_headers(self, props: spec.Basic.Properties, message: Any) -> Any:
        s = self.spec
        headers = dict(props.headers or {})
        if s.add_forward_headers:
            # RabbitMQ's x-shovelled header (rabbit_shovel_util:add_forward_headers)
            info = {"shovelled-by": self.node, "shovel-type": "dynamic",
                    "shovel-name": self.name, "shovel-vhost": self.vhost,
                    "src-protocol": "amqp091", "src-uri": _redact(s.src_uri),
                    "dest-protocol": "amqp091", "dest-uri": _redact(s.dest_uri)}
            if s.src_queue is not None:
                info["src-queue"] = s.src_queue
            else:
                info["src-exchange"] = s.src_exchange or ""
                info["src-exchange-key"] = s.src_exchange_key
            if s.dest_queue is not None:
                info["dest-queue"] = s.dest_queue
            elif s.dest_exchange is not None:
                info["dest-exchange"] = s.dest_exchange
                if s.dest_exchange_key is not None:
                    info["dest-exchange-key"] = s.dest_exchange_key
            previous = headers.get("x-shovelled")
            headers["x-shovelled"] = [info] + (list(previous) if isinstance(previous, list)
                                               else [])
        if s.add_timestamp_header:
            headers["x-shovelled-timestamp"] = int(time.time())
        fields = {k: getattr(props, k) for k in (
            "content_type", "content_encoding", "delivery_mode", "priority", "correlation_id",
            "reply_to", "expiration", "message_id", "timestamp", "message_type", "user_id",
            "app_id", "cluster_id")}
        for key, value in s.publish_properties.items():
            name = {"type": "message_type"}.get(key, key)
            if name in fields:
                fields[name] = value
        return spec.Basic.Properties(headers=headers, **fields)

    async def _source_queue(self, conn: aiormq.Connection) -> str:
        s = self.spec
        if s.src_queue is not None:
            await _ensure_queue(conn, s.src_queue)
            return s.src_queue
        ch = await conn.channel()
        ok = await ch.queue_declare("", exclusive=True, auto_delete=True)
        await ch.queue_bind(ok.queue, s.src_exchange or "", routing_key=s.src_exchange_key)
        return ok.queue

    async def _dest_setup(self, conn: aiormq.Connection) -> None:
        if self.spec.dest_queue is not None:
            await _ensure_queue(conn, self.spec.dest_queue)

    async def _limit(self, ch: Any, queue: str) -> int | None:
        after = self.spec.delete_after
        if after == "never":
            return None
        if after == "queue-length":
            ok = await ch.queue_declare(queue, passive=True)
            return ok.message_count
        return int(after)


class _SourceAcks:
    """Acknowledgements to the source, in delivery order, in as few frames as possible:
    one `basic.ack multiple=True` for every run of settled deliveries (RabbitMQ's shovel
    acks the same way, https://www.rabbitmq.com/docs/confirms#consumer-acks-multiple-parameter),
    a `basic.reject requeue=True` for each one the destination refused. A delivery is
    acknowledged only when every earlier one is settled, so `multiple` never covers a
    message still in flight or one to reject."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.order: deque[int] = deque()  # delivery tags, in delivery order
        self.pending: dict[int, bool | None] = {}  # tag -> None in flight, True ack, False reject
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.frames = 0  # ack / reject frames sent (tests, benchmarks)

    def add(self, tag: int) -> None:
        self.order.append(tag)
        self.pending[tag] = None

    def settle(self, tag: int, ok: bool) -> None:
        self.pending[tag] = ok
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())
        else:
            self._again = True

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _flush(self) -> None:
        try:
            while True:
                self._again = False
                order, pending = self.order, self.pending
                upto = 0
                while order:
                    tag = order[0]
                    ok = pending[tag]
                    if ok is None:
                        break
                    order.popleft()
                    del pending[tag]
                    if ok:
                        upto = tag
                        continue
                    if upto:
                        await self._send(spec.Basic.Ack(delivery_tag=upto, multiple=True))
                        upto = 0
                    await self._send(spec.Basic.Reject(delivery_tag=tag, requeue=True))
                if upto:
                    await self._send(spec.Basic.Ack(delivery_tag=upto, multiple=True))
                if not self._again:
                    return
        except Exception as exc:  # the channel is gone: the session ends, the source requeues
            log.debug("shovel.ack_failed", exc_info=exc)

    async def _send(self, frame: Any) -> None:
        self.frames += 1
        if isinstance(frame, spec.Basic.Ack):
            await self.channel.basic_ack(frame.delivery_tag, multiple=frame.multiple, wait=False)
        else:
            await self.channel.basic_reject(frame.delivery_tag, requeue=True, wait=False)


def _closed_reason(closing: "asyncio.Future[Any]") -> str:
    """Why a source or destination connection ended: its error, or the reason the local
    destination gives as the future's result (aiormq's gives none)."""
    if not closing.cancelled():
        if closing.exception() is not None:
            return _describe(closing.exception())
        if isinstance(closing.result(), str):
            return closing.result()
    return "connection closed"


async def _ensure_queue(conn: aiormq.Connection, name: str) -> None:
    """Use the queue if it exists; else declare it durable with no arguments (as
    RabbitMQ's shovel does), so a queue with other arguments is never redeclared."""
    ch = await conn.channel()
    try:
        await ch.queue_declare(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        ch = await conn.channel()
        await ch.queue_declare(name, durable=True)
    try:
        await ch.close()
    except Exception:
        pass


def _redact(uri: str) -> str:
    """The URI without its password (status output)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
