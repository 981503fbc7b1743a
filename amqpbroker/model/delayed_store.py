"""Where delayed messages wait (x-delayed-message exchanges, model/delayed.py): a narrow
interface, an in-memory twin, and the durable implementation on the core's stream of
durable changes (model/changes.py, broker/changes.py).

The timer index (model/delayed.py) keeps only an int per pending message -- due time and
the handle returned by `add` -- so bodies, properties and routing keys stay here: in RAM
for the memory twin (transient exchanges, in-memory brokers), in the message store's
segment log for durable exchanges, where they are written with the same records, group
commit and recovery as queued messages (docs/storage.md). A durable delayed message is
filed under a pseudo queue key per exchange (`delayed_key`): holding, routing and
dropping a delayed message are the same add / remove / delete_queue changes a queue
makes, in the same ordered stream (what replication ships). At startup the store
recovers these keys as an index only (`MessageStore.index_keys`: due time << 64 | store
id per message, no Message objects) and `BrokerCore.recover` hands each exchange its
ints: 1,000,000 pending delays recover in the RAM the live index takes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import itertools

from typing import TYPE_CHECKING

from amqpbroker.message import Message

if TYPE_CHECKING:
    from amqpbroker.model.changes import DurableChanges

# Queue keys are "<vhost>\x00<queue>"; these prefixes cannot start a vhost name (control
# characters are refused), so delayed keys never collide with a queue's. The time written
# with each record (MSG `enqueue time`, store/records.py) is the message's due time, so
# recovery rebuilds the timer index from the records alone (`MessageStore.index_keys`):
# no message object, no header parsing per pending message at startup.
DELAYED_PREFIX = "\x01delayed-due\x00"
# Data dirs of the first release of delayed messages (2026-12-04): the record's time is
# the publish time; due = that + x-delay (read from the recovered message). Still read
# (tests/fixtures/datadir-delayed-legacy), never written.
LEGACY_PREFIX = "\x01delayed\x00"


def delayed_key(vhost: str, exchange: str) -> str:
    return f"{DELAYED_PREFIX}{vhost}\x00{exchange}"


def parse_delayed_key(key: str) -> tuple[str, str, bool] | None:
    """(vhost, exchange, legacy format) of a delayed key, None for a queue's key."""
    if key.startswith(DELAYED_PREFIX):
        rest, legacy = key[len(DELAYED_PREFIX):], False
    elif key.startswith(LEGACY_PREFIX):
        rest, legacy = key[len(LEGACY_PREFIX):], True
    else:
        return None
    vhost, _, exchange = rest.partition("\x00")
    return vhost, exchange, legacy


class DelayedStore(ABC):
    """Pending delayed messages of one or more exchanges, addressed by handle (an int
    below 2**64, increasing in the order of `add` calls)."""

    durable = False  # True: an `add` is on disk after the next group commit

    @abstractmethod
    def add(self, key: str, msg: Message, keep_body: bool = False) -> int:
        """Keep `msg` for exchange `key`; returns its handle. Its `enqueued_ms` is its due
        time (written with it). `keep_body`: it is due soon, keep its body in RAM if the
        store can (it is read back anyway)."""

    @abstractmethod
    def load_batch(self, handles: list[int]) -> list[Message | Exception]:
        """The messages (with their bodies) behind handles that are due, in the order
        given; an exception in place of one that cannot be read. To the queues each is a
        new message (`store_id` 0): routing writes it again, so no queue ever refers to a
        delayed record (store/records.py, index keys)."""

    @abstractmethod
    def remove(self, key: str, handle: int, msg: Message) -> None:
        """Forget a message that was routed (after it was added to its queues)."""

    @abstractmethod
    def drop(self, key: str) -> None:
        """Forget every pending message of an exchange (it was deleted)."""


class MemoryDelayedStore(DelayedStore):
    def __init__(self) -> None:
        self._msgs: dict[int, Message] = {}
        self._ids = itertools.count(1)
        self._by_key: dict[str, set[int]] = {}

    def add(self, key: str, msg: Message, keep_body: bool = False) -> int:
        handle = next(self._ids)
        self._msgs[handle] = msg
        self._by_key.setdefault(key, set()).add(handle)
        return handle

    def load_batch(self, handles: list[int]) -> list[Message | Exception]:
        msgs = self._msgs
        return [msgs[h] if h in msgs else KeyError(h) for h in handles]

    def remove(self, key: str, handle: int, msg: Message) -> None:
        handles = self._by_key.get(key)
        if handles is not None:
            handles.discard(handle)
        self._msgs.pop(handle, None)

    def drop(self, key: str) -> None:
        for handle in self._by_key.pop(key, ()):
            self._msgs.pop(handle, None)

    def __len__(self) -> int:
        return len(self._msgs)


class ChangesDelayed(DelayedStore):
    """Durable: delayed messages are durable changes, records of the message store."""

    durable = True

    def __init__(self, changes: "DurableChanges") -> None:
        self.changes = changes

    def add(self, key: str, msg: Message, keep_body: bool = False) -> int:
        msg.store_id = 0  # always a new record, even for a message that was stored before
        self.changes.add(key, msg)
        if not keep_body:
            # Only the timer index's int stays in RAM; the body is read back when due.
            self.changes.release_body(msg)
        return msg.store_id

    def load_batch(self, handles: list[int]) -> list[Message | Exception]:
        loaded = self.changes.load_messages(handles)  # position order, neighbours in one read
        for msg in loaded:
            if isinstance(msg, Message):
                msg.store_id = 0
        return loaded

    def remove(self, key: str, handle: int, msg: Message) -> None:
        # `msg` went to its queues as a new message (load_batch); the delayed record is
        # the store's message `handle`.
        sid = msg.store_id
        msg.store_id = handle
        try:
            self.changes.remove(key, msg)
        finally:
            msg.store_id = sid

    def drop(self, key: str) -> None:
        self.changes.delete_queue(key)
