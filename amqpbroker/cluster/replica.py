"""A follower's copy of the leader's durable state: the same stores, fed by replication.

The follower runs no model: it applies the leader's ordered durable changes to its own
`DiskMessageStore` and definitions log, exactly as the leader's `ChangeStream` applied them
(so its data dir is what the leader's would be), fsyncs, and acknowledges. When it is
promoted, it closes these stores and starts an ordinary broker on the same data dir, whose
recovery replays them into the model.

Messages are named on the wire by the leader store's `store_id`; `ids` maps each to the
local `Message` (the local store assigns its own ids) with the number of queues holding it.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import structlog

log = structlog.get_logger("amqpbroker.cluster")


class Replica:
    def __init__(self, data_dir: str, *, sync: bool = True,
                 memory_budget: int = 64 << 20) -> None:
        self.data_dir = data_dir
        self.sync_enabled = sync
        self.memory_budget = memory_budget
        self.store: Any = None
        self.definitions: Any = None
        self.ids: dict[int, list[Any]] = {}  # leader store_id -> [local Message, queues]
        self.members: dict[str, set[int]] = {}  # queue_key -> leader store_ids in it
        self.term = 0  # the leader term this copy follows (0: none, resync needed)
        self.applied = 0  # seq of the last change applied
        self._snapshot_ops: list[dict[str, Any]] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def _open_fresh(self) -> None:
        """Drop whatever the data dir held and start empty stores (a full resync)."""
        from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore

        self.close()
        for name in ("messages", "definitions"):
            path = os.path.join(self.data_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
        self.store = DiskMessageStore(os.path.join(self.data_dir, "messages"),
                                      sync=self.sync_enabled, memory_budget=self.memory_budget)
        self.definitions = DiskDefinitionStore(os.path.join(self.data_dir, "definitions"))
        self.ids = {}
        self.members = {}

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.definitions is not None:
            self.definitions.close()
            self.definitions = None

    # -- changes ----------------------------------------------------------------------------
    def apply(self, seq: int, kind: str, args: tuple[Any, ...]) -> None:
        """One change from the leader, in order."""
        if kind == "snapshot_begin":
            self._open_fresh()
            self.term = 0  # incomplete until snapshot_end
            self._snapshot_ops = []
            return
        if kind == "snapshot_end":
            assert self._snapshot_ops is not None, "snapshot_end without snapshot_begin"
            self.definitions.compact(self._snapshot_ops)
            self._snapshot_ops = None
            self.term = int(args[0]["term"])
            self.applied = seq
            return
        if self.store is None:
            raise RuntimeError(f"change {kind} before any snapshot")
        if kind == "add":
            queue_key, sid, msg = args
            entry = self.ids.get(sid)
            if entry is None:
                entry = self.ids[sid] = [msg, 0]
            members = self.members.setdefault(queue_key, set())
            if sid not in members:
                members.add(sid)
                entry[1] += 1
            self.store.add(queue_key, entry[0])
        elif kind == "remove":
            queue_key, sid = args
            entry = self.ids.get(sid)
            if entry is not None:
                self.store.remove(queue_key, entry[0])
                self.members.get(queue_key, set()).discard(sid)
                self._unref(sid)
        elif kind == "mark_delivered":
            queue_key, sid = args
            entry = self.ids.get(sid)
            if entry is not None:
                self.store.mark_delivered(queue_key, entry[0])
        elif kind == "delete_queue":
            (queue_key,) = args
            self.store.delete_queue(queue_key)
            self._forget_queue(queue_key)
        elif kind == "definition":
            (op,) = args
            if self._snapshot_ops is not None:
                self._snapshot_ops.append(op)
            else:
                self.definitions.append(op)
        else:
            raise ValueError(f"unknown change {kind}")
        if self._snapshot_ops is None:
            self.applied = seq

    def _forget_queue(self, queue_key: str) -> None:
        for sid in self.members.pop(queue_key, ()):
            self._unref(sid)

    def _unref(self, sid: int) -> None:
        entry = self.ids.get(sid)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self.ids[sid]

    def sync(self) -> None:
        """fsync what was applied (run in a worker thread)."""
        if self.store is not None:
            self.store.sync()
