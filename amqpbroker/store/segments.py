"""Garbage collection and compaction of the disk message log's segments.

`SegmentMaintenance` is mixed into `DiskMessageStore` (store.disk) and runs inside its
`sync()`, holding its sync lock: after the write and fsync, segments without a live record
are deleted (`_collect`); before the write, a bounded amount of compaction is done
(`_compact_step`): the live records of the oldest segment under 25 % live bytes are copied
to the active segment, and that segment then has no live record left and is deleted by the
`_collect` of the same sync, once the copies are durable.

The liveness rules are those of `store.disk`: content while referenced, an enqueue or mark
while its reference exists, a REMOVE/QDEL tombstone while a segment holding an enqueue it
cancels exists. A segment that received copied enqueues is neither deleted nor compacted
while the segment they came from exists (`_reloc`), so that a tombstone, which follows the
newest copy of its enqueue, is never dropped while an older copy is still on disk.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from zlib import crc32

import structlog

from amqpbroker.store.records import (
    CRC,
    K_ENQ,
    K_MARK,
    K_MSG,
    K_QDEL,
    K_REMOVE,
    M32,
    M64,
    MAGIC,
    MSG_HEAD,
    OVERHEAD,
    REF_HEAD,
    REMOVE_REC,
    REMOVE_SIZE,
    StoreError,
    dec,
    record_end,
    resync,
    segment_path,
)

log = structlog.get_logger()

BIG = 1 << 64  # message metas below this are the short form (see store.disk)
COMPACT_RATIO = 0.25
COMPACT_STEP = 1 << 20  # minimum bytes of victim segments processed per sync()


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def oserror(what: str, e: OSError) -> StoreError:
    return StoreError(f"{what}: [{e.errno}] {e.strerror or e}")


class SegmentMaintenance:
    """Deletion and compaction of segments; the state is DiskMessageStore's."""

    _dir: Path
    _fsync: bool
    _lock: threading.Lock
    _failed: OSError | None
    _segments: set[int]
    _fds: dict[int, int]
    _written: dict[int, int]
    _active: int
    _buf: bytearray
    _pending: list[tuple[int, int, bytearray]]
    _inflight: list[tuple[int, int, bytearray]]
    _live_n: dict[int, int]
    _live_b: dict[int, int]
    _pairs: dict[int, dict[int, int]]
    _qdels: dict[tuple[int, int], tuple[int, set[int]]]
    _reloc: dict[int, set[int]]
    _msgs: dict[int, int]
    _queues: dict[str, dict[int, int]]
    _victim: list[Any] | None
    _force: set[int]
    _uncompactable: set[int]
    _undeletable: set[int]
    _n_compactions: int
    _n_deleted: int
    _n_relocated: int

    def _reserve(self) -> tuple[int, int]:
        raise NotImplementedError

    def _fd(self, seg: int) -> int:
        raise NotImplementedError

    # -- deletion ------------------------------------------------------------------------

    def _limit(self) -> int:
        """Segments below this one are completely written and no longer appended to."""
        if self._inflight:
            return self._inflight[0][0]
        if self._pending:
            return self._pending[0][0]
        return self._active

    def _blocked(self, seg: int) -> bool:
        srcs = self._reloc.get(seg)
        if srcs is None:
            return False
        if any(s in self._segments for s in srcs):
            return True
        del self._reloc[seg]
        return False

    def _collect(self) -> None:
        """Delete segments without live records, then drop the tombstones that only
        existed for them (after the deletion is durable), repeatedly."""
        while True:
            with self._lock:
                limit = self._limit()
                dead = [
                    s for s in self._segments
                    if s < limit and self._live_n[s] == 0 and s not in self._undeletable
                    and not self._blocked(s)
                ]
            if not dead:
                return
            gone = []
            for s in dead:
                try:
                    segment_path(self._dir, s).unlink(missing_ok=True)
                    gone.append(s)
                except OSError as e:
                    log.warning("store.unlink_failed", segment=s, error=str(e))
                    self._undeletable.add(s)
            if gone and self._fsync:
                try:
                    fsync_dir(self._dir)
                except OSError as e:
                    self._failed = e
                    raise oserror(f"cannot fsync {self._dir}", e) from e
            with self._lock:
                for s in gone:
                    self._forget(s)

    def _forget(self, s: int) -> None:
        fd = self._fds.pop(s, None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        self._segments.discard(s)
        for d in (self._live_n, self._live_b, self._written, self._reloc):
            d.pop(s, None)
        self._force.discard(s)
        self._uncompactable.discard(s)
        if self._victim is not None and self._victim[0] == s:
            self._victim = None
        self._n_deleted += 1
        for src, count in self._pairs.pop(s, {}).items():
            if src in self._live_n:
                self._live_n[src] -= count
                self._live_b[src] -= count * REMOVE_SIZE
        for key in [k for k, (_, alive) in self._qdels.items() if s in alive]:
            size, alive = self._qdels[key]
            alive.discard(s)
            if not alive:
                del self._qdels[key]
                self._live_n[key[0]] -= 1
                self._live_b[key[0]] -= size

    # -- compaction ----------------------------------------------------------------------

    def _pick_victim(self) -> int | None:
        limit = self._limit()
        best: tuple[bool, int] | None = None  # forced ones first, then the oldest
        for s in self._segments:
            if s >= limit or s in self._uncompactable or not self._live_n[s] or self._blocked(s):
                continue
            size = self._written[s]
            if (s in self._force or self._live_b[s] < COMPACT_RATIO * size) and (
                best is None or (s not in self._force, s) < best
            ):
                best = (s not in self._force, s)
        return None if best is None else best[1]

    def _compact_step(self) -> None:
        """Compact for a while: at least COMPACT_STEP bytes of victim segments, and 4 times
        what this sync writes, so that compaction outruns the garbage being made."""
        with self._lock:
            pending = len(self._buf) + sum(len(c) for _, _, c in self._pending)
        budget = max(COMPACT_STEP, 4 * pending)
        while budget > 0:
            seg = None if self._victim is None else self._victim[0]
            try:
                if self._victim is None:
                    with self._lock:
                        seg = self._pick_victim()
                        fd = None if seg is None else self._fd(seg)
                        size = 0 if seg is None else self._written[seg]
                    if seg is None or fd is None:
                        return
                    data = os.pread(fd, size, 0)  # the file no longer changes
                    self._force.discard(seg)
                    self._victim = [seg, data, 0]
                    self._n_compactions += 1
                    log.debug("store.compact", segment=seg, bytes=size)
                budget -= self._compact_some(budget)
            except (OSError, StoreError) as e:
                log.error("store.compact_failed", segment=seg, error=str(e))
                if seg is not None:
                    self._uncompactable.add(seg)
                self._victim = None

    def _compact_some(self, budget: int) -> int:
        """Process up to `budget` bytes of the victim; returns how many were processed."""
        assert self._victim is not None
        seg, data, pos = self._victim
        size = len(data)
        first = pos
        stop = min(size, pos + budget)
        path = str(segment_path(self._dir, seg))
        while pos < stop:
            with self._lock:  # in slices, so that add/remove are not held up for long
                if seg not in self._segments or self._live_n[seg] == 0:
                    self._victim = None
                    return max(pos - first, 1)
                for _ in range(512):
                    if pos >= stop:
                        break
                    end = record_end(data, pos, size)
                    if end < 0:
                        nxt = resync(data, pos, size)
                        log.error("store.corrupt_record", file=path, offset=pos, during="compaction")
                        pos = size if nxt is None else nxt
                        continue
                    self._relocate(seg, data, pos, end)
                    pos = end
        self._victim[2] = pos
        if pos >= size:
            self._victim = None
            with self._lock:
                if self._live_n.get(seg):
                    log.error("store.compact_incomplete", segment=seg, live=self._live_n[seg])
                    self._uncompactable.add(seg)
        return max(pos - first, 1)

    def _move(self, s: int, new: int, n: int, b: int) -> None:
        self._live_n[s] -= n
        self._live_b[s] -= b
        self._live_n[new] += n
        self._live_b[new] += b
        self._n_relocated += b

    def _copy(self, data: bytes, pos: int, end: int) -> tuple[int, int]:
        seg, off = self._reserve()
        self._buf += memoryview(data)[pos:end]
        return seg, off

    def _relocate(self, s: int, data: bytes, pos: int, end: int) -> None:
        """Copy the record at (s, pos) to the active segment if it is still needed."""
        kind = data[pos + 1]
        if kind == K_MSG:
            f = MSG_HEAD.unpack_from(data, pos)
            sid, seq, ql = f[3], f[4], f[11]
            meta = self._msgs.get(sid)
            if meta is None:
                return
            if meta < BIG:
                refs, clen, loc = 1, meta, sid
            else:
                refs, clen, loc = meta >> 96, (meta >> 64) & M32, meta & M64
            if loc != (s << 32) | pos:
                return  # an older copy
            q_live = False
            if seq:
                qd = self._queues.get(dec(data[end - 4 - ql : end - 4]))
                v = None if qd is None else qd.get(sid)
                q_live = v is not None and (v == 0 or (v >> 32) & M32 == 0)
            if q_live:
                new, off = self._copy(data, pos, end)
                self._move(s, new, 2, end - pos)
                self._reloc.setdefault(new, set()).add(s)
            else:  # rewrite as content only
                head = MSG_HEAD.pack(MAGIC, K_MSG, clen - OVERHEAD, sid, 0, *f[5:11], 0, f[12])
                mid = data[pos + MSG_HEAD.size : end - 4 - ql]
                new, off = self._reserve()
                self._buf += head
                self._buf += mid
                self._buf += CRC.pack(crc32(mid, crc32(head)))
                self._move(s, new, 1, clen)
            self._msgs[sid] = (refs << 96) | (clen << 64) | (new << 32) | off
        elif kind == K_ENQ or kind == K_MARK:
            _, _, _, sid, seq = REF_HEAD.unpack_from(data, pos)
            qd = self._queues.get(dec(data[pos + 22 : end - 4]))
            v = None if qd is None else qd.get(sid)
            if not v or v >> 64 != seq:
                return
            if kind == K_ENQ:
                if (v >> 32) & M32 != s:
                    return
                new, off = self._copy(data, pos, end)
                qd[sid] = (seq << 64) | (new << 32) | (v & M32)
                self._reloc.setdefault(new, set()).add(s)
            else:
                if v & M32 != s:
                    return
                new, off = self._copy(data, pos, end)
                qd[sid] = (v & ~M32) | new
            self._move(s, new, 1, end - pos)
        elif kind == K_REMOVE:
            target = REMOVE_REC.unpack_from(data, pos)[5]
            d = self._pairs.get(target)
            if target == s or target not in self._segments or not d or not d.get(s):
                return
            new, off = self._copy(data, pos, end)
            d[s] -= 1
            if not d[s]:
                del d[s]
            d[new] = d.get(new, 0) + 1
            self._move(s, new, 1, REMOVE_SIZE)
        elif kind == K_QDEL:
            entry = self._qdels.pop((s, pos), None)
            if entry is None:
                return
            new, off = self._copy(data, pos, end)
            self._qdels[(new, off)] = entry
            self._move(s, new, 1, entry[0])
