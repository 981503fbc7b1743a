"""A follower's copy of the leader's durable state: the same stores, fed by replication.

The follower runs no model: it applies the leader's ordered durable changes to its own
`DiskMessageStore` and definitions log, exactly as the leader's `ChangeStream` applied them
(so its data dir is what the leader's would be), fsyncs, and acknowledges. When it is
promoted, it closes these stores and starts an ordinary broker on the same data dir, whose
recovery replays them into the model.

Messages are named on the wire by the leader store's `store_id`; `ids` maps each to the
local `Message` (the local store assigns its own ids) with the number of queues holding it.

Stream queues' records go to a `DiskStreamStore` over the same data dir, at the offsets and
timestamps the leader's log gave them (`stream_restore`), so a promoted follower's
recovery opens the very logs the leader had and consumers find the same offsets. A stream's
log is opened at its first change with the segment size its declaration asked for (seen in
the replicated definitions); retention is the leader's, applied as `stream_truncate`.
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
        self.streams: Any = None  # DiskStreamStore over the data dir
        self.segment_bytes: dict[str, int] = {}  # stream queue_key -> declared segment size
        self.term = 0  # the leader term this copy follows (0: none, resync needed)
        self.applied = 0  # seq of the last change applied
        self._snapshot_ops: list[dict[str, Any]] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def _open_fresh(self) -> None:
        """Drop whatever the data dir held and start empty stores (a full resync)."""
        from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore
        from amqpbroker.store.stream_store import DiskStreamStore

        self.close()
        for name in ("messages", "definitions", "streams"):
            path = os.path.join(self.data_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
        self.store = DiskMessageStore(os.path.join(self.data_dir, "messages"),
                                      sync=self.sync_enabled, memory_budget=self.memory_budget)
        self.definitions = DiskDefinitionStore(os.path.join(self.data_dir, "definitions"))
        self.streams = DiskStreamStore(self.data_dir, sync=self.sync_enabled)
        self.segment_bytes = {}
        self.ids = {}
        self.members = {}

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.definitions is not None:
            self.definitions.close()
            self.definitions = None
        if self.streams is not None:
            self.streams.close()
            self.streams = None

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
        elif kind == "stream_append":
            self._stream_log(args[0])
            self.streams.stream_restore(*args)
        elif kind == "stream_offset":
            self._stream_log(args[0])
            self.streams.stream_offset(*args)
        elif kind == "stream_truncate":
            self._stream_log(args[0])
            self.streams.stream_truncate(*args)
        elif kind == "stream_delete":
            self.streams.stream_delete(args[0])
        elif kind == "definition":
            (op,) = args
            self._note_stream(op)
            if self._snapshot_ops is not None:
                self._snapshot_ops.append(op)
            else:
                self.definitions.append(op)
        else:
            raise ValueError(f"unknown change {kind}")
        if self._snapshot_ops is None:
            self.applied = seq

    def _note_stream(self, op: dict[str, Any]) -> None:
        """A stream's declaration: the segment size its log rolls at (as on the leader)."""
        args = op.get("arguments") or {}
        if op.get("op") == "queue.declare" and args.get("x-queue-type") == "stream":
            size = args.get("x-stream-max-segment-size-bytes")
            key = f"{op.get('vhost', '/')}\x00{op['name']}"  # model.queue.queue_key
            if isinstance(size, int) and not isinstance(size, bool) and size > 0:
                self.segment_bytes[key] = size

    def _stream_log(self, queue_key: str) -> Any:
        log = self.streams.logs.get(queue_key)
        if log is None:
            size = self.segment_bytes.get(queue_key)
            log = (self.streams.open(queue_key, max_segment_bytes=size) if size
                   else self.streams.open(queue_key))
        return log

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
        if self.streams is not None:
            self.streams.sync_logs(self.streams.dirty_logs())
