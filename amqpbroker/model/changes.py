"""Where the model's durable changes go (issue 14: the model does no IO).

Queues and virtual hosts never write to a store. They describe each durable change to a
`DurableChanges` sink the broker core hands them (`broker/changes.py`), which applies the
changes to the stores in the order they were made (one ordered stream: the thing
replication ships and the management API's events read). A queue without a sink (a
transient queue, a broker without stores, a model test) produces no changes.

Stream queues send their changes (append, tracked offset, retention, deletion) to the same
core stream through the methods of `model.stream.StreamChanges`.

Messages are named by the queue's `key` (vhost and name, see `model.queue.queue_key`);
definitions are the same operations clients send, as plain dicts
({"op": "queue.declare", "vhost": "/", "name": "q", ...}, LavinMQ's design).
"""

from __future__ import annotations

from typing import Any, Protocol

from amqpbroker.message import Message


class DurableChanges(Protocol):
    def add(self, queue_key: str, msg: Message) -> None:
        """A persistent message was enqueued on a durable queue."""

    def remove(self, queue_key: str, msg: Message) -> None:
        """It left that queue for good (acked, dropped, expired, purged)."""

    def mark_delivered(self, queue_key: str, msg: Message) -> None:
        """It was handed to a consumer (recovered with redelivered=true after a crash)."""

    def delete_queue(self, queue_key: str) -> None:
        """Every message of a deleted queue goes."""

    def definition(self, op: dict[str, Any]) -> None:
        """A durable topology change (declare, delete, bind, unbind)."""

    def load_body(self, msg: Message) -> bytes:
        """Not a change: the body of a message the store paged out (`msg.body is None`)."""

    def load_message(self, store_id: int) -> Message:
        """Not a change: a stored message by id, body included (delayed messages)."""

    def load_messages(self, store_ids: list[int]) -> list[Any]:
        """Not a change: many stored messages by id (an exception in place of one that
        cannot be read), read in position order."""

    def release_body(self, msg: Message) -> None:
        """Not a change: the body need not stay in RAM (a far-future delayed message)."""
