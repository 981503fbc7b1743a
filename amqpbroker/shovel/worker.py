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

This is the network edge (asyncio, aiormq, the client aio-pika is built on); the broker's
model knows nothing about it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import aiormq
import structlog
from pamqp import commands as spec

from amqpbroker.model.shovel_spec import ShovelSpec

log = structlog.get_logger("amqpbroker")

MAX_BACKOFF = 16


class ShovelFinished(Exception):
    """src-delete-after reached: the shovel removes itself."""


class ShovelWorker:
    def __init__(self, vhost: str, name: str, spec_: ShovelSpec,
                 resolve: Callable[[str], str], on_finished: Callable[["ShovelWorker"], None],
                 node: str = "amqpbroker") -> None:
        self.vhost = vhost
        self.name = name
        self.spec = spec_
        self.resolve = resolve
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
        self._conns: list[aiormq.Connection] = []

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
        dest_uri = self.resolve(s.dest_uris[(self.sessions - 1) % len(s.dest_uris)])
        src = await aiormq.connect(src_uri)
        self._conns.append(src)
        dest = await aiormq.connect(dest_uri)
        self._conns.append(dest)
        queue = await self._source_queue(src)
        await self._dest_setup(dest)
        sch = await src.channel()
        dch = await dest.channel(publisher_confirms=s.ack_mode == "on-confirm")
        if not self._limit_known:
            self._left = await self._limit(sch, queue)
            self._limit_known = True
        if self._left == 0:
            raise ShovelFinished
        await sch.basic_qos(prefetch_count=s.prefetch)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        no_ack = s.ack_mode == "no-ack"
        self._inflight = 0

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            tag = message.delivery.delivery_tag
            if self._left is not None and self._left - self._inflight <= 0:
                if not no_ack:  # beyond src-delete-after: back to the source queue
                    await sch.basic_reject(tag, requeue=True)
                return
            self._inflight += 1
            try:
                moved = await self._forward(message, sch, dch, tag, no_ack)
            finally:
                self._inflight -= 1
            if moved and self._left is not None:
                self._left -= 1
                if self._left <= 0 and not done.done():
                    done.set_result(None)

        consume = await sch.basic_consume(queue, on_message, no_ack=no_ack)
        self._set("running")
        waits = [asyncio.ensure_future(src.closing), asyncio.ensure_future(dest.closing), done]
        try:
            finished, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits[:2]:
                if not w.done():
                    w.cancel()
        if done in finished:
            try:
                await sch.basic_cancel(consume.consumer_tag)
            except Exception:
                pass
            raise ShovelFinished
        for w in finished:
            exc = w.exception() if not w.cancelled() else None
            raise ConnectionError(_describe(exc) if exc else "connection closed")

    async def _forward(self, message: Any, sch: Any, dch: Any, tag: int, no_ack: bool) -> bool:
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
        confirmation = await dch.basic_publish(message.body, exchange=exchange, routing_key=key,
                                               properties=props)
        if s.ack_mode == "on-confirm" and not isinstance(confirmation, spec.Basic.Ack):
            await sch.basic_reject(tag, requeue=True)  # nacked: let the source keep it
            return False
        self.transferred += 1
        if not no_ack:
            await sch.basic_ack(tag)
        return True

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
