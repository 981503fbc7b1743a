"""A shovel destination in this broker (`dest-uri: amqp://`, no host): publishes go into
the broker's core through a session of its own, as RabbitMQ's shovel uses a direct
(in-node, no socket) connection for a URI without a host
(https://www.rabbitmq.com/docs/shovel#source-and-destination). No frames are encoded and
parsed again, no socket round trip; confirms come from the same group commit as a
client's (`broker.publisher.Publisher`), so on-confirm means what it means over AMQP.

The worker (`shovel/worker.py`) uses it through the same three calls it makes on an
aiormq channel: `declare_queue`, `basic_publish` (awaits the confirm) and `closing`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from pamqp import commands as spec

from amqpbroker import errors
from amqpbroker.message import Message

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore

ACK = spec.Basic.Ack()
NACK = spec.Basic.Nack()


class LocalDestination:
    """One shovel session's destination: a core session as the broker's default user in
    the shovel's vhost (what `amqp://` means for a shovel of this broker)."""

    def __init__(self, core: "BrokerCore", vhost: str, username: str) -> None:
        user = core.users.get(username)
        if user is None:
            raise ConnectionError(f"amqp:// (this broker): no user '{username}'")
        self.core = core
        self.loop = asyncio.get_running_loop()
        self.closing: asyncio.Future[str] = self.loop.create_future()  # result: the reason
        try:
            self.session = core.open_session(user, vhost, self)
        except errors.AMQPError as exc:
            raise ConnectionError(exc.reply_text) from None
        self.publisher = self.session.publisher(self)
        self.publisher.confirm = True
        self.waiting: deque[tuple[int, asyncio.Future[Any]]] = deque()
        self._unblocked = asyncio.Event()
        self._unblocked.set()
        self._nacked_now = 0
        self.confirm = True  # False: basic_publish returns once the message is routed

    # -- what the worker calls ---------------------------------------------------------------
    async def declare_queue(self, name: str) -> None:
        """The destination queue: kept as it is if it exists, else declared durable."""
        if name in self.session.vhost.queues:
            return
        try:
            self.session.declare_queue(name, durable=True)
        except errors.AMQPError as exc:
            raise ConnectionError(exc.reply_text) from None

    async def basic_publish(self, body: bytes, *, exchange: str, routing_key: str,
                            properties: spec.Basic.Properties, wait: bool = False) -> Any:
        """Publish and wait for the confirm (Basic.Ack or Basic.Nack, as aiormq)."""
        if self.closing.done():
            raise ConnectionError("the shovel's session in this broker is closed")
        if not self._unblocked.is_set():  # a resource alarm blocks publishers
            await self._unblocked.wait()
        msg = Message(exchange, routing_key, properties.marshal(), body, len(body),
                      properties.delivery_mode == 2, properties.priority or 0,
                      properties.expiration)
        publisher = self.publisher
        publisher.confirm = self.confirm
        try:
            needs_sync = self.session.publish(msg, False, publisher)
        except errors.AMQPError as exc:  # 404 no exchange, 403: as a channel error
            self.close(exc.reply_text)
            raise ConnectionError(exc.reply_text) from None
        self.session.check_alarm()  # an alarm already on blocks the next publish
        seq = publisher.seq
        if not self.confirm:
            if needs_sync:
                self.core.kick_sync()
            return None
        if self._nacked_now == seq:
            return NACK  # refused at once (x-overflow reject-publish)
        if publisher.upto >= seq:
            return ACK  # routed to nothing durable: confirmed at once
        fut = self.loop.create_future()
        self.waiting.append((seq, fut))
        if needs_sync:
            self.core.kick_sync()  # the server's group commit
        return await fut

    def close(self, reason: str = "closed") -> None:
        if not self.closing.done():
            self.closing.set_result(reason)
        for _, fut in self.waiting:
            if not fut.done():
                fut.set_exception(ConnectionError(reason))
        self.waiting.clear()
        self.publisher.close()  # no confirm callbacks after this
        self.session.close()

    # -- SessionEvents / PublisherEvents -----------------------------------------------------
    def reading(self, paused: bool) -> None:
        pass  # flow control: the source's prefetch window bounds what is in flight

    def blocked(self, on: bool, reason: str) -> None:
        if on:
            self._unblocked.clear()
        else:
            self._unblocked.set()

    def force_close(self, code: int, text: str) -> None:
        self.close(text)

    def returned(self, msg: Message, code: int, text: str) -> None:
        pass  # never mandatory

    def nacked(self, seq: int) -> None:
        self._nacked_now = seq  # during session.publish: not waiting yet
        self._release(seq - 1)
        if self.waiting and self.waiting[0][0] == seq:
            fut = self.waiting.popleft()[1]
            if not fut.done():
                fut.set_result(NACK)

    def confirms_ready(self) -> None:
        self._release(self.publisher.upto)

    def _release(self, upto: int) -> None:
        waiting = self.waiting
        while waiting and waiting[0][0] <= upto:
            fut = waiting.popleft()[1]
            if not fut.done():
                fut.set_result(ACK)
        self.publisher.sent = max(self.publisher.sent, upto)
