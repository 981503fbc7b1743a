"""The stream log's in-memory twin (issue 14): `StreamLog`'s contract without files.

Same interface and the same observable behaviour as `store.stream_log.StreamLog` (offsets,
chunks and "last", offset specs, filters, retention by whole segments, offset tracking,
group commit bookkeeping), held in RAM. `tests/store/test_stream_log_contract.py` runs the
stream log's behaviour tests against both. Its "disk" is a dict keyed by directory, so a
new instance over the same directory recovers what an earlier one wrote (flushed), as a
restart would; what was only appended (not flushed) is lost by a crash, as on disk.

Segments are emulated to keep retention whole-segment: a segment is closed once it holds
`max_segment_bytes` of encoded records (the on-disk record size, so both logs roll at the
same offsets; the disk log's per-segment index and seal are not counted).
"""

from __future__ import annotations

import bisect
import datetime
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from amqpbroker.durations import parse_interval
from amqpbroker.store.records import StoreError
from amqpbroker.store.stream_records import CHUNK_MAX, StreamRecord, encode_msg

DEFAULT_SEGMENT_BYTES = 500_000_000
FLUSH_AT = 1 << 20


class _Seg:
    __slots__ = ("first", "records", "filters", "chunks", "size", "deleted")

    def __init__(self, first: int) -> None:
        self.first = first
        self.records: list[StreamRecord] = []
        self.filters: list[str | None] = []
        self.chunks: list[bool] = []
        self.size = 0
        self.deleted = False

    @property
    def next(self) -> int:
        return self.first + len(self.records)

    @property
    def last_ts(self) -> int:
        return self.records[-1].timestamp_ms if self.records else 0


class _Disk:
    """What survives an instance: written segments and tracked offsets."""

    def __init__(self) -> None:
        self.segs: list[_Seg] = [_Seg(0)]
        self.tracking: dict[str, int] = {}
        self.last_ts = 0
        self.last_chunk = -1


_DISKS: dict[str, _Disk] = {}


class MemoryStreamLog:
    def __init__(self, directory: str | Path, *, max_segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 max_bytes: int | None = None, max_age_ms: int | None = None, sync: bool = True,
                 clock: Callable[[], float] = time.time,
                 disks: dict[str, _Disk] | None = None) -> None:
        self.directory = Path(directory)
        self._disks = _DISKS if disks is None else disks
        self.max_segment_bytes = max_segment_bytes
        self.max_bytes = max_bytes
        self.max_age_ms = max_age_ms
        self._clock = clock
        self._disk = self._disks.setdefault(str(self.directory), _Disk())
        self._pending: list[tuple[StreamRecord, str | None, bool, int]] = []
        self._pending_bytes = 0
        self._chunk_n = 0
        self._tpending: dict[str, int] = {}
        self._closed = False
        self._synced = self.next_offset
        self._tdirty = False

    # -- state ---------------------------------------------------------------------------
    @property
    def _segs(self) -> list[_Seg]:
        return self._disk.segs

    @property
    def first_offset(self) -> int:
        return self._segs[0].first

    @property
    def next_offset(self) -> int:
        return self._segs[-1].next + len(self._pending)

    @property
    def committed_offset(self) -> int:
        return self._synced

    @property
    def needs_sync(self) -> bool:
        return not self._closed and (self.next_offset != self._synced or bool(self._tpending)
                                     or self._tdirty)

    @property
    def message_count(self) -> int:
        return self.next_offset - self.first_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segs) + self._pending_bytes

    @property
    def segment_count(self) -> int:
        return len(self._segs)

    # -- writing -------------------------------------------------------------------------
    def append(self, exchange: str, routing_key: str, properties: bytes, body: bytes,
               filter_value: str | None = None, timestamp_ms: int | None = None) -> int:
        if self._closed:
            raise StoreError(f"stream {self.directory} is closed")
        disk = self._disk
        ts = int(self._clock() * 1000) if timestamp_ms is None else timestamp_ms
        ts = max(ts, disk.last_ts)  # never backwards
        disk.last_ts = ts
        off = self.next_offset
        size = len(encode_msg(off, ts, 0, exchange.encode("utf-8", "surrogatepass"),
                              routing_key.encode("utf-8", "surrogatepass"),
                              (filter_value or "").encode("utf-8", "surrogatepass"),
                              properties, body))
        chunk = not self._pending or self._chunk_n >= CHUNK_MAX
        if chunk:
            self._chunk_n = 0
        self._chunk_n += 1
        rec = StreamRecord(off, ts, exchange, routing_key, properties, body)
        self._pending.append((rec, filter_value, chunk, size))
        self._pending_bytes += size
        if self._pending_bytes >= FLUSH_AT:
            self.flush()
        return off

    @property
    def last_timestamp_ms(self) -> int:
        return self._disk.last_ts

    def configure(self, *, max_bytes: int | None, max_age_ms: int | None,
                  max_segment_bytes: int) -> None:
        self.max_bytes, self.max_age_ms = max_bytes, max_age_ms
        self.max_segment_bytes = max_segment_bytes

    def append_at(self, offset: int, timestamp_ms: int, exchange: str, routing_key: str,
                  properties: bytes, body: bytes, filter_value: str | None = None) -> bool:
        nxt = self.next_offset
        if offset < nxt:
            return False
        if offset > nxt:
            if self.message_count:
                raise StoreError(f"stream {self.directory}: offset {offset} after {nxt}")
            for seg in self._segs:
                seg.deleted = True
            self._segs[:] = [_Seg(offset)]
            self._synced = offset
        self.append(exchange, routing_key, properties, body, filter_value, timestamp_ms)
        return True

    def truncate_before(self, first_offset: int) -> int:
        segs = self._segs
        doomed = 0
        for seg in segs[:-1]:
            if seg.next > first_offset:
                break
            seg.deleted = True
            doomed += 1
        del segs[:doomed]
        return doomed

    def entries(self, start: Any = "first") -> Iterator[tuple[StreamRecord, str | None]]:
        self.flush()
        off = self._locate(start)[0]
        while True:
            off = max(off, self.first_offset)
            entry = self._entry(off)
            if entry is None:
                return
            yield entry
            off += 1

    def flush(self) -> None:
        """Hand what was appended to the "disk": cursors can read it now."""
        pending, self._pending = self._pending, []
        self._pending_bytes = 0
        for rec, fv, chunk, size in pending:
            active = self._segs[-1]
            if active.records and active.size >= self.max_segment_bytes:
                self._segs.append(_Seg(active.next))
                self.enforce_retention()
                active = self._segs[-1]
            active.records.append(rec)
            active.filters.append(fv)
            active.chunks.append(chunk)
            active.size += size
            if chunk:
                self._disk.last_chunk = rec.offset
        if self._tpending:
            self._disk.tracking.update(self._tpending)
            self._tpending = {}
            self._tdirty = True

    def sync(self) -> int:
        if self._closed:
            return self._synced
        self.flush()
        self._tdirty = False
        self._synced = self.next_offset
        return self._synced

    # -- retention -----------------------------------------------------------------------
    def enforce_retention(self, now: float | None = None) -> int:
        if self.max_bytes is None and self.max_age_ms is None:
            return 0
        now_ms = int((self._clock() if now is None else now) * 1000)
        segs = self._segs
        candidates = segs[:-1]
        if candidates and not segs[-1].records:
            candidates.pop()  # keep at least one segment that holds messages
        total = self.size_bytes
        doomed = 0
        for seg in candidates:
            big = self.max_bytes is not None and total > self.max_bytes
            old = self.max_age_ms is not None and seg.last_ts < now_ms - self.max_age_ms
            if not (big or old):
                break
            seg.deleted = True
            total -= seg.size
            doomed += 1
        del segs[:doomed]
        return doomed

    # -- reading -------------------------------------------------------------------------
    def open_cursor(self, spec: Any = "next", *, filters: Iterable[str] | None = None,
                    match_unfiltered: bool = False) -> "MemoryStreamCursor":
        start, min_ts = self._locate(spec)
        return MemoryStreamCursor(self, start, min_ts, filters, match_unfiltered)

    def _written_next(self) -> int:
        return self._segs[-1].next

    def _locate(self, spec: Any) -> tuple[int, int]:
        if spec is None or spec == "next":
            return self._written_next() + len(self._pending), -1
        if spec == "first":
            return self.first_offset, -1
        if spec == "last":
            chunk = self._disk.last_chunk
            return (chunk if chunk >= self.first_offset else self.next_offset), -1
        if isinstance(spec, int) and not isinstance(spec, bool):
            return min(max(spec, self.first_offset), self.next_offset), -1
        if isinstance(spec, datetime.datetime):
            if spec.tzinfo is None:
                spec = spec.replace(tzinfo=datetime.timezone.utc)
            return self.first_offset, int(spec.timestamp() * 1000)
        if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "timestamp":
            return self.first_offset, int(spec[1])
        if isinstance(spec, str):
            interval = parse_interval(spec)
            if interval is not None:
                return self.first_offset, int(self._clock() * 1000) - interval
        raise ValueError(f"invalid stream offset specification {spec!r}")

    def _entry(self, offset: int) -> tuple[StreamRecord, str | None] | None:
        segs = self._segs
        i = bisect.bisect_right([s.first for s in segs], offset) - 1
        if i < 0:
            return None
        seg = segs[i]
        k = offset - seg.first
        if k >= len(seg.records):
            return None
        return seg.records[k], seg.filters[k]

    # -- offset tracking -----------------------------------------------------------------
    def store_offset(self, name: str, offset: int) -> None:
        if self.stored_offset(name) != offset:
            self._tpending[name] = offset

    def stored_offset(self, name: str) -> int | None:
        if name in self._tpending:
            return self._tpending[name]
        return self._disk.tracking.get(name)

    def tracked_offsets(self) -> dict[str, int]:
        return {**self._disk.tracking, **self._tpending}

    # -- the rest ------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self.sync()
            self._closed = True

    def _close_fds(self) -> None:
        """What a kill -9 does to the disk log (see its tests): unwritten data is lost."""
        self._pending = []
        self._pending_bytes = 0
        self._tpending = {}

    def delete(self) -> None:
        self._closed = True
        for seg in self._segs:
            seg.deleted = True
        self._disks.pop(str(self.directory), None)

    def stats(self) -> dict[str, Any]:
        return {"first_offset": self.first_offset, "next_offset": self.next_offset,
                "committed_offset": self._synced, "segments": len(self._segs),
                "memory_bytes": self.size_bytes, "tracked_consumers": len(self.tracked_offsets())}


class MemoryStreamCursor:
    """An independent reader over a `MemoryStreamLog`."""

    def __init__(self, log_: MemoryStreamLog, start: int, min_ts: int,
                 filters: Iterable[str] | None, match_unfiltered: bool) -> None:
        self._log = log_
        self._next = start
        self._min_ts = min_ts
        self._filters = None if filters is None else frozenset(filters)
        self._unfiltered = match_unfiltered

    @property
    def offset(self) -> int:
        return self._next

    def __iter__(self) -> Iterator[StreamRecord]:
        while (rec := self.next()) is not None:
            yield rec

    def read(self, limit: int) -> list[StreamRecord]:
        out = []
        while len(out) < limit and (rec := self.next()) is not None:
            out.append(rec)
        return out

    def next(self) -> StreamRecord | None:
        log_ = self._log
        while True:
            if log_._closed:
                return None
            if self._next < log_.first_offset:  # behind the retention point
                self._next = log_.first_offset
            entry = log_._entry(self._next)
            if entry is None:
                return None
            rec, fv = entry
            self._next = rec.offset + 1
            if rec.timestamp_ms < self._min_ts:
                continue
            if self._filters is not None:
                if fv is not None:
                    if fv not in self._filters:
                        continue
                elif not self._unfiltered:
                    continue
            return rec

    def close(self) -> None:
        pass
