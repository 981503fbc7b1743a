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
makes, in the same ordered stream (what replication ships), so `MessageStore.recover()`
returns it at startup and `BrokerCore.recover` hands it back to its exchange.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import itertools

from typing import TYPE_CHECKING

from amqpbroker.message import Message

if TYPE_CHECKING:
    from amqpbroker.model.changes import DurableChanges

# Queue keys are "<vhost>\x00<queue>"; this prefix cannot start a vhost name (control
# characters are refused), so delayed keys never collide with a queue's.
DELAYED_PREFIX = "\x01delayed\x00"


def delayed_key(vhost: str, exchange: str) -> str:
    return f"{DELAYED_PREFIX}{vhost}\x00{exchange}"


def parse_delayed_key(key: str) -> tuple[str, str] | None:
    """(vhost, exchange) of a delayed key, None for a queue's key."""
    if not key.startswith(DELAYED_PREFIX):
        return None
    vhost, _, exchange = key[len(DELAYED_PREFIX):].partition("\x00")
    return vhost, exchange


class DelayedStore(ABC):
    """Pending delayed messages of one or more exchanges, addressed by handle (an int
    below 2**64, increasing in the order of `add` calls)."""

    durable = False  # True: an `add` is on disk after the next group commit

    @abstractmethod
    def add(self, key: str, msg: Message, keep_body: bool = False) -> int:
        """Keep `msg` for exchange `key`; returns its handle. `keep_body`: it is due
        soon, keep its body in RAM if the store can (it is read back anyway)."""

    @abstractmethod
    def load(self, handle: int) -> Message:
        """The message (with its body) behind a handle, when it is due."""

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

    def load(self, handle: int) -> Message:
        return self._msgs[handle]

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

    def load(self, handle: int) -> Message:
        return self.changes.load_message(handle)

    def remove(self, key: str, handle: int, msg: Message) -> None:
        self.changes.remove(key, msg)

    def drop(self, key: str) -> None:
        self.changes.delete_queue(key)
