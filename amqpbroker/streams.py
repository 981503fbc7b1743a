"""Where stream queues live: their store, their share of the group commit, retention timers.

`BrokerCore` owns one `StreamRegistry`; every vhost's stream queues are opened through it
(`model.queue_types.new_queue` calls `open`). It decides:

* the store: a `store.stream_store.DiskStreamStore` under the data directory
  (`<data dir>/streams/<hash of vhost and name>/`), fsynced when the broker syncs
  (`--no-sync`: written, never fsynced). In-memory mode (`--in-memory`, embedding without
  a data dir) keeps streams in a temporary directory removed when the broker stops. Without a message store at all (offline tools:
  `check`, definitions export/import), streams are "detached" (declared, validated, no log).
* where a stream's writes go: the core's change stream (`changes`, broker/changes.py),
  which applies them to this store and lets replication ship them; the model only reads
  its log.
* the group commit: `dirty_logs()` lists the logs a sync round must fsync; the server's
  one worker-thread job (`BrokerCore.sync_job`) syncs the message store, then them, so
  confirms of stream messages go out after their log's fsync, in the same round as those
  of the message store. An ack that moves a tracked offset (LavinMQ's server-side offset
  tracking) asks for a sync round too (`on_dirty`).
* retention: `x-max-length-bytes` / `x-max-age` are enforced when a segment rolls (the log
  does it) and every `retention_interval` seconds on the core's scheduler.
* deliveries to stream consumers happen once per event-loop iteration (the queue's
  `scheduler`), not once per published message.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import structlog

from amqpbroker.model.queue import queue_key
from amqpbroker.model.stream import StreamQueue, parse_stream_arguments
from amqpbroker.store.stream_store import DiskStreamStore, StreamStore

if TYPE_CHECKING:
    from amqpbroker.clock import Scheduler

log = structlog.get_logger("amqpbroker")

RETENTION_INTERVAL = 1.0  # seconds between two retention checks of every stream


def open_in(store: StreamStore, vhost: str, name: str, arguments: dict[str, Any] | None,
            changes: Any = None) -> StreamQueue:
    """Create or recover a stream's log in `store` and the queue over it (arguments already
    validated); its writes go to `changes` (the store itself if None)."""
    config = parse_stream_arguments(arguments)
    key = queue_key(vhost, name)
    stream_log = store.open(key, max_segment_bytes=config.max_segment_size_bytes,
                            max_bytes=config.max_length_bytes, max_age_ms=config.max_age_ms)
    store.stream_retain(key)  # recovery: what expired while the broker was down
    return StreamQueue(vhost, name, stream_log, arguments=arguments,
                       stream_changes=store if changes is None else changes)


def open_stream(root: str | Path, vhost: str, name: str,
                arguments: dict[str, Any] | None = None, *, sync: bool = True,
                clock: Callable[[], float] = time.time) -> StreamQueue:
    """A stream queue over its own disk store under `root` (tests, offline tools)."""
    return open_in(DiskStreamStore(root, sync=sync, clock=clock), vhost, name, arguments)


class ScratchStreamStore(DiskStreamStore):
    """Stream logs of an in-memory broker: in a temporary directory made when the first
    stream is opened (most in-memory brokers, the embedded ones in tests, never open one,
    and a process killed before `close` would leave it behind) and removed at close."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(tempfile.gettempdir(), sync=False, clock=clock)
        self.tmp: str | None = None

    def _new_log(self, queue_key: str, **limits: Any) -> Any:
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="amqpbroker-streams-")
            self.root = Path(self.tmp)
        return super()._new_log(queue_key, **limits)

    def _remove_files(self, queue_key: str) -> None:
        if self.tmp is not None:
            super()._remove_files(queue_key)

    def remove_all(self) -> None:
        self.close()

    def close(self) -> None:
        super().close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


class StreamRegistry:
    def __init__(self, data_dir: str | None, *, sync: bool, scheduler: "Scheduler",
                 on_dirty: Callable[[], None] | None = None) -> None:
        self.sync = sync and data_dir is not None
        # In-memory mode keeps streams in a temporary directory: a long stream must not
        # grow the broker's RAM.
        self.store: StreamStore = (
            DiskStreamStore(data_dir, sync=self.sync, clock=scheduler.wall)
            if data_dir is not None else ScratchStreamStore(clock=scheduler.wall))
        self.changes: Any = None  # the core's ChangeStream (set by the core)
        self.scheduler = scheduler
        self.on_dirty = on_dirty
        self.queues: dict[str, StreamQueue] = {}
        self.retention_interval = RETENTION_INTERVAL
        self._timer: Any = None

    def open(self, vhost: str, name: str, arguments: dict[str, Any]) -> StreamQueue:
        """Create or recover a stream queue's log (arguments already validated)."""
        q = open_in(self.store, vhost, name, arguments, self.changes)
        q.scheduler = self.scheduler
        q.on_tracking = self.on_dirty
        self.queues[q.key] = q
        if q.has_retention:
            self._arm()
        log.debug("stream.opened", vhost=vhost, queue=name, **q.log.stats())
        return q

    def _live(self) -> list[StreamQueue]:
        dead = [key for key, q in self.queues.items() if q.deleted]
        for key in dead:
            del self.queues[key]
        return list(self.queues.values())

    # -- group commit ---------------------------------------------------------------------
    def dirty_logs(self) -> list[Any]:
        """The logs the next sync round must sync (event-loop thread, when it starts)."""
        return self.store.dirty_logs()

    sync_logs = staticmethod(StreamStore.sync_logs)

    # -- retention --------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._timer is None:
            scheduler = self.scheduler
            self._timer = scheduler.call_at(scheduler.now() + self.retention_interval,
                                            self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        limited = self.enforce_retention()
        if limited:
            self._arm()

    def enforce_retention(self) -> int:
        """Apply every stream's retention now; returns how many streams have limits."""
        limited = 0
        now = self.scheduler.wall()
        for q in self._live():
            if not q.has_retention:
                continue
            limited += 1
            try:
                q.enforce_retention(now)
            except OSError as exc:
                log.warning("stream.retention_failed", vhost=q.vhost, queue=q.name,
                            error=str(exc))
        return limited

    # -- shutdown ---------------------------------------------------------------------------
    def close(self) -> None:
        """Sync and close every log."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for q in self._live():
            try:
                q.close()
            except Exception as exc:  # one broken stream must not block the others
                log.error("stream.close_failed", vhost=q.vhost, queue=q.name, error=str(exc))
        self.queues.clear()
        try:
            self.store.close()
        except Exception as exc:
            log.error("stream.close_failed", error=str(exc))
