"""Garbage collection and compaction of the disk message log's segments.

`SegmentMaintenance` is a part of `DiskMessageStore` (store.disk, `store.maintenance`) and
runs inside its `sync()`, holding its sync lock: after the write and fsync, segments without
a live record are deleted (`collect`); before the write, a bounded amount of compaction is
done (`compact_step`): the live records of the oldest segment under 25 % live bytes are copied
to the active segment, and that segment then has no live record left and is deleted by the
`collect` of the same sync, once the copies are durable.

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
    """Deletion and compaction of a `DiskMessageStore`'s segments: a part the store owns
    (`store.maintenance`), composed rather than mixed in. It keeps its own bookkeeping
    (the compaction victim, counters) and reads and changes the store's segment state
    through `self.store`, always under the store's sync lock (see the module docstring)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.victim: list[Any] | None = None  # [seg, file bytes, next offset]
        self.force: set[int] = set()  # compactions a crash interrupted: finish them first
        self.uncompactable: set[int] = set()
        self.undeletable: set[int] = set()
        self.n_compactions = 0
        self.n_deleted = 0
        self.n_relocated = 0

    # -- deletion ------------------------------------------------------------------------

    def _limit(self) -> int:
        """Segments below this one are completely written and no longer appended to."""
        if self.store._inflight:
            return self.store._inflight[0][0]
        if self.store._pending:
            return self.store._pending[0][0]
        return self.store._active

    def _blocked(self, seg: int) -> bool:
        srcs = self.store._reloc.get(seg)
        if srcs is None:
            return False
        if any(s in self.store._segments for s in srcs):
            return True
        del self.store._reloc[seg]
        return False

    def collect(self) -> None:
        """Delete segments without live records, then drop the tombstones that only
        existed for them (after the deletion is durable), repeatedly."""
        while True:
            with self.store._lock:
                limit = self._limit()
                dead = [
                    s for s in self.store._segments
                    if s < limit and self.store._live_n[s] == 0 and s not in self.undeletable
                    and not self._blocked(s)
                ]
            if not dead:
                return
            gone = []
            for s in dead:
                try:
                    segment_path(self.store._dir, s).unlink(missing_ok=True)
                    gone.append(s)
                except OSError as e:
                    log.warning("store.unlink_failed", segment=s, error=str(e))
                    self.undeletable.add(s)
            if gone and self.store._fsync:
                try:
                    fsync_dir(self.store._dir)
                except OSError as e:
                    self.store._failed = e
                    raise oserror(f"cannot fsync {self.store._dir}", e) from e
            with self.store._lock:
                for s in gone:
                    self._forget(s)

    def _forget(self, s: int) -> None:
        fd = self.store._fds.pop(s, None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        self.store._segments.discard(s)
        for d in (self.store._live_n, self.store._live_b, self.store._written, self.store._reloc):
            d.pop(s, None)
        self.force.discard(s)
        self.uncompactable.discard(s)
        if self.victim is not None and self.victim[0] == s:
            self.victim = None
        self.n_deleted += 1
        for src, count in self.store._pairs.pop(s, {}).items():
            if src in self.store._live_n:
                self.store._live_n[src] -= count
                self.store._live_b[src] -= count * REMOVE_SIZE
        for key in [k for k, (_, alive) in self.store._qdels.items() if s in alive]:
            size, alive = self.store._qdels[key]
            alive.discard(s)
            if not alive:
                del self.store._qdels[key]
                self.store._live_n[key[0]] -= 1
                self.store._live_b[key[0]] -= size

    # -- compaction ----------------------------------------------------------------------

    def _pick_victim(self) -> int | None:
        limit = self._limit()
        best: tuple[bool, int] | None = None  # forced ones first, then the oldest
        for s in self.store._segments:
            if s >= limit or s in self.uncompactable or not self.store._live_n[s] or self._blocked(s):
                continue
            size = self.store._written[s]
            if (s in self.force or self.store._live_b[s] < COMPACT_RATIO * size) and (
                best is None or (s not in self.force, s) < best
            ):
                best = (s not in self.force, s)
        return None if best is None else best[1]

    def compact_step(self) -> None:
        """Compact for a while: at least COMPACT_STEP bytes of victim segments, and 4 times
        what this sync writes, so that compaction outruns the garbage being made."""
        with self.store._lock:
            pending = len(self.store._buf) + sum(len(c) for _, _, c in self.store._pending)
        budget = max(COMPACT_STEP, 4 * pending)
        while budget > 0:
            seg = None if self.victim is None else self.victim[0]
            try:
                if self.victim is None:
                    with self.store._lock:
                        seg = self._pick_victim()
                        fd = None if seg is None else self.store._fd(seg)
                        size = 0 if seg is None else self.store._written[seg]
                    if seg is None or fd is None:
                        return
                    data = os.pread(fd, size, 0)  # the file no longer changes
                    self.force.discard(seg)
                    self.victim = [seg, data, 0]
                    self.n_compactions += 1
                    log.debug("store.compact", segment=seg, bytes=size)
                budget -= self._compact_some(budget)
            except (OSError, StoreError) as e:
                log.error("store.compact_failed", segment=seg, error=str(e))
                if seg is not None:
                    self.uncompactable.add(seg)
                self.victim = None

    def _compact_some(self, budget: int) -> int:
        """Process up to `budget` bytes of the victim; returns how many were processed."""
        assert self.victim is not None
        seg, data, pos = self.victim
        size = len(data)
        first = pos
        stop = min(size, pos + budget)
        path = str(segment_path(self.store._dir, seg))
        while pos < stop:
            with self.store._lock:  # in slices, so that add/remove are not held up for long
                if seg not in self.store._segments or self.store._live_n[seg] == 0:
                    self.victim = None
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
        self.victim[2] = pos
        if pos >= size:
            self.victim = None
            with self.store._lock:
                if self.store._live_n.get(seg):
                    log.error("store.compact_incomplete", segment=seg, live=self.store._live_n[seg])
                    self.uncompactable.add(seg)
        return max(pos - first, 1)

    def _move(self, s: int, new: int, n: int, b: int) -> None:
        self.store._live_n[s] -= n
        self.store._live_b[s] -= b
        self.store._live_n[new] += n
        self.store._live_b[new] += b
        self.n_relocated += b

    def _copy(self, data: bytes, pos: int, end: int) -> tuple[int, int]:
        seg, off = self.store._reserve()
        self.store._buf += memoryview(data)[pos:end]
        return seg, off

    def _relocate(self, s: int, data: bytes, pos: int, end: int) -> None:
        """Copy the record at (s, pos) to the active segment if it is still needed."""
        kind = data[pos + 1]
        if kind == K_MSG:
            f = MSG_HEAD.unpack_from(data, pos)
            sid, seq, ql = f[3], f[4], f[11]
            meta = self.store._msgs.get(sid)
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
                qd = self.store._queues.get(dec(data[end - 4 - ql : end - 4]))
                v = None if qd is None else qd.get(sid)
                q_live = v is not None and (v == 0 or (v >> 32) & M32 == 0)
            if q_live:
                new, off = self._copy(data, pos, end)
                self._move(s, new, 2, end - pos)
                self.store._reloc.setdefault(new, set()).add(s)
            else:  # rewrite as content only
                head = MSG_HEAD.pack(MAGIC, K_MSG, clen - OVERHEAD, sid, 0, *f[5:11], 0, f[12])
                mid = data[pos + MSG_HEAD.size : end - 4 - ql]
                new, off = self.store._reserve()
                self.store._buf += head
                self.store._buf += mid
                self.store._buf += CRC.pack(crc32(mid, crc32(head)))
                self._move(s, new, 1, clen)
            self.store._msgs[sid] = (refs << 96) | (clen << 64) | (new << 32) | off
        elif kind == K_ENQ or kind == K_MARK:
            _, _, _, sid, seq = REF_HEAD.unpack_from(data, pos)
            qd = self.store._queues.get(dec(data[pos + 22 : end - 4]))
            v = None if qd is None else qd.get(sid)
            if not v or v >> 64 != seq:
                return
            if kind == K_ENQ:
                if (v >> 32) & M32 != s:
                    return
                new, off = self._copy(data, pos, end)
                qd[sid] = (seq << 64) | (new << 32) | (v & M32)
                self.store._reloc.setdefault(new, set()).add(s)
            else:
                if v & M32 != s:
                    return
                new, off = self._copy(data, pos, end)
                qd[sid] = (v & ~M32) | new
            self._move(s, new, 1, end - pos)
        elif kind == K_REMOVE:
            target = REMOVE_REC.unpack_from(data, pos)[5]
            d = self.store._pairs.get(target)
            if target == s or target not in self.store._segments or not d or not d.get(s):
                return
            new, off = self._copy(data, pos, end)
            d[s] -= 1
            if not d[s]:
                del d[s]
            d[new] = d.get(new, 0) + 1
            self._move(s, new, 1, REMOVE_SIZE)
        elif kind == K_QDEL:
            entry = self.store._qdels.pop((s, pos), None)
            if entry is None:
                return
            new, off = self._copy(data, pos, end)
            self.store._qdels[(new, off)] = entry
            self._move(s, new, 1, entry[0])
