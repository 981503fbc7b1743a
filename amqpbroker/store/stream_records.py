"""Stream segments (see `store.stream_log`): file format, recovery scan, and the reader.

A stream lives in one directory: segment files named by the offset of their first record
(`00000000000000000000.seg`, 20 digits, so names sort like offsets) and `offsets.trk`
(server-side offset tracking). Like the message store (`store.records`), a file is nothing
but a sequence of records, no file header, each

    u8 magic (0xA8) | u8 kind | u32 payload length N | payload (N bytes) | u32 crc32

little-endian, the CRC (`zlib.crc32`) covering magic, kind, length and payload. Kinds:

MSG (1)    u64 offset | u64 timestamp (ms since the epoch) | u8 flags (1 has filter value,
           2 first record of a chunk) | u16 len(exchange) | u16 len(routing key)
           | u16 len(filter value) | u32 len(properties)
           | exchange | routing key | filter value | properties | body
           (body length = N - 27 - the other lengths; strings UTF-8 "surrogatepass")
INDEX (2)  n x (u64 offset | u64 file position | u64 timestamp): the segment's sparse
           index, one entry per INDEX_EVERY bytes of records (the first record always)
SEAL (3)   u64 first offset | u64 next offset | u64 first timestamp | u64 last timestamp
           | u64 last chunk start | u64 position of the INDEX record | u32 record count
           - fixed size, always the last record of a segment that was closed by a roll
TRACK (4)  u64 offset | consumer name (UTF-8)   - only in offsets.trk; the last one wins

Offsets are consecutive within a segment and never reused: a new segment is named by the
next offset, and at least one segment (the active one) always exists. Timestamps never go
backwards (a wall clock that does is clamped to the previous record's), so they can be
searched like offsets. A "chunk" is what one flush wrote (at most CHUNK_MAX records): the
unit RabbitMQ's `x-stream-offset=last` starts from.

Recovery trusts a segment that ends with a valid SEAL (its INDEX gives everything kept in
RAM); any other segment is scanned record by record with CRCs checked: in the last
segment a bad record with nothing valid behind it is a torn write and is cut off, a bad
record followed by valid ones is skipped (logged), as the message store does. Readers
(`StreamCursor`) check every CRC too and skip a bad record the same way.
"""

from __future__ import annotations

import os
import struct
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, NamedTuple
from zlib import crc32

import structlog

if TYPE_CHECKING:
    from amqpbroker.store.stream_log import StreamLog

log = structlog.get_logger()

MAGIC = 0xA8
K_MSG, K_INDEX, K_SEAL, K_TRACK = 1, 2, 3, 4
KINDS = frozenset((K_MSG, K_INDEX, K_SEAL, K_TRACK))
F_FILTER, F_CHUNK = 1, 2

HDR = struct.Struct("<BBI")
CRC = struct.Struct("<I")
OVERHEAD = HDR.size + CRC.size  # 10
MSG_HEAD = struct.Struct("<BBIQQBHHHI")  # header + the fixed MSG fields (33 bytes)
MSG_FIXED = MSG_HEAD.size - HDR.size  # 27
ENTRY = struct.Struct("<QQQ")
SEAL_REC = struct.Struct("<BBIQQQQQQI")
SEAL_SIZE = SEAL_REC.size + CRC.size  # 62
TRACK_HEAD = struct.Struct("<BBIQ")
BAD = -1

INDEX_EVERY = 64 << 10  # bytes of records between two sparse index entries
CHUNK_MAX = 1024  # records in one chunk at most
SCAN_BUF = 1 << 20
READ_BUF = 128 << 10  # a cursor's read buffer (one record, if bigger)


def segment_name(first: int) -> str:
    return f"{first:020d}.seg"


def list_segments(directory: Path) -> list[int]:
    return sorted(int(p.stem) for p in directory.glob("*.seg") if p.stem.isdigit())


def encode_msg(offset: int, ts: int, flags: int, ex: bytes, rk: bytes, fv: bytes,
               props: bytes, body: bytes) -> bytes:
    n = MSG_FIXED + len(ex) + len(rk) + len(fv) + len(props) + len(body)
    head = MSG_HEAD.pack(MAGIC, K_MSG, n, offset, ts, flags, len(ex), len(rk), len(fv), len(props))
    rec = b"".join((head, ex, rk, fv, props, body))
    return rec + CRC.pack(crc32(rec))


def _sealed(kind: int, payload: bytes) -> bytes:
    rec = HDR.pack(MAGIC, kind, len(payload)) + payload
    return rec + CRC.pack(crc32(rec))


def encode_track(name: str, offset: int) -> bytes:
    return _sealed(K_TRACK, struct.pack("<Q", offset) + name.encode("utf-8", "surrogatepass"))


class Segment:
    """What RAM holds about one segment file: bounds, times and its sparse index."""

    __slots__ = ("first", "next", "size", "count", "first_ts", "last_ts", "last_chunk",
                 "sealed", "deleted", "idx_off", "idx_pos", "idx_ts", "_idx_at")

    def __init__(self, first: int) -> None:
        self.first = first
        self.next = first  # offset after the last record
        self.size = 0  # bytes written to the file (what readers may read)
        self.count = 0
        self.first_ts = self.last_ts = -1
        self.last_chunk = -1  # offset of the last chunk start in this segment
        self.sealed = False
        self.deleted = False
        self.idx_off, self.idx_pos, self.idx_ts = array("q"), array("q"), array("q")
        self._idx_at = -INDEX_EVERY

    def note(self, offset: int, pos: int, ts: int, flags: int) -> None:
        """Account for a record appended at file position `pos`."""
        if self.count == 0:
            self.first_ts = ts
        self.count += 1
        self.next = offset + 1
        self.last_ts = ts
        if flags & F_CHUNK:
            self.last_chunk = offset
        if pos - self._idx_at >= INDEX_EVERY:
            self._idx_at = pos
            self.idx_off.append(offset)
            self.idx_pos.append(pos)
            self.idx_ts.append(ts)

    def index_record(self) -> bytes:
        parts = [ENTRY.pack(o, p, t) for o, p, t in zip(self.idx_off, self.idx_pos, self.idx_ts)]
        return _sealed(K_INDEX, b"".join(parts))

    def seal_record(self, index_pos: int) -> bytes:
        rec = SEAL_REC.pack(MAGIC, K_SEAL, SEAL_REC.size - HDR.size, self.first, self.next,
                            self.first_ts, self.last_ts, self.last_chunk & (2**64 - 1),
                            index_pos, self.count)
        return rec + CRC.pack(crc32(rec))

    def __repr__(self) -> str:
        return f"Segment({self.first}..{self.next}, {self.size} B, sealed={self.sealed})"


def valid_at(data: bytes, p: int) -> int:
    """End of the valid record at `p` of `data`, or -1 (also when it is incomplete)."""
    if len(data) - p < OVERHEAD:
        return -1
    magic, kind, n = HDR.unpack_from(data, p)
    end = p + OVERHEAD + n
    if magic != MAGIC or kind not in KINDS or end > len(data):
        return -1
    if crc32(memoryview(data)[p:end - 4]) != CRC.unpack_from(data, end - 4)[0]:
        return -1
    return end


def find_valid(fd: int, pos: int, limit: int) -> int | None:
    """After a bad record: the file position of the next valid record before `limit`."""
    magic = bytes((MAGIC,))
    while pos < limit:
        block = os.pread(fd, min(SCAN_BUF, limit - pos), pos)
        if not block:
            return None
        i = block.find(magic)
        while i >= 0:
            cand = pos + i
            head = block[i:i + 6] if len(block) - i >= 6 else os.pread(fd, 6, cand)
            if len(head) == 6:
                kind, n = head[1], HDR.unpack(head)[2]
                if kind in KINDS and cand + OVERHEAD + n <= limit:
                    rec = os.pread(fd, OVERHEAD + n, cand)
                    if valid_at(rec, 0) == len(rec):
                        return cand
            i = block.find(magic, i + 1)
        pos += len(block)
    return None


def iter_records(fd: int, pos: int, limit: int) -> Iterator[tuple[int, int, bytes, int]]:
    """(file position, kind, buffer, start in buffer) of each valid record from `pos`;
    at the first bad one, (its position, BAD, b"", 0) and the end."""
    buf, base, p = b"", pos, 0
    while base + p < limit:
        if len(buf) - p < OVERHEAD or p + OVERHEAD + HDR.unpack_from(buf, p)[2] > len(buf):
            need = OVERHEAD if len(buf) - p < 6 else OVERHEAD + HDR.unpack_from(buf, p)[2]
            fpos = base + p
            if need > limit - fpos:
                yield fpos, BAD, b"", 0
                return
            buf, base, p = os.pread(fd, min(max(SCAN_BUF, need), limit - fpos), fpos), fpos, 0
            if len(buf) < need:  # the file is shorter than it was said to be
                yield fpos, BAD, b"", 0
                return
            continue
        end = valid_at(buf, p) if buf[p] == MAGIC else -1
        if end < 0:
            yield base + p, BAD, b"", 0
            return
        yield base + p, buf[p + 1], buf, p
        p = end


def read_sealed(fd: int, first: int, size: int) -> Segment | None:
    """A closed segment from its SEAL and INDEX records, or None if they are not intact."""
    if size < SEAL_SIZE:
        return None
    tail = os.pread(fd, SEAL_SIZE, size - SEAL_SIZE)
    if valid_at(tail, 0) != SEAL_SIZE or tail[1] != K_SEAL:
        return None
    _, _, _, f, nxt, fts, lts, chunk, ipos, count = SEAL_REC.unpack_from(tail)
    if f != first or ipos >= size - SEAL_SIZE:
        return None
    irec = os.pread(fd, size - SEAL_SIZE - ipos, ipos)
    if valid_at(irec, 0) != len(irec) or irec[1] != K_INDEX:
        return None
    seg = Segment(first)
    seg.next, seg.size, seg.count, seg.first_ts, seg.last_ts = nxt, size, count, fts, lts
    seg.last_chunk = chunk if chunk < 2**63 else -1
    seg.sealed = True
    for o, p, t in ENTRY.iter_unpack(irec[HDR.size:-4]):
        seg.idx_off.append(o)
        seg.idx_pos.append(p)
        seg.idx_ts.append(t)
    return seg


def scan_segment(fd: int, path: Path, first: int, size: int, tail: bool) -> Segment:
    """Rebuild a segment's state by reading every record; cut a torn tail if `tail`."""
    seg = Segment(first)
    pos = 0
    sealed_at = -1
    while pos < size:
        bad = -1
        for p, kind, buf, s in iter_records(fd, pos, size):
            if kind == BAD:
                bad = p
                break
            n = HDR.unpack_from(buf, s)[2]
            pos = p + OVERHEAD + n
            if kind == K_MSG:
                _, _, _, off, ts, flags = MSG_HEAD.unpack_from(buf, s)[:6]
                seg.note(off, p, ts, flags)
            elif kind == K_SEAL:
                sealed_at = pos
        if bad < 0:
            break
        nxt = find_valid(fd, bad + 1, size)
        if nxt is None:
            if tail:
                log.warning("stream.torn_tail", file=str(path), offset=bad, dropped=size - bad)
                os.ftruncate(fd, bad)
                size = bad
            else:
                log.error("stream.corrupt_tail", file=str(path), offset=bad, skipped=size - bad)
            break
        log.error("stream.corrupt_record", file=str(path), offset=bad, skipped=nxt - bad)
        pos = nxt
    seg.size = size
    seg.sealed = sealed_at == size or not tail
    return seg


class StreamRecord(NamedTuple):
    offset: int
    timestamp_ms: int
    exchange: str
    routing_key: str
    properties: bytes
    body: bytes


def _enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


class StreamCursor:
    """An independent reader over a `StreamLog` (see `store.stream_log`): reads the
    segment files through a bounded buffer, checks every CRC, skips INDEX/SEAL records,
    moves on to the next segment at the end of a closed one."""

    __slots__ = ("_log", "_seg", "_buf", "_mv", "_base", "_p", "_min_off", "_min_ts",
                 "_filters", "_unfiltered", "_next", "_strs", "keep_filter_value",
                 "filter_value")

    def __init__(self, log_: StreamLog, seg: Segment, pos: int, min_off: int, min_ts: int,
                 filters: Iterable[str] | None, match_unfiltered: bool) -> None:
        self._log = log_
        self._seg = seg
        self._buf = b""
        self._mv = memoryview(self._buf)
        self._base, self._p = pos, 0
        self._min_off, self._min_ts = min_off, min_ts
        self._filters = None if filters is None else frozenset(_enc(f) for f in filters)
        self._unfiltered = match_unfiltered
        self._next = min_off
        self._strs: dict[bytes, str] = {}
        self.keep_filter_value = False  # set: `filter_value` is the last record's
        self.filter_value: str | None = None

    @property
    def offset(self) -> int:
        """The lowest offset the next record can have."""
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
        """The next matching record, or None when the cursor has caught up."""
        head, msg_head, crc_at = HDR.unpack_from, MSG_HEAD.unpack_from, CRC.unpack_from
        while True:
            seg = self._seg
            if seg.deleted:  # behind the retention point: on from the first retained
                if self._log._closed:
                    return None
                self._move(self._log._segs[0], 0)
                self._min_off = self._next
                continue
            buf, p = self._buf, self._p
            have = len(buf) - p
            need = OVERHEAD + head(buf, p)[2] if have >= 6 else OVERHEAD
            if have < need:
                if not self._refill(seg, need):
                    return None
                continue
            end = p + need
            if buf[p] != MAGIC or crc32(self._mv[p:end - 4]) != crc_at(buf, end - 4)[0]:
                self._resync(seg)
                continue
            self._p = end
            if buf[p + 1] != K_MSG:
                continue  # INDEX / SEAL at a segment's end
            _, _, _, off, ts, flags, exl, rkl, fvl, pl = msg_head(buf, p)
            if off < self._min_off or ts < self._min_ts:
                continue
            self._next = off + 1
            s = p + 33
            if self._filters is not None:
                if flags & F_FILTER:
                    if buf[s + exl + rkl:s + exl + rkl + fvl] not in self._filters:
                        continue
                elif not self._unfiltered:
                    continue
            strs = self._strs
            b = buf[s:s + exl]
            ex = strs.get(b)
            if ex is None:
                ex = self._intern(b)
            s += exl
            b = buf[s:s + rkl]
            rk = strs.get(b)
            if rk is None:
                rk = self._intern(b)
            s += rkl
            if self.keep_filter_value:
                self.filter_value = (buf[s:s + fvl].decode("utf-8", "surrogatepass")
                                     if flags & F_FILTER else None)
            s += fvl
            return tuple.__new__(StreamRecord,
                                 (off, ts, ex, rk, buf[s:s + pl], buf[s + pl:end - 4]))

    def _intern(self, b: bytes) -> str:
        if len(self._strs) > 4096:
            self._strs.clear()
        s = self._strs[b] = b.decode("utf-8", "surrogatepass")
        return s

    def _move(self, seg: Segment, pos: int) -> None:
        self._seg, self._base, self._p = seg, pos, 0
        self._buf = b""
        self._mv = memoryview(self._buf)

    def _refill(self, seg: Segment, need: int) -> bool:
        fpos = self._base + self._p
        limit = seg.size
        if self._log._closed:
            return False
        if fpos >= limit:
            if not seg.sealed:
                return False  # caught up with what was written
            nxt = self._log._after(seg)
            if nxt is None:
                return False
            self._move(nxt, 0)
            return True
        if fpos + need > limit:  # a header that lies: corruption
            self._resync(seg)
            return True
        data = os.pread(self._log._rfd(seg), min(max(READ_BUF, need), limit - fpos), fpos)
        self._buf, self._mv, self._base, self._p = data, memoryview(data), fpos, 0
        return True

    def _resync(self, seg: Segment) -> None:
        fpos = self._base + self._p
        nxt = find_valid(self._log._rfd(seg), fpos + 1, seg.size)
        log.error("stream.corrupt_record", segment=seg.first, offset=fpos,
                  skipped=(seg.size if nxt is None else nxt) - fpos)
        self._move(seg, seg.size if nxt is None else nxt)

    def close(self) -> None:
        self._buf = b""
        self._mv = memoryview(self._buf)
