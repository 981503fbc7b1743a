"""The narrow storage interface (see docs/architecture.md, "Storage").

Two stores sit behind it: `MemoryStore` (embedded / in-memory mode, and the twin the
contract tests compare against) and `DiskStore` (segment log under --data-dir). The broker
only ever talks to these two small interfaces, as NATS's store began: keep them narrow.

Queues are named to the store by an opaque `queue_key` string (vhost and queue name joined
by the model, see `model.vhost.queue_key`). Every method is called from the event-loop
thread, except `sync()`, which the server may run in a worker thread; implementations must
let `sync()` run concurrently with `add`/`remove` calls made after it began (those are
simply not covered by that sync).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterable, Iterator

from amqpbroker.message import Message
from amqpbroker.store.records import StoreError


class MessageStore(ABC):
    """Persistent messages of durable queues."""

    # False for stores where sync() has nothing to do (the memory twin): confirms are then
    # sent without waiting for a group commit.
    needs_sync = True

    @abstractmethod
    def add(self, queue_key: str, msg: Message) -> None:
        """Record `msg` as enqueued (at the tail) on durable queue `queue_key`.

        The first add of a message writes its exchange, routing key, properties and body and
        assigns `msg.store_id`; an add of the same message to another queue (fanout) writes
        only a reference. Buffered: durable only after the next `sync()` returns.
        """

    @abstractmethod
    def remove(self, queue_key: str, msg: Message) -> None:
        """Record that `msg` left `queue_key` for good (acked, dropped, expired, purged).

        Once no queue references a message, its space may be reclaimed.
        """

    @abstractmethod
    def mark_delivered(self, queue_key: str, msg: Message) -> None:
        """Record that `msg` was handed to a consumer, so that after a crash it is
        recovered with redelivered=true. Buffered, never needs its own sync."""

    @abstractmethod
    def sync(self) -> None:
        """Make every earlier add/remove/mark durable (fsync). Group commit: the server
        calls this once for a whole batch of publishes, and only then sends their
        publisher confirms."""

    @abstractmethod
    def recover(self) -> dict[str, list[tuple[Message, bool]]]:
        """At startup: every queue's messages in queue order, each with its redelivered
        flag. Acknowledged messages never come back. Index keys (`index_keys`) are left
        out: their messages come back from `recovered_index()`."""

    # Index keys: queue keys whose messages recover as ints, not Messages (the timer index
    # of delayed messages, model/delayed_store.py: a million pending must not need a
    # million objects at startup). The time of such a message is its `enqueued_ms` when
    # it was added (the delayed index stores the due time there).
    _index_prefix = ""

    # Lean recovery: queues come back as `store.records.RecoveredRefs` (store ids and body
    # sizes in arrays) instead of lists of messages, where the store can do it (on disk).
    _lean = False

    def recover_lean(self) -> None:
        """Before `recover()`: a queue's messages may come back as RecoveredRefs."""
        self._lean = True

    def index_keys(self, prefix: str) -> None:
        """Before `recover()`: keys that start with `prefix` are index keys."""
        self._index_prefix = prefix

    def recovered_index(self) -> dict[str, list[int]]:
        """After `recover()`: per index key, `time << 64 | store_id` of each message, in
        no particular order."""
        return {}

    @abstractmethod
    def load_body(self, msg: Message) -> bytes:
        """The body of a message whose `body` was paged out (is None)."""

    def release_body(self, msg: Message) -> None:
        """The caller will not need `msg`'s body soon (a delayed message): a store that
        can read it back may drop it from RAM now instead of at the next paging."""

    def load_message(self, store_id: int) -> Message:
        """A stored message, body included, by its store id (delayed messages wait in
        the store as ids only: store/delayed.py). Its `enqueued_ms` is the time of the
        first add."""
        raise NotImplementedError

    def load_messages(self, store_ids: list[int]) -> list[Message | StoreError]:
        """`load_message` for many (the delayed messages due in one tick): a store on
        disk reads them in position order, neighbours with one read. A message that
        cannot be loaded is a StoreError in its place."""
        out: list[Message | StoreError] = []
        for sid in store_ids:
            try:
                out.append(self.load_message(sid))
            except StoreError as e:
                out.append(e)
        return out

    @abstractmethod
    def delete_queue(self, queue_key: str) -> None:
        """Forget every message of a deleted queue."""

    @abstractmethod
    def close(self) -> None:
        """Flush, sync and release files."""

    def stats(self) -> dict[str, Any]:
        """Numbers for logs and benchmarks (bytes on disk, segments, ...)."""
        return {}


class DefinitionStore(ABC):
    """Durable topology as a log of the same operations clients send (LavinMQ's design):
    each op is a plain dict such as {"op": "queue.declare", "vhost": "/", "name": "q",
    "durable": True, ...}; replayed through the same vhost code at startup."""

    @abstractmethod
    def append(self, op: dict[str, Any]) -> None:
        """Append one op and make it durable before returning (topology changes are rare)."""

    @abstractmethod
    def load(self) -> list[dict[str, Any]]:
        """Every op in order, as appended (or as last compacted)."""

    def iter_ops(self) -> Iterator[dict[str, Any]]:
        """The ops of `load`, one at a time: recovery of 100,000 queues never holds them
        all (all at once, their peak stayed in the process's RSS after recovery)."""
        return iter(self.load())

    @abstractmethod
    def compact(self, ops: Iterable[dict[str, Any]]) -> None:
        """Atomically replace the log by `ops` (the live topology's minimal op list)."""

    @abstractmethod
    def close(self) -> None:
        """Release files."""
