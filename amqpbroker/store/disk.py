"""The disk stores: `DiskMessageStore` (segment log) and `DiskDefinitionStore` (JSON lines).

DiskMessageStore keeps an append-only log of records (format: `store.records`) in segment
files of about `segment_size` bytes. Records are appended to an in-memory buffer;
`sync()` writes the buffer with one `os.write` per segment touched and fsyncs (group
commit). What stays in RAM is the bookkeeping below, kept as dicts of ints because Python
objects per message would cost more than the messages:

  _msgs[store_id]   meta: small int = content-part length of a message with one queue
                    whose record is still where it was written (store_id is its position);
                    else refs << 96 | content length << 64 | position of the record
  _queues[q][sid]   0 = enqueued by the message's own MSG record, not delivered; else
                    seq << 64 | enqueue segment << 32 | delivered-mark segment, where
                    enqueue segment 0 means "in the MSG record" and mark 0 "not marked"
  _live_n/_live_b   per segment: number and bytes of records (or record parts) still needed

A record is needed while what it says is still true: a message's content while a queue
holds it, an enqueue/mark while that reference exists, a REMOVE/QDEL tombstone while a
segment holding an enqueue it cancels exists (`_pairs`, `_qdels`). Segments without a live
record are deleted and segments under 25 % live bytes compacted by `sync()` (see
`store.segments`). After `sync()`, bodies beyond `memory_budget` are paged out, oldest
first (`msg.body = None`; `load_body` reads them back with one `pread`).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path
from typing import Any
from zlib import crc32

import structlog

from amqpbroker.message import Message
from amqpbroker.store.base import MessageStore
from amqpbroker.store.records import (
    CRC,
    HDR,
    K_ENQ,
    K_MARK,
    K_MSG,
    K_QDEL,
    K_REMOVE,
    M32,
    M64,
    MAGIC,
    MAX_PAYLOAD,
    MSG_HEAD,
    MSG_SIZE,
    OVERHEAD,
    QDEL_HEAD,
    REF_HEAD,
    REF_OVERHEAD,
    REMOVE_REC,
    REMOVE_SIZE,
    F_EXPIRATION,
    F_PERSISTENT,
    StoreError,
    enc,
    record_end,
    scan,
    segment_path,
)
from amqpbroker.store.segments import BIG, SegmentMaintenance, fsync_dir, oserror

__all__ = ["DiskMessageStore", "DiskDefinitionStore", "StoreError"]

log = structlog.get_logger()

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class DiskMessageStore(MessageStore):
    def __init__(
        self,
        directory: str | Path,
        *,
        sync: bool = True,
        segment_size: int = 32 << 20,
        memory_budget: int = 256 << 20,
    ) -> None:
        if not 0 < segment_size <= 1 << 31:
            raise ValueError("segment_size must be in (0, 2 GiB]")
        self._dir = Path(directory)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise oserror(f"cannot create {self._dir}", e) from e
        self._fsync = sync
        self._segment_size = segment_size
        self._budget = memory_budget
        self._lock = threading.Lock()  # all state below
        self._sync_lock = threading.Lock()  # one sync()/close() at a time
        self._recovered = False
        self._closed = False
        self._failed: OSError | None = None  # an fsync failed: data state unknown
        # segments and the write buffer
        self._segments: set[int] = set()
        self._fds: dict[int, int] = {}
        self._written: dict[int, int] = {}  # bytes on disk per segment
        self._active = 1
        self._buf = bytearray()  # records of the active segment from _buf_start on
        self._buf_start = 0
        self._pending: list[tuple[int, int, bytearray]] = []  # sealed (seg, start, bytes)
        self._inflight: list[tuple[int, int, bytearray]] = []  # taken by a sync()
        self._unsynced: set[int] = set()
        self._dir_dirty = False
        # liveness
        self._live_n: dict[int, int] = {}
        self._live_b: dict[int, int] = {}
        self._pairs: dict[int, dict[int, int]] = {}  # target seg -> REMOVE seg -> count
        self._qdels: dict[tuple[int, int], tuple[int, set[int]]] = {}
        self._reloc: dict[int, set[int]] = {}  # seg -> segs it received enqueues from
        # messages
        self._msgs: dict[int, int] = {}
        self._queues: dict[str, dict[int, int]] = {}
        self._qbytes: dict[str, bytes] = {}
        self._held: dict[int, Message] = {}  # bodies in RAM, oldest first
        # One int object per content length (messages of one size share it): an int
        # above 256 is a 32-byte object, a tenth of what a backlogged message costs.
        self._lens: dict[int, int] = {}
        self._held_bytes = 0
        self._index: dict[str, list[int]] = {}  # index keys, from recover() (store.base)
        # Deletion and compaction of segments (store/segments.py): a part, not a mixin.
        self.maintenance = SegmentMaintenance(self)

    # -- recovery ----------------------------------------------------------------------

    def recover(self) -> dict[str, list[tuple[Message, bool]]]:
        with self._sync_lock, self._lock:
            if self._recovered:
                raise RuntimeError("recover() is called once, before any other operation")
            if self._closed:
                raise StoreError("store is closed")
            rec = scan(self._dir, self._index_prefix, self._lean)
            self._index = rec.index
            self._segments = set(rec.segments)
            self._written = dict(rec.sizes)
            self._live_n, self._live_b = rec.live_n, rec.live_b
            self._pairs, self._qdels, self._reloc = rec.pairs, rec.qdels, rec.reloc
            self._msgs, self._queues = rec.msgs, rec.queues
            for srcs in rec.reloc.values():
                self.maintenance.force |= srcs  # compactions a crash interrupted: finish them first
            last = rec.segments[-1] if rec.segments else 0
            if last and rec.sizes[last] < self._segment_size:
                self._active, self._buf_start = last, rec.sizes[last]
            else:
                self._active, self._buf_start = last + 1, 0
                self._new_segment(last + 1)
            self._recovered = True
            return rec.result

    def recovered_index(self) -> dict[str, list[int]]:
        index, self._index = self._index, {}  # handed over once: the caller keeps it
        return index

    def _ensure(self) -> None:
        if not self._recovered:
            self.recover()

    # -- buffer ------------------------------------------------------------------------

    def _new_segment(self, seg: int) -> None:
        self._segments.add(seg)
        self._live_n[seg] = 0
        self._live_b[seg] = 0
        self._written[seg] = 0

    def _reserve(self) -> tuple[int, int]:
        """(segment, offset) where the next appended record goes; rolls segments."""
        off = self._buf_start + len(self._buf)
        if off >= self._segment_size:
            if self._buf:
                self._pending.append((self._active, self._buf_start, self._buf))
            self._active += 1
            self._buf = bytearray()
            self._buf_start = off = 0
            self._new_segment(self._active)
        return self._active, off

    def _qkey(self, queue_key: str) -> bytes:
        b = self._qbytes.get(queue_key)
        if b is None:
            b = self._qbytes[queue_key] = enc(queue_key)
        return b

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    # -- MessageStore ------------------------------------------------------------------

    def add(self, queue_key: str, msg: Message) -> None:
        self._ensure()
        with self._lock:
            self._check_open()
            sid = msg.store_id
            qd = self._queues.get(queue_key)
            meta = self._msgs.get(sid) if sid else None
            if meta is not None:  # already stored: a reference only (fanout)
                if qd is None:
                    qd = self._queues[queue_key] = {}
                elif sid in qd:
                    return
                qb = self._qkey(queue_key)
                seg, off = self._reserve()
                seq = (seg << 32) | off
                rec = REF_HEAD.pack(MAGIC, K_ENQ, 16 + len(qb), sid, seq) + qb
                buf = self._buf
                buf += rec
                buf += CRC.pack(crc32(rec))
                qd[sid] = (seq << 64) | (seg << 32)
                self._live_n[seg] += 1
                self._live_b[seg] += len(rec) + 4
                self._msgs[sid] = (2 << 96 | meta << 64 | sid) if meta < BIG else meta + (1 << 96)
                return
            body = msg.body
            if body is None:
                body = self._dead_body(msg)
            elif len(body) != msg.body_size:
                raise ValueError(f"body_size {msg.body_size} != len(body) {len(body)}")
            ex = enc(msg.exchange)
            rk = enc(msg.routing_key)
            exp = msg.expiration
            flags = F_PERSISTENT if msg.persistent else 0
            if exp is None:
                exb = b""
            else:
                exb = enc(exp)
                flags |= F_EXPIRATION
            props = msg.properties
            qb = self._qkey(queue_key)
            clen = MSG_SIZE + 4 + len(ex) + len(rk) + len(exb) + len(props) + len(body)
            n = clen - OVERHEAD + len(qb)
            if n > MAX_PAYLOAD or max(len(ex), len(rk), len(exb)) > 0xFFFF:
                raise StoreError("message too large for the store")
            seg, off = self._reserve()
            sid = (seg << 32) | off
            head = MSG_HEAD.pack(
                MAGIC, K_MSG, n, sid, sid, flags, min(max(msg.priority or 0, 0), 255),
                len(ex), len(rk), len(exb), len(props), len(qb),
                msg.enqueued_ms or int(time.time() * 1000),
            ) + ex + rk + exb + props
            buf = self._buf
            buf += head
            buf += body
            buf += qb
            buf += CRC.pack(crc32(qb, crc32(body, crc32(head))))
            msg.store_id = sid
            self._msgs[sid] = self._lens.get(clen) or self._shared_len(clen)
            if qd is None:
                qd = self._queues[queue_key] = {}
            qd[sid] = 0
            self._live_n[seg] += 2
            self._live_b[seg] += clen + len(qb)
            if msg.body is not None:
                self._held[sid] = msg
                self._held_bytes += msg.body_size

    def _shared_len(self, clen: int) -> int:
        if len(self._lens) < 4096:
            self._lens[clen] = clen
        return clen

    def _dead_body(self, msg: Message) -> bytes:
        """The body of a paged-out message whose content the store already dropped (all
        its queues removed it): readable only while its segment is still there."""
        sid = msg.store_id
        if sid and (sid >> 32) in self._segments and (sid >> 32) not in self.maintenance.undeletable:
            try:
                return self._read_body(sid >> 32, sid & M32, 4096, sid)
            except StoreError:
                pass
        raise StoreError(
            "message body is paged out and its content is no longer stored: add a message "
            "to its new queues before removing it from the last old one"
        )

    def remove(self, queue_key: str, msg: Message) -> None:
        self._ensure()
        with self._lock:
            self._check_open()
            qd = self._queues.get(queue_key)
            sid = msg.store_id
            v = qd.pop(sid, None) if qd is not None else None
            if v is None:
                return
            if not qd:
                del self._queues[queue_key]
            live_n, live_b = self._live_n, self._live_b
            meta = self._msgs[sid]
            ql = len(self._qkey(queue_key))
            if v == 0:
                seq = sid
                e = m = 0
            else:
                seq = v >> 64
                e = (v >> 32) & M32
                m = v & M32
            if e == 0:  # the enqueue is the MSG record's queue part
                e = (sid if meta < BIG else meta & M64) >> 32
                live_b[e] -= ql
            else:
                live_b[e] -= REF_OVERHEAD + ql
            live_n[e] -= 1
            if m:
                live_n[m] -= 1
                live_b[m] -= REF_OVERHEAD + ql
            seg, off = self._reserve()
            rec = REMOVE_REC.pack(MAGIC, K_REMOVE, 20, sid, seq, e)
            buf = self._buf
            buf += rec
            buf += CRC.pack(crc32(rec))
            if e != seg:  # needed while segment e (holding the enqueue) exists
                live_n[seg] += 1
                live_b[seg] += REMOVE_SIZE
                d = self._pairs.get(e)
                if d is None:
                    d = self._pairs[e] = {}
                d[seg] = d.get(seg, 0) + 1
            self._unref(sid, meta)

    def _unref(self, sid: int, meta: int) -> None:
        if meta < BIG:
            cseg, clen = sid >> 32, meta
        elif meta >> 96 == 1:
            cseg, clen = (meta & M64) >> 32, (meta >> 64) & M32
        else:
            meta -= 1 << 96
            if meta >> 96 == 1 and meta & M64 == sid:
                meta = (meta >> 64) & M32  # back to the short form
            self._msgs[sid] = meta
            return
        del self._msgs[sid]
        self._live_n[cseg] -= 1
        self._live_b[cseg] -= clen
        held = self._held.pop(sid, None)
        if held is not None:
            self._held_bytes -= held.body_size

    def mark_delivered(self, queue_key: str, msg: Message) -> None:
        self._ensure()
        with self._lock:
            self._check_open()
            qd = self._queues.get(queue_key)
            sid = msg.store_id
            v = qd.get(sid) if qd is not None else None
            if v is None:
                return
            if v == 0:
                seq, v = sid, sid << 64
            elif v & M32:
                return  # marked already: one mark per enqueue
            else:
                seq = v >> 64
            qb = self._qkey(queue_key)
            seg, off = self._reserve()
            rec = REF_HEAD.pack(MAGIC, K_MARK, 16 + len(qb), sid, seq) + qb
            buf = self._buf
            buf += rec
            buf += CRC.pack(crc32(rec))
            qd[sid] = v | seg
            self._live_n[seg] += 1
            self._live_b[seg] += len(rec) + 4

    def delete_queue(self, queue_key: str) -> None:
        self._ensure()
        with self._lock:
            self._check_open()
            qd = self._queues.pop(queue_key, None)
            qb = self._qbytes.pop(queue_key, None)
            if not qd:
                return
            qb = qb if qb is not None else enc(queue_key)
            ql = len(qb)
            live_n, live_b, msgs = self._live_n, self._live_b, self._msgs
            targets: set[int] = set()
            for sid, v in qd.items():
                meta = msgs[sid]
                e = 0 if v == 0 else (v >> 32) & M32
                if e == 0:
                    e = (sid if meta < BIG else meta & M64) >> 32
                    live_b[e] -= ql
                else:
                    live_b[e] -= REF_OVERHEAD + ql
                live_n[e] -= 1
                m = v & M32
                if m:
                    live_n[m] -= 1
                    live_b[m] -= REF_OVERHEAD + ql
                targets.add(e)
                self._unref(sid, meta)
            tl = sorted(targets)
            n = 12 + 4 * len(tl) + ql
            seg, off = self._reserve()
            rec = (
                QDEL_HEAD.pack(MAGIC, K_QDEL, n, (seg << 32) | off, len(tl))
                + struct.pack(f"<{len(tl)}I", *tl)
                + qb
            )
            self._buf += rec
            self._buf += CRC.pack(crc32(rec))
            alive = {t for t in tl if t != seg}
            if alive:
                self._qdels[(seg, off)] = (n + OVERHEAD, alive)
                live_n[seg] += 1
                live_b[seg] += n + OVERHEAD

    # -- reading -----------------------------------------------------------------------

    def load_body(self, msg: Message) -> bytes:
        self._ensure()
        with self._lock:
            sid = msg.store_id
            meta = self._msgs.get(sid)
            if meta is None:
                if msg.body is not None:
                    return msg.body
                raise StoreError(f"message {sid:#x} is not in the store")
            if meta < BIG:
                loc, clen = sid, meta
            else:
                loc, clen = meta & M64, (meta >> 64) & M32
            return self._read_body(loc >> 32, loc & M32, clen, sid)

    def release_body(self, msg: Message) -> None:
        with self._lock:
            held = self._held.pop(msg.store_id, None)
            if held is not None:
                self._held_bytes -= held.body_size

    def load_message(self, store_id: int) -> Message:
        self._ensure()
        with self._lock:
            held = self._held.get(store_id)
            if held is not None and held.body is not None:
                return held  # still in RAM (not paged out yet)
            meta = self._msgs.get(store_id)
            if meta is None:
                raise StoreError(f"message {store_id:#x} is not in the store")
            if meta < BIG:
                loc, clen = store_id, meta
            else:
                loc, clen = meta & M64, (meta >> 64) & M32
            data = self._read_record(loc >> 32, loc & M32, clen, store_id)
        return _message(data, 0, len(data), store_id)

    # Neighbouring records closer than this are read with one pread (delayed messages due
    # together were mostly written together), up to READ_SPAN bytes per read.
    READ_GAP = 64 << 10
    READ_SPAN = 4 << 20

    def load_messages(self, store_ids: list[int]) -> list[Message | StoreError]:
        self._ensure()
        out: list[Message | StoreError | None] = [None] * len(store_ids)
        wanted: list[tuple[int, int, int]] = []  # (position, content length, index)
        with self._lock:
            for i, sid in enumerate(store_ids):
                held = self._held.get(sid)
                if held is not None and held.body is not None:
                    # The caller's now: paging (in the sync thread) must not drop its body.
                    del self._held[sid]
                    self._held_bytes -= held.body_size
                    out[i] = held
                    continue
                meta = self._msgs.get(sid)
                if meta is None:
                    out[i] = StoreError(f"message {sid:#x} is not in the store")
                elif meta < BIG:
                    wanted.append((sid, meta, i))
                else:
                    wanted.append((meta & M64, (meta >> 64) & M32, i))
            wanted.sort()
            j = 0
            while j < len(wanted):  # one run: same segment, small gaps, bounded span
                k = j + 1
                seg = wanted[j][0] >> 32
                while (k < len(wanted) and wanted[k][0] >> 32 == seg
                       and wanted[k][0] - wanted[k - 1][0] - wanted[k - 1][1] <= self.READ_GAP
                       and wanted[k][0] - wanted[j][0] <= self.READ_SPAN):
                    k += 1
                start = wanted[j][0] & M32
                last = wanted[k - 1]
                try:
                    data = self._read(seg, start, (last[0] & M32) - start + last[1] + 1024)
                except StoreError:
                    data = b""
                for loc, clen, i in wanted[j:k]:
                    sid = store_ids[i]
                    off = (loc & M32) - start
                    try:
                        end = record_end(data, off, len(data))
                        if end > 0:
                            out[i] = _message(data, off, end, sid)
                        else:  # beyond this read (a write buffer, a long key): alone
                            rec = self._read_record(seg, loc & M32, clen, sid)
                            out[i] = _message(rec, 0, len(rec), sid)
                    except StoreError as e:
                        out[i] = e
                j = k
        return out  # type: ignore[return-value]

    def _fd(self, seg: int) -> int:
        fd = self._fds.get(seg)
        if fd is None:
            path = segment_path(self._dir, seg)
            if not self._written.get(seg):
                self._dir_dirty = True  # may create the file
            try:
                fd = self._fds[seg] = os.open(path, _OPEN_FLAGS, 0o644)
            except OSError as e:
                raise oserror(f"cannot open {path}", e) from e
        return fd

    def _read(self, seg: int, off: int, size: int) -> bytes:
        """Up to `size` bytes at (seg, off), from the file or from unwritten buffers."""
        if off < self._written.get(seg, 0):
            try:
                return os.pread(self._fd(seg), size, off)
            except OSError as e:
                raise oserror(f"cannot read segment {seg}", e) from e
        for s, start, chunk in (*self._inflight, *self._pending, (self._active, self._buf_start, self._buf)):
            if s == seg and start <= off < start + len(chunk):
                return bytes(chunk[off - start : off - start + size])
        raise StoreError(f"position {seg}:{off} is not in the store")

    def _read_body(self, seg: int, off: int, clen: int, sid: int) -> bytes:
        data = self._read_record(seg, off, clen, sid)
        f = MSG_HEAD.unpack_from(data, 0)
        start = MSG_SIZE + f[7] + f[8] + f[9] + f[10]
        return data[start : len(data) - 4 - f[11]]

    def _read_record(self, seg: int, off: int, clen: int, sid: int) -> bytes:
        """The whole MSG record of message `sid` at (seg, off), checked."""
        data = self._read(seg, off, clen + 256)
        total = -1
        if len(data) >= OVERHEAD:
            magic, kind, n = HDR.unpack_from(data, 0)
            if magic == MAGIC and kind == K_MSG:
                total = n + OVERHEAD
                if len(data) < total:
                    data = self._read(seg, off, total)
        if total < 0 or record_end(data, 0, len(data)) != total:
            raise StoreError(f"corrupt message record at {segment_path(self._dir, seg)}:{off}")
        f = MSG_HEAD.unpack_from(data, 0)
        if f[3] != sid:
            raise StoreError(f"record at {seg}:{off} is not message {sid:#x}")
        return data[:total]

    # -- sync, garbage collection, paging ----------------------------------------------

    def sync(self) -> None:
        self._ensure()
        with self._sync_lock:
            self._check_open()
            self._sync_locked(maintain=True)

    def _sync_locked(self, maintain: bool) -> None:
        if self._failed is not None:
            raise StoreError(f"store unusable after a failed fsync: {self._failed}")
        if maintain:
            self.maintenance.compact_step()
        with self._lock:
            if self._buf:
                self._pending.append((self._active, self._buf_start, self._buf))
                self._buf_start += len(self._buf)
                self._buf = bytearray()
            self._inflight.extend(self._pending)
            self._pending = []
        self._write_out()
        if maintain:
            self.maintenance.collect()
            self._page_out()

    def _write_out(self) -> None:
        while True:
            with self._lock:
                if not self._inflight:
                    break
                seg, start, chunk = self._inflight[0]
                fd = self._fd(seg)
            view = memoryview(chunk)
            try:
                done = 0
                while done < len(chunk):
                    done += os.write(fd, view[done:])
            except OSError as e:
                try:  # keep the file a sequence of whole records; the chunk is retried
                    os.ftruncate(fd, start)
                except OSError as e2:
                    self._failed = e2
                raise oserror(f"cannot write {segment_path(self._dir, seg)}", e) from e
            finally:
                view.release()
            with self._lock:
                self._inflight.pop(0)
                self._written[seg] = start + len(chunk)
                self._unsynced.add(seg)
        if self._fsync:
            for seg in sorted(self._unsynced):
                fd = self._fds.get(seg)
                if fd is None:
                    continue
                try:
                    os.fsync(fd)
                except OSError as e:
                    self._failed = e
                    raise oserror(f"cannot fsync {segment_path(self._dir, seg)}", e) from e
            if self._dir_dirty:
                try:
                    fsync_dir(self._dir)
                except OSError as e:
                    self._failed = e
                    raise oserror(f"cannot fsync {self._dir}", e) from e
        self._dir_dirty = False
        self._unsynced.clear()

    def _page_out(self) -> None:
        with self._lock:
            excess = self._held_bytes - self._budget
            if excess <= 0:
                return
            victims = []
            for sid, msg in self._held.items():  # insertion order: oldest first
                if excess <= 0:
                    break
                victims.append(sid)
                excess -= msg.body_size
            for sid in victims:
                msg = self._held.pop(sid)
                msg.body = None
                self._held_bytes -= msg.body_size

    # -- the rest ----------------------------------------------------------------------

    def close(self) -> None:
        with self._sync_lock:
            if self._closed:
                return
            try:
                if self._recovered:
                    self._sync_locked(maintain=False)
            finally:
                with self._lock:
                    self._closed = True
                    for fd in self._fds.values():
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                    self._fds.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            disk = sum(self._written.values())
            return {
                "segments": len(self._segments),
                "disk_bytes": disk,
                "live_bytes": sum(self._live_b.values()),
                "buffered_bytes": len(self._buf) + sum(len(c) for _, _, c in self._pending),
                "messages": len(self._msgs),
                "queues": len(self._queues),
                "refs": sum(len(q) for q in self._queues.values()),
                "bodies_in_ram": len(self._held),
                "body_bytes_in_ram": self._held_bytes,
                "compactions": self.maintenance.n_compactions,
                "relocated_bytes": self.maintenance.n_relocated,
                "deleted_segments": self.maintenance.n_deleted,
            }


def _message(data: bytes, pos: int, end: int, store_id: int) -> Message:
    """The message in the verified MSG record data[pos:end]."""
    f = MSG_HEAD.unpack_from(data, pos)
    if f[1] != K_MSG or f[3] != store_id:
        raise StoreError(f"record is not message {store_id:#x}")
    flags, prio, exl, rkl, expl, propl, ql, ts = f[5:13]
    p = pos + MSG_SIZE
    ex = data[p:p + exl].decode("utf-8", "surrogatepass")
    p += exl
    rk = data[p:p + rkl].decode("utf-8", "surrogatepass")
    p += rkl
    exp = data[p:p + expl].decode("utf-8", "surrogatepass") if flags & F_EXPIRATION else None
    p += expl
    props = bytes(data[p:p + propl])
    body = bytes(data[p + propl:end - 4 - ql])
    msg = Message(ex, rk, props, body, len(body), bool(flags & F_PERSISTENT), prio, exp)
    msg.store_id = store_id
    msg.enqueued_ms = ts
    return msg


from amqpbroker.store.definitions_log import DiskDefinitionStore  # noqa: E402  (re-export)
