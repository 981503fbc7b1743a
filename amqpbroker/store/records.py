"""Record format of the disk message log, and the recovery scan (see `store.disk`).

A segment file (`0000000001.seg`, ...) is a sequence of records; nothing else (no file
header), so a segment can be read from any record boundary. Every record is

    u8 magic (0xA7) | u8 kind | u32 payload length N | payload (N bytes) | u32 crc32

all little-endian; the CRC (`zlib.crc32`) covers magic, kind, length and payload, so a torn
or corrupted length field is caught as well. A record's *position* is
`segment_id << 32 | offset`; it never repeats (segment ids only grow), so positions double
as identifiers: a message's `store_id` is the position of the record that first wrote it,
and every enqueue gets a `seq` that is the position of the record that first wrote it.
Queue order is seq order, so records may be moved around (compaction) or duplicated (a
crash during compaction) without changing the recovered state. Payloads (N = payload len):

MSG (1)    u64 store_id | u64 seq (0 = content only) | u8 flags (1 persistent, 2 has
           expiration) | u8 priority | u16 len(exchange) | u16 len(routing key)
           | u16 len(expiration) | u32 len(properties) | u32 len(queue key)
           | u64 enqueue time (ms since the epoch)
           | exchange | routing key | expiration | properties | body | queue key
           The first add of a message: its content plus its enqueue on that first queue
           (seq == store_id). Body length = N - 40 - the other lengths.
ENQ (2)    u64 store_id | u64 seq | queue key           - a further queue (fanout)
MARK (3)   u64 store_id | u64 seq | queue key           - delivered at least once
REMOVE (4) u64 store_id | u64 seq | u32 target segment  - the enqueue `seq` is gone
           (`target` = the segment that held that enqueue record when it was removed:
           the tombstone must be kept while that segment exists)
QDEL (5)   u64 upto | u32 n | n x u32 target segments | queue key
           - every enqueue of the queue with seq < upto is gone (queue.delete)

Strings are UTF-8 ("surrogatepass", so any Python str round-trips, NUL and '/' included).

Index keys (`scan(directory, index_prefix)`): the messages of queue keys that start with the
prefix (delayed messages' timer keys, model/delayed_store.py) are recovered as an index,
`time << 64 | store_id` per message (time: the MSG record's time field), with no Message
object; a million of them must recover in the RAM the live index takes. Such keys hold
messages written by their own MSG record only (no ENQ / MARK records refer to them).
"""

from __future__ import annotations

import gc
import struct
from array import array
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from zlib import crc32

import structlog

from amqpbroker.message import Message

log = structlog.get_logger()


class StoreError(Exception):
    """A store operation failed (disk full, permission denied, I/O error, corruption...).

    Raised by `sync()` (and `add`, `load_body`, `append`... when they touch the disk); the
    broker should nack / close what depended on it. The store stays usable for reads."""


MAGIC = 0xA7
MAGIC_B = bytes([MAGIC])
K_MSG, K_ENQ, K_MARK, K_REMOVE, K_QDEL = 1, 2, 3, 4, 5
KINDS = frozenset((K_MSG, K_ENQ, K_MARK, K_REMOVE, K_QDEL))

HDR = struct.Struct("<BBI")  # magic, kind, payload length
CRC = struct.Struct("<I")
OVERHEAD = HDR.size + CRC.size  # 10
# header + MSG fixed fields (46 bytes); the last u64 is the enqueue time (wall clock, ms),
# so that TTL deadlines survive a restart.
MSG_HEAD = struct.Struct("<BBIQQBBHHHIIQ")
MSG_FIXED = MSG_HEAD.size - HDR.size  # 40
MSG_SIZE = MSG_HEAD.size
REF_HEAD = struct.Struct("<BBIQQ")  # ENQ / MARK header + store_id + seq (22 bytes)
REF_OVERHEAD = REF_HEAD.size + CRC.size  # 26 + len(queue key)
REMOVE_REC = struct.Struct("<BBIQQI")
REMOVE_SIZE = REMOVE_REC.size + CRC.size  # 30
QDEL_HEAD = struct.Struct("<BBIQI")
U32 = struct.Struct("<I")
M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1
MAX_PAYLOAD = M32 - 64

F_PERSISTENT = 1
F_EXPIRATION = 2


def enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogatepass")


def seal(rec: bytes | bytearray) -> bytes:
    """The CRC trailer of a record whose bytes before the trailer are `rec`."""
    return CRC.pack(crc32(rec))


def record_end(data: bytes, pos: int, size: int) -> int:
    """End offset of the valid record starting at `pos`, or -1."""
    if size - pos < OVERHEAD:
        return -1
    magic, kind, n = HDR.unpack_from(data, pos)
    end = pos + OVERHEAD + n
    if magic != MAGIC or kind not in KINDS or end > size:
        return -1
    if crc32(memoryview(data)[pos : end - 4]) != CRC.unpack_from(data, end - 4)[0]:
        return -1
    return end


def resync(data: bytes, pos: int, size: int) -> int | None:
    """After a bad record at `pos`: the offset of the next valid record, or None.

    First trust the bad record's own length field (a flipped byte in a payload leaves it
    intact), then scan forward for the magic byte."""
    if size - pos >= OVERHEAD:
        magic, kind, n = HDR.unpack_from(data, pos)
        nxt = pos + OVERHEAD + n
        if magic == MAGIC and kind in KINDS and nxt < size and record_end(data, nxt, size) > 0:
            return nxt
    i = pos + 1
    while True:
        i = data.find(MAGIC_B, i, size)
        if i < 0:
            return None
        if record_end(data, i, size) > 0:
            return i
        i += 1


def segment_path(directory: Path, seg: int) -> Path:
    return directory / f"{seg:010d}.seg"


def list_segments(directory: Path) -> list[int]:
    segs = []
    for p in directory.glob("*.seg"):
        if p.stem.isdigit():
            segs.append(int(p.stem))
    return sorted(segs)


class Recovered:
    """The state rebuilt from the segment files (`scan`), ready for the store to adopt."""

    def __init__(self) -> None:
        self.segments: list[int] = []
        self.sizes: dict[int, int] = {}
        self.result: dict[str, list[tuple[Message, bool]]] = {}
        self.index: dict[str, list[int]] = {}  # index keys: time << 64 | store_id each
        self.msgs: dict[int, int] = {}  # store_id -> meta (see DiskMessageStore)
        self.queues: dict[str, dict[int, int]] = {}  # queue -> store_id -> ref value
        self.live_n: dict[int, int] = {}
        self.live_b: dict[int, int] = {}
        self.pairs: dict[int, dict[int, int]] = {}
        self.qdels: dict[tuple[int, int], tuple[int, set[int]]] = {}
        self.reloc: dict[int, set[int]] = {}
        self.records = 0
        self.corrupt = 0
        self.truncated = 0


def scan(directory: Path, index_prefix: str = "", lean: bool = False) -> Recovered:
    """Read every segment in order, verify every record, rebuild the live state; keys
    starting with `index_prefix` (if any) are recovered as an index (`Recovered.index`).
    `lean`: every queue's messages come back as `RecoveredRefs` (store ids and body sizes
    in arrays), not as Message objects: a deep backlog recovers in the memory it ran in."""
    t0 = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of new objects, no cycles: collections would only cost time
    try:
        rec = _scan(directory, index_prefix, lean)
    finally:
        if gc_was_enabled:
            gc.enable()
    log.info(
        "store.recovered",
        directory=str(directory),
        segments=len(rec.segments),
        records=rec.records,
        messages=len(rec.msgs),
        queues=len(rec.queues),
        refs=sum(len(v) for v in rec.queues.values()),
        corrupt_records=rec.corrupt,
        truncated_bytes=rec.truncated,
        seconds=round(time.perf_counter() - t0, 3),
    )
    return rec


def _scan(directory: Path, index_prefix: str, lean_mode: bool) -> Recovered:
    rec = Recovered()
    segs = list_segments(directory)
    rec.segments = segs
    # store_id -> (seg, offset, content length, seq (0 = content only), queue, message)
    contents: dict[int, tuple[int, int, int, int, str | None, Message]] = {}
    enqs: dict[int, tuple[str, int, int, int]] = {}  # ENQ records: seq -> q, sid, seg, size
    marks: dict[int, tuple[int, int]] = {}  # seq -> seg, size
    removed: set[int] = set()
    tombs: list[tuple[int, int]] = []  # (segment of a REMOVE, its target)
    qdel_upto: dict[str, int] = {}
    qdel_recs: list[tuple[int, int, int, tuple[int, ...]]] = []
    reloc = rec.reloc
    # Index keys: per key, 4 u64 per MSG record (time, store_id, position, content
    # length) in flat arrays, not objects; `moved` = store ids with a record that is not
    # where it was first written (compaction), whose duplicates _build_index resolves.
    indexed: dict[str, array | None] = {}
    moved: set[int] = set()
    # Lean recovery: per queue, 4 u64 per MSG record with its own queue part (store_id,
    # position, content length, body size | flags << 40); other records go to `contents`.
    lean: dict[str, array] | None = {} if lean_mode else None
    strs: dict[bytes, str] = {}
    rks: dict[bytes, str] = {}
    propss: dict[bytes, bytes] = {}
    msg_head = MSG_HEAD.unpack_from
    ref_head = REF_HEAD.unpack_from
    hdr = HDR.unpack_from
    crc_at = CRC.unpack_from
    new_msg = Message
    n_records = 0
    l_exb = l_rkb = l_qb = b"\xff" * 70000  # the previous record's strings (never matched)
    l_ex = l_rk = l_q = ""
    reader = ThreadPoolExecutor(1, thread_name_prefix="store-recovery")
    nxt_read = reader.submit(_read, directory, segs[0]) if segs else None
    for i, seg in enumerate(segs):
        path = segment_path(directory, seg)
        assert nxt_read is not None
        data = nxt_read.result()  # read in the background while the previous was parsed
        if i + 1 < len(segs):
            nxt_read = reader.submit(_read, directory, segs[i + 1])
        size = len(data)
        mv = memoryview(data)
        pos = 0
        while pos < size:
            if size - pos >= MSG_SIZE and data[pos + 1] == K_MSG:  # the common case, one unpack
                magic, kind, n, sid, seq, flags, prio, exl, rkl, expl, propl, ql, ts = msg_head(
                    data, pos)
            elif size - pos >= OVERHEAD:
                magic, kind, n = hdr(data, pos)
            else:
                magic = kind = n = -1
            end = pos + OVERHEAD + n
            if (
                magic != MAGIC
                or end > size
                or crc32(mv[pos : end - 4]) != crc_at(data, end - 4)[0]
                or kind not in KINDS
            ):
                nxt = resync(data, pos, size)
                if nxt is None and i == len(segs) - 1:
                    log.warning("store.torn_tail", file=str(path), offset=pos, dropped=size - pos)
                    try:
                        with open(path, "r+b") as f:
                            f.truncate(pos)
                    except OSError as e:
                        raise StoreError(f"cannot truncate torn segment {path}: {e}") from e
                    rec.truncated += size - pos
                    size = pos
                    break
                rec.corrupt += 1
                skipped = (size if nxt is None else nxt) - pos
                log.error("store.corrupt_record", file=str(path), offset=pos, skipped=skipped)
                if nxt is None:
                    break
                pos = nxt
                continue
            n_records += 1
            if kind == K_MSG:
                if not seq:
                    qk = None
                elif ql == len(l_qb) and data.startswith(l_qb, end - 4 - ql):
                    qk = l_q
                else:
                    l_qb = data[end - 4 - ql : end - 4]
                    qk = strs.get(l_qb)
                    if qk is None:
                        qk = strs[l_qb] = dec(l_qb)
                    l_q = qk
                if index_prefix and qk is not None and seq == sid:
                    arr = indexed.get(qk, 0)
                    if arr == 0:
                        arr = indexed[qk] = array("Q") if qk.startswith(index_prefix) else None
                    if arr is not None:  # an index key: four ints, no Message
                        loc = (seg << 32) | pos
                        if loc != sid:
                            moved.add(sid)
                        arr.extend((ts, sid, loc, end - pos - ql))
                        pos = end
                        continue
                if lean is not None and qk is not None and seq == sid:
                    arr = lean.get(qk)
                    if arr is None:
                        arr = lean[qk] = array("Q")
                    loc = (seg << 32) | pos
                    if loc != sid:
                        moved.add(sid)
                    arr.extend((sid, loc, end - pos - ql,
                                (n - MSG_FIXED - exl - rkl - expl - propl - ql)
                                | (flags & (F_PERSISTENT | F_EXPIRATION)) << 40))
                    pos = end
                    continue
                p = pos + MSG_SIZE
                if exl == len(l_exb) and data.startswith(l_exb, p):
                    ex = l_ex  # same as the previous record's: no slice, no lookup
                else:
                    l_exb = data[p : p + exl]
                    ex = strs.get(l_exb)
                    if ex is None:
                        ex = strs[l_exb] = dec(l_exb)
                    l_ex = ex
                p += exl
                if rkl == len(l_rkb) and data.startswith(l_rkb, p):
                    rk = l_rk
                else:
                    l_rkb = data[p : p + rkl]
                    rk = rks.get(l_rkb)
                    if rk is None:
                        rk = dec(l_rkb)
                        if len(rks) < 65536:
                            rks[l_rkb] = rk
                    l_rk = rk
                p += rkl
                if flags & F_EXPIRATION:
                    exp = dec(data[p : p + expl])
                    p += expl
                else:
                    exp = None
                props = data[p : p + propl]
                shared = propss.get(props)  # publishers repeat their properties: share them
                if shared is None:
                    if len(propss) < 65536:
                        propss[props] = props
                else:
                    props = shared
                msg = new_msg(ex, rk, props, None, n - MSG_FIXED - exl - rkl - expl - propl - ql,
                              flags & F_PERSISTENT == F_PERSISTENT, prio, exp)
                msg.store_id = sid
                msg.enqueued_ms = ts
                t = (seg, pos, end - pos - ql, seq, qk, msg)
                old = contents.setdefault(sid, t)
                if old is not t:  # a copy (compaction): the later one is current
                    if old[0] != seg:
                        reloc.setdefault(seg, set()).add(old[0])
                    contents[sid] = t
            elif kind == K_MARK:
                seq = ref_head(data, pos)[4]
                marks[seq] = (seg, end - pos)
            elif kind == K_ENQ:
                _, _, _, sid, seq = ref_head(data, pos)
                b = data[pos + 22 : end - 4]
                qk = strs.get(b)
                if qk is None:
                    qk = strs[b] = dec(b)
                old_e = enqs.get(seq)
                if old_e is not None and old_e[2] != seg:
                    reloc.setdefault(seg, set()).add(old_e[2])
                enqs[seq] = (qk, sid, seg, end - pos)
            elif kind == K_REMOVE:
                _, _, _, sid, seq, target = REMOVE_REC.unpack_from(data, pos)
                removed.add(seq)
                tombs.append((seg, target))
            else:  # K_QDEL
                _, _, _, upto, nt = QDEL_HEAD.unpack_from(data, pos)
                targets = struct.unpack_from(f"<{nt}I", data, pos + 18)
                qk = dec(data[pos + 18 + 4 * nt : end - 4])
                if upto > qdel_upto.get(qk, 0):
                    qdel_upto[qk] = upto
                qdel_recs.append((seg, pos, end - pos, targets))
            pos = end
        rec.sizes[seg] = size
        del mv, data
    reader.shutdown()
    rec.records = n_records
    _build(rec, contents, enqs, marks, removed, tombs, qdel_upto, qdel_recs, lean, moved)
    for qk, arr in indexed.items():
        if arr is not None:
            _build_index(rec, qk, arr, moved, removed, qdel_upto.get(qk, 0))
    return rec


def _read(directory: Path, seg: int) -> bytes:
    path = segment_path(directory, seg)
    try:
        return path.read_bytes()
    except OSError as e:
        raise StoreError(f"cannot read segment {path}: {e}") from e


def _build(
    rec: Recovered,
    contents: dict[int, tuple[int, int, int, int, str | None, Message]],
    enqs: dict[int, tuple[str, int, int, int]],
    marks: dict[int, tuple[int, int]],
    removed: set[int],
    tombs: list[tuple[int, int]],
    qdel_upto: dict[str, int],
    qdel_recs: list[tuple[int, int, int, tuple[int, ...]]],
    lean: dict[str, array] | None = None,
    moved: set[int] | None = None,
) -> None:
    segset = set(rec.segments)
    live_n = rec.live_n = dict.fromkeys(rec.segments, 0)
    live_b = rec.live_b = dict.fromkeys(rec.segments, 0)
    queues = rec.queues
    result = rec.result
    seqs: dict[str, list[int]] = {}  # per queue, the seqs in the order appended
    unsorted: set[str] = set()
    msgs = rec.msgs

    def ref(q: str, seq: int, sid: int, v: int, mk: tuple[int, int] | None,
            c: tuple | None = None) -> None:
        if c is None:
            c = contents[sid]
        if mk is not None:
            live_n[mk[0]] += 1
            live_b[mk[0]] += mk[1]
        if lean is not None:
            refs = result.get(q)
            if refs is None:
                refs = result[q] = RecoveredRefs()  # type: ignore[assignment]
                queues[q] = {}
            refs.add(sid, mk is not None, c[5], seq)  # type: ignore[attr-defined]
        else:
            sl = seqs.get(q)
            if sl is None:
                sl = seqs[q] = []
                queues[q] = {}
                result[q] = []
            if sl and sl[-1] > seq:
                unsorted.add(q)
            sl.append(seq)
            result[q].append((c[5], mk is not None))
        queues[q][sid] = v
        meta = msgs.get(sid)
        if meta is None:  # first live reference: the content is live
            loc = (c[0] << 32) | c[1]
            msgs[sid] = c[2] if loc == sid else (1 << 96) | (c[2] << 64) | loc
            live_n[c[0]] += 1
            live_b[c[0]] += c[2]
        elif meta < 1 << 64:
            msgs[sid] = (2 << 96) | (meta << 64) | sid
        else:
            msgs[sid] = meta + (1 << 96)

    qlens: dict[str, int] = {}
    lens: dict[int, int] = {}
    cur_q = None
    for sid, (seg, pos, clen, seq, q, msg) in contents.items():
        if not seq or seq in removed or (qdel_upto and seq < qdel_upto.get(q, 0)):  # type: ignore[arg-type]
            continue
        mk = marks.get(seq) if marks else None
        if lean is not None:  # (a record the writer does not make: seq != store id)
            live_n[seg] += 1
            live_b[seg] += len(enc(q))  # type: ignore[arg-type]
            ref(q, seq, sid, 0 if mk is None else (seq << 64) | mk[0], mk)  # type: ignore[arg-type]
            continue
        if q is not cur_q:
            cur_q = q
            ql = qlens.get(q)  # type: ignore[arg-type]
            if ql is None:
                ql = qlens[q] = len(enc(q))  # type: ignore[arg-type, index]
            sl = seqs.get(q)  # type: ignore[arg-type]
            if sl is None:
                sl = seqs[q] = []  # type: ignore[index]
                queues[q] = {}  # type: ignore[index]
                result[q] = []  # type: ignore[index]
            qd = queues[q]  # type: ignore[index]
            res = result[q]  # type: ignore[index]
        if mk is None and (seg << 32) | pos == sid and sid not in msgs:  # the common case
            live_n[seg] += 2
            live_b[seg] += ql + clen
            msgs[sid] = lens.setdefault(clen, clen)  # one int per length (DiskMessageStore._lens)
            if sl and sl[-1] > seq:
                unsorted.add(q)  # type: ignore[arg-type]
            sl.append(seq)
            qd[sid] = 0
            res.append((msg, False))
            continue
        live_n[seg] += 1
        live_b[seg] += ql
        ref(q, seq, sid, 0 if mk is None else (seq << 64) | mk[0], mk)  # type: ignore[arg-type]
    lean_contents: dict[int, tuple] = {}
    if lean:
        need = {e[1] for e in enqs.values()}
        for q, arr in lean.items():
            _build_lean(q, arr, rec, contents, marks, removed, qdel_upto.get(q, 0),
                        moved or set(), need, lean_contents, ref)
    dropped = 0
    for seq, (q, sid, seg, size) in enqs.items():
        if seq in removed or seq < qdel_upto.get(q, 0):
            continue
        c = contents.get(sid) or lean_contents.get(sid)
        if c is None or sid in queues.get(q, ()):
            dropped += 1  # content lost, or a second enqueue whose remove was lost (corruption)
            continue
        mk = marks.get(seq)
        live_n[seg] += 1
        live_b[seg] += size
        ref(q, seq, sid, (seq << 64) | (seg << 32) | (0 if mk is None else mk[0]), mk, c)
    if dropped:
        log.error("store.refs_dropped", count=dropped)
    for q, refs in result.items() if lean is not None else ():
        if refs.unsorted:  # type: ignore[attr-defined]
            refs.sort()  # type: ignore[attr-defined]
            qd = queues[q]
            queues[q] = {sid: qd[sid] for sid in refs.store_ids()}  # type: ignore[attr-defined]
    for q in unsorted:  # moved records or fanout: put the queue in seq order
        sl = seqs[q]
        order = sorted(range(len(sl)), key=sl.__getitem__)
        qd, res = queues[q], result[q]
        result[q] = [res[i] for i in order]
        queues[q] = {m.store_id: qd[m.store_id] for m, _ in result[q]}
    pairs = rec.pairs
    for seg, target in tombs:
        if target != seg and target in segset:
            live_n[seg] += 1
            live_b[seg] += REMOVE_SIZE
            d = pairs.setdefault(target, {})
            d[seg] = d.get(seg, 0) + 1
    for seg, off, size, targets in qdel_recs:
        alive = {t for t in targets if t != seg and t in segset}
        if alive:
            live_n[seg] += 1
            live_b[seg] += size
            rec.qdels[(seg, off)] = (size, alive)


def _build_lean(q: str, arr: array, rec: Recovered, contents: dict[int, tuple],
                marks: dict[int, tuple[int, int]], removed: set[int], upto: int,
                moved: set[int], need: set[int], lean_contents: dict[int, tuple],
                ref: Any) -> None:
    """A queue's lean records (`scan(lean=True)`): the store's bookkeeping exactly as
    `_build` makes it from Message records, and `rec.result[q]` as RecoveredRefs."""
    last: dict[int, int] = {}  # moved store id -> index of its last record (the current one)
    reloc = rec.reloc
    if moved:
        for i in range(0, len(arr), 4):
            sid = arr[i]
            if sid in moved:
                prev = last.get(sid)
                if prev is not None and arr[prev + 1] >> 32 != arr[i + 1] >> 32:
                    reloc.setdefault(arr[i + 1] >> 32, set()).add(arr[prev + 1] >> 32)
                last[sid] = i
    ql = len(enc(q))
    live_n, live_b, msgs, queues = rec.live_n, rec.live_b, rec.msgs, rec.queues
    refs = rec.result.get(q)
    if refs is None:
        refs = rec.result[q] = RecoveredRefs()  # type: ignore[assignment]
        queues[q] = {}
    qd = queues[q]
    add = refs.add  # type: ignore[attr-defined]
    lens: dict[int, int] = {}
    for i in range(0, len(arr), 4):
        sid = arr[i]
        if last and last.get(sid, i) != i:
            continue  # an older copy
        loc = arr[i + 1]
        seg = loc >> 32
        c = contents.get(sid)
        if c is not None:  # a later content-only copy (compaction): this queue part is gone
            if c[0] != seg:
                reloc.setdefault(c[0], set()).add(seg)
            continue
        clen = arr[i + 2]
        if sid in need:
            lean_contents[sid] = (seg, loc & M32, clen, sid, q, arr[i + 3])
        if sid in removed or sid < upto:
            continue
        mk = marks.get(sid) if marks else None
        if mk is None and loc == sid and sid not in msgs:  # the common case
            live_n[seg] += 2
            live_b[seg] += ql + clen
            msgs[sid] = lens.setdefault(clen, clen)
            qd[sid] = 0
            add(sid, False, arr[i + 3], sid)
            continue
        live_n[seg] += 1
        live_b[seg] += ql
        ref(q, sid, sid, 0 if mk is None else (sid << 64) | mk[0], mk,
            (seg, loc & M32, clen, sid, q, arr[i + 3]))
    if not qd:  # nothing of it is live
        del queues[q], rec.result[q]


class RecoveredRefs:
    """A queue's recovered messages without Message objects (`scan(..., lean=True)`), in
    queue order: `ids` holds each store id, with bit 63 set for a message delivered before
    the restart (redelivered); `sizes` their body sizes. `expiring`: some message has an
    expiration; `transient`: some message is not persistent (a quorum queue stores those
    too). The messages themselves are read with `load_messages`."""

    REDELIVERED = 1 << 63
    __slots__ = ("ids", "sizes", "seqs", "expiring", "transient", "unsorted")

    def __init__(self) -> None:
        self.ids = array("Q")
        self.sizes = array("I")  # (a body is at most 512 MiB: max_message_size)
        self.seqs = array("Q")
        self.expiring = self.transient = self.unsorted = False

    def add(self, sid: int, redelivered: bool, what: Any, seq: int) -> None:
        """`what`: the record's body size | flags << 40 (a lean record), or its Message."""
        if isinstance(what, Message):
            size, persistent, expiring = what.body_size, what.persistent, what.expiration is not None
        else:
            size = what & LEAN_SIZE
            persistent = bool(what >> 40 & F_PERSISTENT)
            expiring = bool(what >> 40 & F_EXPIRATION)
        if not persistent:
            self.transient = True
        if expiring:
            self.expiring = True
        seqs = self.seqs
        if seqs and seqs[-1] > seq:
            self.unsorted = True
        seqs.append(seq)
        self.ids.append(sid | self.REDELIVERED if redelivered else sid)
        self.sizes.append(size)

    def sort(self) -> None:
        order = sorted(range(len(self.seqs)), key=self.seqs.__getitem__)
        self.ids = array("Q", [self.ids[i] for i in order])
        self.sizes = array("I", [self.sizes[i] for i in order])
        self.seqs = array("Q", [self.seqs[i] for i in order])
        self.unsorted = False

    def store_ids(self) -> list[int]:
        mask = self.REDELIVERED - 1
        return [sid & mask for sid in self.ids]

    def __len__(self) -> int:
        return len(self.ids)


LEAN_SIZE = (1 << 40) - 1


def _build_index(rec: Recovered, q: str, arr: array, moved: set[int], removed: set[int],
                 upto: int) -> None:
    """An index key's live messages: the store's bookkeeping exactly as `_build` makes it
    for a queue (so the store cannot tell the difference), and `rec.index[q]`."""
    last: dict[int, int] = {}  # moved store id -> index of its last record (the current one)
    if moved:
        for i in range(0, len(arr), 4):
            sid = arr[i + 1]
            if sid in moved:
                prev = last.get(sid)
                if prev is not None and arr[prev + 2] >> 32 != arr[i + 2] >> 32:
                    rec.reloc.setdefault(arr[i + 2] >> 32, set()).add(arr[prev + 2] >> 32)
                last[sid] = i
    ql = len(enc(q))
    live_n, live_b, msgs = rec.live_n, rec.live_b, rec.msgs
    qd: dict[int, int] = {}
    out: list[int] = []
    for i in range(0, len(arr), 4):
        sid = arr[i + 1]
        if sid in removed or sid < upto or (last and last.get(sid, i) != i):
            continue
        loc = arr[i + 2]
        clen = arr[i + 3]
        seg = loc >> 32
        live_n[seg] += 2
        live_b[seg] += ql + clen
        msgs[sid] = clen if loc == sid else (1 << 96) | (clen << 64) | loc
        qd[sid] = 0
        out.append((arr[i] << 64) | sid)
    if qd:
        prev = rec.queues.get(q)
        if prev:  # records of the key outside the index form (not written today)
            qd.update(prev)
        rec.queues[q] = qd
        rec.index[q] = out


def describe(data: bytes, pos: int) -> dict[str, Any]:
    """A record decoded for debugging (tests, tools)."""
    magic, kind, n = HDR.unpack_from(data, pos)
    out: dict[str, Any] = {"kind": kind, "size": n + OVERHEAD}
    if kind == K_MSG:
        f = MSG_HEAD.unpack_from(data, pos)
        out.update(store_id=f[3], seq=f[4])
    elif kind in (K_ENQ, K_MARK):
        f = REF_HEAD.unpack_from(data, pos)
        out.update(store_id=f[3], seq=f[4], queue=dec(data[pos + 22 : pos + n + 6]))
    elif kind == K_REMOVE:
        f = REMOVE_REC.unpack_from(data, pos)
        out.update(store_id=f[3], seq=f[4], target=f[5])
    return out
