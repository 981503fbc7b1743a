"""Where stream queues live: their logs, their share of the group commit, retention timers.

`BrokerCore` owns one `StreamRegistry`; every vhost's stream queues are opened through it
(`model.queue_types.new_queue` calls `open`). It decides:

* the files: `<data dir>/streams/<hash of vhost and name>/` (see `model.stream`), fsynced
  when the broker syncs (`--no-sync`: written, never fsynced). In-memory mode
  (`--in-memory`, embedding without a data dir) keeps streams in a temporary directory
  that is removed when the broker stops: streams work, for the life of the process.
  Without a message store at all (offline tools: `check`, definitions export/import),
  streams are "detached" (declared, validated, no files).
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

from amqpbroker.model.stream import StreamQueue, parse_stream_arguments, stream_directory
from amqpbroker.store.stream_log import StreamLog

if TYPE_CHECKING:
    from amqpbroker.clock import Scheduler

log = structlog.get_logger("amqpbroker")

RETENTION_INTERVAL = 1.0  # seconds between two retention checks of every stream


def open_stream(root: str | Path, vhost: str, name: str,
                arguments: dict[str, Any] | None = None, *, sync: bool = True,
                clock: Callable[[], float] = time.time) -> StreamQueue:
    """Create or recover a stream's log under `root` and the queue over it (arguments
    already validated). The model never opens files: this is where its log comes from."""
    config = parse_stream_arguments(arguments)
    stream_log = StreamLog(stream_directory(root, vhost, name),
                           max_segment_bytes=config.max_segment_size_bytes,
                           max_bytes=config.max_length_bytes, max_age_ms=config.max_age_ms,
                           sync=sync, clock=clock)
    stream_log.enforce_retention()
    return StreamQueue(vhost, name, stream_log, arguments=arguments)


class StreamRegistry:
    def __init__(self, data_dir: str | None, *, sync: bool, scheduler: "Scheduler",
                 on_dirty: Callable[[], None] | None = None) -> None:
        self._data_dir = data_dir
        self._tmp: str | None = None
        self.sync = sync and data_dir is not None
        self.scheduler = scheduler
        self.on_dirty = on_dirty
        self.queues: dict[str, StreamQueue] = {}
        self.retention_interval = RETENTION_INTERVAL
        self._timer: Any = None

    @property
    def root(self) -> str:
        if self._data_dir is not None:
            return self._data_dir
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="amqpbroker-streams-")
        return self._tmp

    def open(self, vhost: str, name: str, arguments: dict[str, Any]) -> StreamQueue:
        """Create or recover a stream queue's log (arguments already validated)."""
        q = open_stream(self.root, vhost, name, arguments, sync=self.sync,
                        clock=self.scheduler.wall)
        q.scheduler = self.scheduler
        q.on_tracking = self.on_dirty
        self.queues[q.key] = q
        if q.log.max_bytes is not None or q.log.max_age_ms is not None:  # type: ignore[union-attr]
            self._arm()
        log.debug("stream.opened", vhost=vhost, queue=name, **q.log.stats())  # type: ignore[union-attr]
        return q

    def _live(self) -> list[StreamQueue]:
        dead = [key for key, q in self.queues.items() if q.deleted]
        for key in dead:
            del self.queues[key]
        return list(self.queues.values())

    # -- group commit ---------------------------------------------------------------------
    def dirty_logs(self) -> list["StreamLog"]:
        """The logs the next sync round must sync (event-loop thread, when it starts)."""
        return [q.log for q in self._live() if q.log is not None and q.log.needs_sync]

    @staticmethod
    def sync_logs(logs: list["StreamLog"]) -> None:
        """Worker thread: flush and fsync each log (raises the first failure)."""
        for stream_log in logs:
            stream_log.sync()

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
            stream_log = q.log
            if stream_log is None or (stream_log.max_bytes is None
                                      and stream_log.max_age_ms is None):
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
        """Sync and close every log; an in-memory broker's temporary directory goes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for q in self._live():
            try:
                q.close()
            except Exception as exc:  # one broken stream must not block the others
                log.error("stream.close_failed", vhost=q.vhost, queue=q.name, error=str(exc))
        self.queues.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
