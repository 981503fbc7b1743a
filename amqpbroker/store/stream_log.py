"""The durable log behind a stream queue (issue 11): offsets, group commit, cursors, retention.

Pure synchronous code, no event loop; file format and recovery in `store.stream_records`.
One `StreamLog` per stream queue, in a directory of its own (`model.stream` names it).

Writing (event-loop thread)::

    log = StreamLog(directory, max_segment_bytes=500_000_000, max_bytes=None,
                    max_age_ms=None, sync=True, clock=time.time)
    offset = log.append(exchange, routing_key, properties, body, filter_value=None)
    log.flush()    # write the buffer to the OS: cursors only see written records
    log.sync()     # flush + fsync -> next offset now durable (send confirms after it)

`append` only buffers (a buffer over 1 MiB is written at once, so RAM stays bounded);
`sync()` may run in a worker thread while `append` goes on (it takes the buffer under a
lock, fsyncs outside it), as `MessageStore.sync` may. With `sync=False` nothing is ever
fsynced: `sync()` only writes (a kill -9 keeps what was written, an OS crash may not).
`committed_offset` is the next offset after the last durable one.

Replication (a follower's copy, cluster/replica.py): `append_at(offset, timestamp_ms, ...)`
writes the leader's record at its offset and timestamp (an empty log starts at the
leader's first offset), `truncate_before(first_offset)` applies the leader's retention,
`entries(start)` yields (record, filter value) for a snapshot.

Reading: `log.open_cursor(spec, filters=None, match_unfiltered=False)`; `spec` is what
RabbitMQ's `x-stream-offset` means: "first", "last" (the first offset of the last chunk,
i.e. of what the last flush wrote, at most CHUNK_MAX records; "last" in RabbitMQ is the
last chunk too), "next" or None (only what is appended from now on), an int offset
(clamped into the stream), a `datetime` or ("timestamp", ms) (the first message published
at or after it), or an interval string such as "1h" / "7D" (units Y M D h m s, RabbitMQ's:
M = 30 days, Y = 365 days) meaning now minus it. `cursor.next()` returns a `StreamRecord`
(offset, timestamp_ms, exchange, routing_key, properties, body) or None when it has caught
up (call again after more appends). Cursors read from the files with a bounded buffer
(READ_BUF, or one record if bigger), never from RAM copies, so memory stays flat however
long the stream; they are independent and remove nothing. A cursor whose segment was
dropped by retention continues at the first retained offset. Filters are exact: with
`filters` (a list of strings) a cursor returns messages whose filter value is in it, plus
those without a filter value when `match_unfiltered`.

Retention (whole segments, never the active one, and never the last message-holding one):
`max_bytes` and `max_age_ms` (a segment goes when its newest record is older), evaluated
when a segment rolls and on `enforce_retention(now)` (wall seconds; the caller's timer).
Offsets are never reused. Server-side offset tracking (LavinMQ's extension):
`store_offset(name, offset)` / `stored_offset(name)`, written with the next flush, made
durable by the next `sync()`, kept in `offsets.trk` (compacted when mostly stale).
"""

from __future__ import annotations

import bisect
import datetime
import os
import re
import shutil
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import structlog

from amqpbroker.store.records import StoreError
from amqpbroker.store.stream_records import (
    CHUNK_MAX, F_CHUNK, F_FILTER, K_TRACK, READ_BUF, Segment, StreamCursor, StreamRecord,
    encode_msg, encode_track, list_segments, read_sealed, scan_segment, segment_name, valid_at,
)

__all__ = ["StreamLog", "StreamCursor", "StreamRecord", "parse_interval", "StoreError",
           "READ_BUF"]

from amqpbroker.durations import parse_interval  # noqa: E402  (re-exported)

log = structlog.get_logger()

FLUSH_AT = 1 << 20
DEFAULT_SEGMENT_BYTES = 500_000_000  # RabbitMQ's default x-stream-max-segment-size-bytes
TRACKING_FILE = "offsets.trk"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_U64 = struct.Struct("<Q")


def _enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _pwrite_all(fd: int, data: bytes | bytearray, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        pos += n
        view = view[n:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StreamLog:
    def __init__(self, directory: str | Path, *, max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 max_bytes: int | None = None, max_age_ms: int | None = None, sync: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.max_segment_bytes = max_segment_bytes
        self.max_bytes = max_bytes
        self.max_age_ms = max_age_ms
        self._fsync = sync
        self._clock = clock
        self._lock = threading.Lock()  # the buffers and the active segment's size
        self._io_lock = threading.Lock()  # one sync / roll / close at a time
        self._buf = bytearray()
        self._segs: list[Segment] = []
        self._firsts: list[int] = []
        self._rfds: dict[int, int] = {}
        self._wfd = self._tfd = -1
        self._closed = False
        self._failed: OSError | None = None
        self._dir_dirty = False
        self._last_ts = 0
        self._chunk_n = 0
        self._last_chunk = -1
        self._tracking: dict[str, int] = {}
        self._tbuf = bytearray()
        self._tsize = 0
        self._tdirty = False
        try:
            self._recover()
        except OSError as e:
            self._close_fds()
            raise StoreError(f"cannot open stream {self.directory}: {e}") from e
        self._synced = self.next_offset

    # -- recovery ------------------------------------------------------------------------
    def _recover(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        firsts = list_segments(self.directory)
        for i, first in enumerate(firsts):
            path = self._path(first)
            tail = i == len(firsts) - 1
            fd = os.open(path, os.O_RDWR | _CLOEXEC)
            try:
                size = os.fstat(fd).st_size
                seg = None if tail else read_sealed(fd, first, size)
                if seg is None:
                    seg = scan_segment(fd, path, first, size, tail)
            finally:
                os.close(fd)
            if self._segs and seg.first < self._segs[-1].next:
                log.error("stream.overlapping_segments", file=str(path))
            self._segs.append(seg)
            self._firsts.append(first)
            if seg.count:
                self._last_ts = max(self._last_ts, seg.last_ts)
            if seg.last_chunk >= 0:
                self._last_chunk = seg.last_chunk
        if not self._segs or self._segs[-1].sealed:
            self._new_segment(self._segs[-1].next if self._segs else 0)
        else:
            self._wfd = os.open(self._path(self._segs[-1].first), os.O_RDWR | _CLOEXEC)
        if self._fsync:
            os.fsync(self._wfd)
            _fsync_dir(self.directory)
            self._dir_dirty = False
        self._open_tracking()

    def _path(self, first: int) -> Path:
        return self.directory / segment_name(first)

    def _new_segment(self, first: int) -> None:
        self._wfd = os.open(self._path(first), os.O_RDWR | os.O_CREAT | _CLOEXEC, 0o644)
        os.ftruncate(self._wfd, 0)
        self._segs.append(Segment(first))
        self._firsts.append(first)
        self._dir_dirty = True

    # -- state ---------------------------------------------------------------------------
    @property
    def first_offset(self) -> int:
        return self._segs[0].first

    @property
    def next_offset(self) -> int:
        return self._segs[-1].next

    @property
    def committed_offset(self) -> int:
        """Every offset below this one survived an fsync (or a write, with sync=False)."""
        return self._synced

    @property
    def needs_sync(self) -> bool:
        """Something appended, tracked or renamed is not durable yet (a group commit
        should `sync()` this log)."""
        return (not self._closed and (self._segs[-1].next != self._synced or bool(self._tbuf)
                                      or self._tdirty or self._dir_dirty))

    @property
    def message_count(self) -> int:
        return self.next_offset - self.first_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segs) + len(self._buf)

    @property
    def segment_count(self) -> int:
        return len(self._segs)

    # -- writing -------------------------------------------------------------------------
    def append(self, exchange: str, routing_key: str, properties: bytes, body: bytes,
               filter_value: str | None = None, timestamp_ms: int | None = None) -> int:
        """Buffer one message; returns its offset. Durable after the next `sync()`.
        `timestamp_ms` (default: the clock's now) is a follower's copy of the leader's."""
        if self._closed or self._failed is not None:
            raise StoreError(f"stream {self.directory} is {'closed' if self._closed else 'failed'}")
        fv = b"" if filter_value is None else _enc(filter_value)
        ts = int(self._clock() * 1000) if timestamp_ms is None else timestamp_ms
        active = self._segs[-1]
        if active.count and active.size + len(self._buf) >= self.max_segment_bytes:
            self._roll()
        with self._lock:
            seg = self._segs[-1]
            off = seg.next
            if ts < self._last_ts:
                ts = self._last_ts  # timestamps never go backwards
            self._last_ts = ts
            buf = self._buf
            flags = F_FILTER if filter_value is not None else 0
            if not buf or self._chunk_n >= CHUNK_MAX:
                flags |= F_CHUNK
                self._chunk_n = 0
                self._last_chunk = off
            self._chunk_n += 1
            pos = seg.size + len(buf)
            buf += encode_msg(off, ts, flags, _enc(exchange), _enc(routing_key), fv,
                              properties, body)
            seg.note(off, pos, ts, flags)
            if len(buf) >= FLUSH_AT:
                self._write_locked()
        return off

    @property
    def last_timestamp_ms(self) -> int:
        """The timestamp of the last appended record (what replication ships with it)."""
        return self._last_ts

    def configure(self, *, max_bytes: int | None, max_age_ms: int | None,
                  max_segment_bytes: int) -> None:
        """New retention limits and segment size (a policy changed); nothing is dropped
        until the next `enforce_retention`."""
        self.max_bytes, self.max_age_ms = max_bytes, max_age_ms
        self.max_segment_bytes = max_segment_bytes

    def append_at(self, offset: int, timestamp_ms: int, exchange: str, routing_key: str,
                  properties: bytes, body: bytes, filter_value: str | None = None) -> bool:
        """A follower's append of a record the leader wrote (same offset, same timestamp).
        A record already held is ignored (False); an empty log starts at `offset` (the
        leader's first retained one); any other gap is a StoreError."""
        nxt = self.next_offset
        if offset < nxt:
            return False
        if offset > nxt:
            if self.message_count or self._buf:
                raise StoreError(f"stream {self.directory}: offset {offset} after {nxt}")
            self._restart_at(offset)
        self.append(exchange, routing_key, properties, body, filter_value, timestamp_ms)
        return True

    def _restart_at(self, offset: int) -> None:
        """An empty log begins at `offset`: its empty segments are replaced by one named so."""
        with self._io_lock, self._lock:
            try:
                os.close(self._wfd)
                for seg in self._segs:
                    seg.deleted = True
                    fd = self._rfds.pop(seg.first, None)
                    if fd is not None:
                        os.close(fd)
                    self._path(seg.first).unlink(missing_ok=True)
                self._segs.clear()
                self._firsts.clear()
                self._new_segment(offset)
            except OSError as e:
                self._failed = e
                raise StoreError(f"cannot restart stream {self.directory}: {e}") from e
        self._synced = offset

    def truncate_before(self, first_offset: int) -> int:
        """Drop the whole segments that end before `first_offset` (a follower applying the
        leader's retention); never the active one. How many went."""
        doomed = [s for s in self._segs[:-1] if s.next <= first_offset]
        self._drop(doomed)
        return len(doomed)

    def entries(self, start: Any = "first") -> Iterator[tuple[StreamRecord, str | None]]:
        """Every written record from `start` with its filter value (a replication snapshot)."""
        self.flush()
        cursor = self.open_cursor(start)
        cursor.keep_filter_value = True
        while (rec := cursor.next()) is not None:
            yield rec, cursor.filter_value

    def _write_locked(self) -> None:
        try:
            if self._buf:
                seg = self._segs[-1]
                _pwrite_all(self._wfd, self._buf, seg.size)
                seg.size += len(self._buf)
                self._buf = bytearray()
            if self._tbuf:
                _pwrite_all(self._tfd, self._tbuf, self._tsize)
                self._tsize += len(self._tbuf)
                self._tbuf = bytearray()
                self._tdirty = True
        except OSError as e:
            raise StoreError(f"cannot write to stream {self.directory}: {e}") from e

    def flush(self) -> None:
        """Write what was appended to the OS (no fsync): cursors can read it now."""
        if self._buf or self._tbuf:
            with self._lock:
                self._write_locked()

    def sync(self) -> int:
        """Flush and fsync (group commit); returns the new `committed_offset`."""
        with self._io_lock:
            return self._sync_locked()

    def _sync_locked(self) -> int:
        if self._closed:  # closed or deleted: nothing left to make durable
            return self._synced
        if self._failed is not None:
            raise StoreError(f"stream {self.directory} failed: {self._failed}")
        with self._lock:
            self._write_locked()
            target = self._segs[-1].next
            fd, tdirty, ddirty = self._wfd, self._tdirty, self._dir_dirty
            self._tdirty = self._dir_dirty = False
        if self._fsync:
            try:
                os.fsync(fd)
                if tdirty:
                    os.fsync(self._tfd)
                if ddirty:
                    _fsync_dir(self.directory)
            except OSError as e:
                self._failed = e
                raise StoreError(f"cannot fsync stream {self.directory}: {e}") from e
        self._synced = target
        if self._tsize > 64 << 10 and self._tsize > 4 * self._tracking_bytes():
            self._compact_tracking()
        return target

    def _roll(self) -> None:
        """Close the active segment (INDEX + SEAL, fsynced) and start the next one."""
        with self._io_lock, self._lock:
            seg = self._segs[-1]
            try:
                self._write_locked()
                tail = seg.index_record()
                tail += seg.seal_record(seg.size)
                _pwrite_all(self._wfd, tail, seg.size)
                if self._fsync:
                    os.fsync(self._wfd)
                seg.size += len(tail)
                os.close(self._wfd)
                seg.sealed = True
                self._new_segment(seg.next)
            except OSError as e:
                self._failed = e
                raise StoreError(f"cannot roll segment of stream {self.directory}: {e}") from e
        self.enforce_retention()

    # -- retention -----------------------------------------------------------------------
    def enforce_retention(self, now: float | None = None) -> int:
        """Drop whole old segments over `max_bytes` / `max_age_ms`; how many went."""
        if self.max_bytes is None and self.max_age_ms is None:
            return 0
        now_ms = int((self._clock() if now is None else now) * 1000)
        candidates = self._segs[:-1]
        if candidates and not self._segs[-1].count:
            candidates.pop()  # keep at least one segment that holds messages (RabbitMQ)
        total = self.size_bytes
        doomed = []
        for seg in candidates:
            big = self.max_bytes is not None and total > self.max_bytes
            old = self.max_age_ms is not None and seg.last_ts < now_ms - self.max_age_ms
            if not (big or old):
                break
            doomed.append(seg)
            total -= seg.size
        self._drop(doomed)
        return len(doomed)

    def _drop(self, doomed: list[Segment]) -> None:
        for seg in doomed:
            seg.deleted = True
            fd = self._rfds.pop(seg.first, None)
            if fd is not None:
                os.close(fd)
            try:
                self._path(seg.first).unlink()
            except OSError as e:
                log.warning("stream.unlink_failed", segment=seg.first, error=str(e))
        if doomed:
            del self._segs[:len(doomed)]
            del self._firsts[:len(doomed)]
            self._dir_dirty = True
            log.info("stream.retention", directory=str(self.directory), segments=len(doomed),
                     first_offset=self.first_offset)

    # -- reading -------------------------------------------------------------------------
    def open_cursor(self, spec: Any = "next", *, filters: Iterable[str] | None = None,
                    match_unfiltered: bool = False) -> StreamCursor:
        """A reader starting where `spec` (an x-stream-offset value) says; ValueError if
        the spec is not one."""
        seg, pos, min_off, min_ts = self._locate(spec)
        return StreamCursor(self, seg, pos, min_off, min_ts, filters, match_unfiltered)

    def _locate(self, spec: Any) -> tuple[Segment, int, int, int]:
        if spec is None or spec == "next":
            return self._at_offset(self.next_offset)
        if spec == "first":
            return self._at_offset(self.first_offset)
        if spec == "last":
            chunk = self._last_chunk
            return self._at_offset(chunk if chunk >= self.first_offset else self.next_offset)
        if isinstance(spec, int) and not isinstance(spec, bool):
            return self._at_offset(min(max(spec, self.first_offset), self.next_offset))
        if isinstance(spec, datetime.datetime):
            if spec.tzinfo is None:
                spec = spec.replace(tzinfo=datetime.timezone.utc)
            return self._at_time(int(spec.timestamp() * 1000))
        if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "timestamp":
            return self._at_time(int(spec[1]))
        if isinstance(spec, str):
            interval = parse_interval(spec)
            if interval is not None:
                return self._at_time(int(self._clock() * 1000) - interval)
        raise ValueError(f"invalid stream offset specification {spec!r}")

    def _at_offset(self, off: int) -> tuple[Segment, int, int, int]:
        seg = self._segs[max(bisect.bisect_right(self._firsts, off) - 1, 0)]
        if seg is self._segs[-1] and off >= seg.next:
            with self._lock:
                return seg, seg.size + len(self._buf), off, -1
        i = bisect.bisect_right(seg.idx_off, off) - 1
        return seg, (seg.idx_pos[i] if i >= 0 else 0), off, -1

    def _at_time(self, ms: int) -> tuple[Segment, int, int, int]:
        for seg in self._segs:
            if seg.count and seg.last_ts >= ms:
                i = max(bisect.bisect_left(seg.idx_ts, ms) - 1, 0)
                return seg, seg.idx_pos[i], seg.idx_off[i], ms
        return self._at_offset(self.next_offset)

    def _rfd(self, seg: Segment) -> int:
        fd = self._rfds.get(seg.first)
        if fd is None:
            fd = self._rfds[seg.first] = os.open(self._path(seg.first), os.O_RDONLY | _CLOEXEC)
        return fd

    def _after(self, seg: Segment) -> Segment | None:
        i = bisect.bisect_right(self._firsts, seg.first)
        return self._segs[i] if i < len(self._segs) else None

    # -- offset tracking -----------------------------------------------------------------
    def _open_tracking(self) -> None:
        path = self.directory / TRACKING_FILE
        self._tfd = os.open(path, os.O_RDWR | os.O_CREAT | _CLOEXEC, 0o644)
        data = os.pread(self._tfd, os.fstat(self._tfd).st_size, 0)
        pos = 0
        while pos < len(data):
            end = valid_at(data, pos)
            if end < 0 or data[pos + 1] != K_TRACK:
                log.warning("stream.tracking_torn_tail", file=str(path), offset=pos)
                os.ftruncate(self._tfd, pos)
                break
            name = data[pos + 14:end - 4].decode("utf-8", "surrogatepass")
            self._tracking[name] = _U64.unpack_from(data, pos + 6)[0]
            pos = end
        self._tsize = pos

    def store_offset(self, name: str, offset: int) -> None:
        """Remember `offset` for consumer `name` (written by the next flush/sync)."""
        with self._lock:
            if self._tracking.get(name) != offset:
                self._tracking[name] = offset
                self._tbuf += encode_track(name, offset)

    def stored_offset(self, name: str) -> int | None:
        return self._tracking.get(name)

    def tracked_offsets(self) -> dict[str, int]:
        return dict(self._tracking)

    def _tracking_bytes(self) -> int:
        return sum(len(encode_track(n, o)) for n, o in self._tracking.items())

    def _compact_tracking(self) -> None:
        path = self.directory / TRACKING_FILE
        tmp = path.with_suffix(".tmp")
        with self._lock:
            data = b"".join(encode_track(n, o) for n, o in self._tracking.items())
            fd = -1
            try:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o644)
                _pwrite_all(fd, data, 0)
                if self._fsync:
                    os.fsync(fd)
                os.replace(tmp, path)
                if self._fsync:
                    _fsync_dir(self.directory)
            except OSError as e:  # the old file stays in use
                log.warning("stream.tracking_compaction_failed", error=str(e))
                if fd >= 0:
                    os.close(fd)
                return
            os.close(self._tfd)
            self._tfd, self._tsize = fd, len(data)

    # -- the rest ------------------------------------------------------------------------
    def close(self) -> None:
        """Flush, sync (if syncing) and release the files."""
        with self._io_lock:
            if self._closed:
                return
            try:
                if self._failed is None:
                    self._sync_locked()
            finally:
                self._closed = True
                self._close_fds()

    def _close_fds(self) -> None:
        for fd in [self._wfd, self._tfd, *self._rfds.values()]:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wfd = self._tfd = -1
        self._rfds.clear()

    def delete(self) -> None:
        """queue.delete: close and remove every file of the stream."""
        with self._io_lock:
            self._closed = True
            self._close_fds()
            for seg in self._segs:
                seg.deleted = True
        shutil.rmtree(self.directory, ignore_errors=True)

    def stats(self) -> dict[str, Any]:
        return {"first_offset": self.first_offset, "next_offset": self.next_offset,
                "committed_offset": self._synced, "segments": len(self._segs),
                "disk_bytes": sum(s.size for s in self._segs), "buffered_bytes": len(self._buf),
                "tracked_consumers": len(self._tracking)}
