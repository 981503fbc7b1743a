"""In-memory stores (embedded mode, and the twins the store contract tests hold the disk
stores to). Nothing is written anywhere; "recovery" returns the state of this instance,
which is what a disk store returns after a clean restart."""

from __future__ import annotations

import json
from typing import Any, Iterable

from amqpbroker.message import Message
from amqpbroker.store.base import DefinitionStore, MessageStore
from amqpbroker.store.records import StoreError

__all__ = ["MemoryMessageStore", "MemoryDefinitionStore", "StoreError"]


class MemoryMessageStore(MessageStore):
    # Nothing to fsync: publisher confirms go out as soon as messages are enqueued.
    needs_sync = False
    def __init__(self) -> None:
        # queue -> store_id -> [message, delivered]; dicts keep enqueue order
        self._queues: dict[str, dict[int, list[Any]]] = {}
        self._refs: dict[int, int] = {}  # store_id -> number of queues holding it
        self._msgs: dict[int, Message] = {}  # store_id -> message (load_message)
        self._next_id = 1

    def add(self, queue_key: str, msg: Message) -> None:
        sid = msg.store_id
        if not sid or sid not in self._refs:
            if msg.body is None:
                raise StoreError("message body is paged out and its content is no longer stored")
            sid = msg.store_id = self._next_id
            self._next_id += 1
            self._refs[sid] = 0
            self._msgs[sid] = msg
        q = self._queues.setdefault(queue_key, {})
        if sid not in q:
            q[sid] = [msg, False]
            self._refs[sid] += 1

    def remove(self, queue_key: str, msg: Message) -> None:
        q = self._queues.get(queue_key)
        if q is not None and q.pop(msg.store_id, None) is not None:
            if not q:
                del self._queues[queue_key]
            self._unref(msg.store_id)

    def _unref(self, sid: int) -> None:
        n = self._refs[sid] - 1
        if n:
            self._refs[sid] = n
        else:
            del self._refs[sid]
            del self._msgs[sid]

    def mark_delivered(self, queue_key: str, msg: Message) -> None:
        entry = self._queues.get(queue_key, {}).get(msg.store_id)
        if entry is not None:
            entry[1] = True

    def sync(self) -> None:
        pass

    def recover(self) -> dict[str, list[tuple[Message, bool]]]:
        prefix = self._index_prefix
        return {q: [(m, d) for m, d in entries.values()] for q, entries in self._queues.items()
                if not (prefix and q.startswith(prefix))}

    def recovered_index(self) -> dict[str, list[int]]:
        prefix = self._index_prefix
        if not prefix:
            return {}
        return {q: [(m.enqueued_ms << 64) | sid for sid, (m, _) in entries.items()]
                for q, entries in self._queues.items() if q.startswith(prefix)}

    def load_body(self, msg: Message) -> bytes:
        if msg.body is None:
            raise StoreError(f"message {msg.store_id} has no body")
        return msg.body

    def load_message(self, store_id: int) -> Message:
        msg = self._msgs.get(store_id)
        if msg is None:
            raise StoreError(f"message {store_id} is not in the store")
        return msg

    def delete_queue(self, queue_key: str) -> None:
        for sid in self._queues.pop(queue_key, {}):
            self._unref(sid)

    def close(self) -> None:
        pass  # the same instance serves again after a "restart"

    def stats(self) -> dict[str, Any]:
        return {
            "messages": len(self._refs),
            "queues": len(self._queues),
            "refs": sum(len(q) for q in self._queues.values()),
        }


class MemoryDefinitionStore(DefinitionStore):
    """Ops are stored as their JSON text, so that what goes in must be JSON-serializable
    and what comes out is a fresh copy - as with the disk store."""

    def __init__(self) -> None:
        self._ops: list[str] = []

    def append(self, op: dict[str, Any]) -> None:
        self._ops.append(json.dumps(op, separators=(",", ":")))

    def load(self) -> list[dict[str, Any]]:
        return [json.loads(s) for s in self._ops]

    def compact(self, ops: Iterable[dict[str, Any]]) -> None:
        self._ops = [json.dumps(op, separators=(",", ":")) for op in ops]

    def close(self) -> None:
        pass
