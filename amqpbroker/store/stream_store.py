"""Where stream queues' logs live: the narrow interface the core writes streams through.

A `StreamStore` holds the logs of every stream queue of a broker, named by the queue's
opaque `queue_key` (as the message store names queues). The model never sees a path or a
file: it gets a log to *read* (cursors, counts, `flush` so cursors see what was appended)
and makes every durable change through the core's change stream, whose stream methods,
with nothing tapped, are this store's bound methods (the same trick as the message store's,
broker/changes.py):

    offset = store.stream_append(key, exchange, routing_key, properties, body, filter_value)
    store.stream_offset(key, consumer_name, offset)   # server-side offset tracking
    dropped = store.stream_retain(key, now)           # x-max-length-bytes / x-max-age
    store.stream_delete(key)                           # queue.delete: the files go

and, on a follower applying the leader's changes (cluster/replica.py), the same records
at the same offsets and timestamps, and the leader's retention point:

    store.stream_restore(key, offset, timestamp_ms, exchange, routing_key, properties, body,
                         filter_value)
    store.stream_truncate(key, first_offset)

`DiskStreamStore` keeps each log (`store.stream_log.StreamLog`) in
`<root>/streams/<sha256 of the key, 40 hex digits>/` (any vhost and queue name is a valid
key, not a valid file name); `MemoryStreamStore` is its in-memory twin over
`store.stream_memory.MemoryStreamLog`. `tests/store/test_stream_store_contract.py` runs one
contract over both. Durability is the group commit's: `dirty_logs()` on the event-loop
thread, then `sync_logs(logs)` in the worker thread.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from amqpbroker.store.stream_log import DEFAULT_SEGMENT_BYTES, StreamLog
from amqpbroker.store.stream_memory import MemoryStreamLog, _Disk


def stream_directory(root: str | Path, queue_key: str) -> Path:
    """Where a stream's files live under the data directory (names are hashed)."""
    digest = hashlib.sha256(queue_key.encode("utf-8", "surrogatepass")).hexdigest()
    return Path(root) / "streams" / digest[:40]


class StreamStore:
    """The stream logs of one broker, by queue key (see the module docstring)."""

    def __init__(self, *, sync: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.sync = sync
        self.clock = clock
        self.logs: dict[str, Any] = {}

    def _new_log(self, queue_key: str, **limits: Any) -> Any:
        raise NotImplementedError

    # -- opening ------------------------------------------------------------------------------
    def open(self, queue_key: str, *, max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
             max_bytes: int | None = None, max_age_ms: int | None = None) -> Any:
        """Create or recover the log of `queue_key` (a reader for the model)."""
        log = self.logs.get(queue_key)
        if log is None:
            log = self.logs[queue_key] = self._new_log(
                queue_key, max_segment_bytes=max_segment_bytes, max_bytes=max_bytes,
                max_age_ms=max_age_ms)
        else:
            log.configure(max_bytes=max_bytes, max_age_ms=max_age_ms,
                          max_segment_bytes=max_segment_bytes)
        return log

    def log(self, queue_key: str) -> Any:
        return self.logs[queue_key]

    # -- the durable changes ------------------------------------------------------------------
    def stream_append(self, queue_key: str, exchange: str, routing_key: str, properties: bytes,
                      body: bytes, filter_value: str | None = None) -> int:
        """Append one message; its offset. Durable after the next sync of its log."""
        return self.logs[queue_key].append(exchange, routing_key, properties, body,
                                           filter_value)

    def stream_offset(self, queue_key: str, name: str, offset: int) -> None:
        """Consumer `name` has processed up to `offset` (LavinMQ's server-side tracking)."""
        self.logs[queue_key].store_offset(name, offset)

    def stream_retain(self, queue_key: str, now: float | None = None) -> int:
        """Apply the log's retention limits at wall time `now`; how many segments went."""
        return self.logs[queue_key].enforce_retention(now)

    def stream_delete(self, queue_key: str) -> None:
        log = self.logs.pop(queue_key, None)
        if log is not None:
            log.delete()
        else:
            self._remove_files(queue_key)

    def stream_restore(self, queue_key: str, offset: int, timestamp_ms: int, exchange: str,
                       routing_key: str, properties: bytes, body: bytes,
                       filter_value: str | None = None) -> bool:
        """A record the leader appended, at its offset and timestamp (False: already held)."""
        log = self.logs.get(queue_key) or self.open(queue_key)
        return log.append_at(offset, timestamp_ms, exchange, routing_key, properties, body,
                             filter_value)

    def stream_truncate(self, queue_key: str, first_offset: int) -> int:
        """The leader's retention moved the stream's start to `first_offset`."""
        log = self.logs.get(queue_key) or self.open(queue_key)
        return log.truncate_before(first_offset)

    def _remove_files(self, queue_key: str) -> None:
        pass

    # -- group commit and lifecycle -----------------------------------------------------------
    def dirty_logs(self) -> list[Any]:
        """The logs the next sync round must sync (event-loop thread, when it starts)."""
        return [log for log in list(self.logs.values()) if log.needs_sync]

    @staticmethod
    def sync_logs(logs: list[Any]) -> None:
        """Worker thread: flush and fsync each log (raises the first failure)."""
        for log in logs:
            log.sync()

    def close_log(self, queue_key: str) -> None:
        log = self.logs.pop(queue_key, None)
        if log is not None:
            log.close()

    def close(self) -> None:
        """Sync and close every log (the streams stay)."""
        logs, self.logs = self.logs, {}
        failure: Exception | None = None
        for log in logs.values():
            try:
                log.close()
            except Exception as exc:  # one broken stream must not keep the others open
                failure = failure or exc
        if failure is not None:
            raise failure


class DiskStreamStore(StreamStore):
    """Stream logs in files under `root` (the data directory)."""

    def __init__(self, root: str | Path, *, sync: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(sync=sync, clock=clock)
        self.root = Path(root)

    def _new_log(self, queue_key: str, **limits: Any) -> StreamLog:
        return StreamLog(stream_directory(self.root, queue_key), sync=self.sync,
                         clock=self.clock, **limits)

    def _remove_files(self, queue_key: str) -> None:
        shutil.rmtree(stream_directory(self.root, queue_key), ignore_errors=True)

    def remove_all(self) -> None:
        """Forget every stream (a follower's full resync starts empty)."""
        self.close()
        shutil.rmtree(self.root / "streams", ignore_errors=True)


class MemoryStreamStore(StreamStore):
    """The in-memory twin: logs in RAM; a new store over the same `disks` recovers what an
    earlier one flushed (as a restart would)."""

    def __init__(self, *, disks: dict[str, _Disk] | None = None, sync: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(sync=sync, clock=clock)
        self.disks: dict[str, _Disk] = {} if disks is None else disks

    def _new_log(self, queue_key: str, **limits: Any) -> MemoryStreamLog:
        return MemoryStreamLog(stream_directory("memory", queue_key), clock=self.clock,
                               disks=self.disks, **limits)

    def _remove_files(self, queue_key: str) -> None:
        self.disks.pop(str(stream_directory("memory", queue_key)), None)

    def remove_all(self) -> None:
        self.close()
        self.disks.clear()
