"""Tests of the disk store's own machinery: the segment log format, torn writes,
corruption, garbage collection and compaction, paging, disk errors, and the definitions
log."""

from __future__ import annotations

import errno
import os
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from amqpbroker.message import Message
from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore
from amqpbroker.store.records import StoreError, describe, record_end
from test_store_contract import assert_consistent, body_of, make


def opened(directory: Path, **kw: Any) -> tuple[DiskMessageStore, dict[str, list[tuple[Message, bool]]]]:
    store = DiskMessageStore(directory, **{"sync": False, **kw})
    return store, store.recover()


def crash(store: DiskMessageStore) -> None:
    """Drop a store without flushing anything (what a kill -9 leaves behind)."""
    for fd in store._fds.values():
        os.close(fd)
    store._fds.clear()
    store._closed = True


def contents(store: DiskMessageStore, state: dict[str, list[tuple[Message, bool]]]) -> dict[str, list[tuple[bytes, bool]]]:
    return {q: [(body_of(store, m), r) for m, r in lst] for q, lst in state.items() if lst}


def records(path: Path) -> list[tuple[int, int]]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        end = record_end(data, pos, len(data))
        assert end > 0
        out.append((pos, end))
        pos = end
    return out


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in segment_files(directory))


def test_file_format(tmp_path: Path) -> None:
    store, _ = opened(tmp_path)
    m = make(b"hello", rk="r.k")
    store.add("q", m)
    store.add("q2", m)
    store.mark_delivered("q", m)
    store.remove("q", m)
    store.delete_queue("q2")
    store.close()
    (seg,) = segment_files(tmp_path)
    assert seg.name == "0000000001.seg"
    data = seg.read_bytes()
    recs = [describe(data, pos) for pos, _ in records(seg)]
    assert [r["kind"] for r in recs] == [1, 2, 3, 4, 5]
    assert recs[0]["store_id"] == m.store_id == 1 << 32 and recs[0]["seq"] == m.store_id
    assert recs[1]["queue"] == "q2" and recs[1]["seq"] == (1 << 32) + recs[0]["size"]
    assert recs[3]["seq"] == m.store_id and recs[3]["target"] == 1
    store, state = opened(tmp_path)
    assert state == {}
    store.close()


# -- torn writes and corruption --------------------------------------------------------


def _ops_then(store: DiskMessageStore, last: str) -> tuple[list[Message], dict[str, list[tuple[bytes, bool]]], dict[str, list[tuple[bytes, bool]]]]:
    """Some durable operations, then one final operation whose record is the last one.
    Returns the messages and the expected states without and with that last record."""
    msgs = [make(b"m%d-" % i + bytes(range(256)) * 2) for i in range(6)]
    for m in msgs[:5]:
        store.add("q", m)
    store.mark_delivered("q", msgs[0])
    store.remove("q", msgs[1])
    store.add("other", msgs[2])
    store.sync()
    before = {"q": [(msgs[0].body, True)] + [(m.body, False) for m in msgs[2:5]], "other": [(msgs[2].body, False)]}
    after = {k: list(v) for k, v in before.items()}
    if last == "add":
        store.add("q", msgs[5])
        after["q"].append((msgs[5].body, False))
    elif last == "fanout":
        store.add("third", msgs[3])
        after["third"] = [(msgs[3].body, False)]
    elif last == "mark":
        store.mark_delivered("q", msgs[4])
        after["q"][-1] = (msgs[4].body, True)
    elif last == "remove":
        store.remove("q", msgs[3])
        del after["q"][2]
    elif last == "delete_queue":
        store.delete_queue("other")
        del after["other"]
    return msgs, before, after


@pytest.mark.parametrize("last", ["add", "fanout", "mark", "remove", "delete_queue"])
def test_torn_last_record_at_every_offset(tmp_path: Path, last: str) -> None:
    store, _ = opened(tmp_path / "pristine")
    _msgs, before, after = _ops_then(store, last)
    store.close()
    (seg,) = segment_files(tmp_path / "pristine")
    data = seg.read_bytes()
    start, end = records(seg)[-1]
    assert end == len(data)
    work = tmp_path / "work"
    work.mkdir()
    for cut in range(start, end + 1):
        for garbage in (b"", b"\0" * 64):
            if garbage and cut == end:
                continue
            (work / seg.name).write_bytes(data[:cut] + garbage)
            with capture_logs() as logs:
                store, state = opened(work)
            expected = after if cut == end else before
            assert contents(store, state) == expected, (cut, garbage)
            torn = [e for e in logs if e["event"] == "store.torn_tail"]
            if start < cut < end or garbage:
                assert torn and torn[0]["offset"] == start
                assert (work / seg.name).stat().st_size == start
            else:
                assert not torn
            assert not [e for e in logs if e["event"] == "store.corrupt_record"]
            # writable again, and what is written survives
            store.add("q", make(b"after the crash"))
            store.close()
            store, state = opened(work)
            assert contents(store, state)["q"][-1] == (b"after the crash", False)
            store.close()


def test_flipped_byte_in_a_middle_record_of_an_older_segment(tmp_path: Path) -> None:
    store, _ = opened(tmp_path, segment_size=4096)
    msgs = [make(b"%02d" % i + b"x" * 400) for i in range(40)]
    for m in msgs:
        store.add("q", m)
    store.close()
    segs = segment_files(tmp_path)
    assert len(segs) > 3
    recs = records(segs[0])
    pos, end = recs[len(recs) // 2]
    data = bytearray(segs[0].read_bytes())
    data[pos + 100] ^= 0x40  # in the body
    segs[0].write_bytes(data)
    with capture_logs() as logs:
        store, state = opened(tmp_path, segment_size=4096)
    bad = [e for e in logs if e["event"] == "store.corrupt_record"]
    assert len(bad) == 1 and bad[0]["file"] == str(segs[0]) and bad[0]["offset"] == pos
    assert bad[0]["log_level"] == "error"
    lost = len(recs) // 2
    assert [b for b, _ in contents(store, state)["q"]] == [m.body for i, m in enumerate(msgs) if i != lost]
    store.add("q", make(b"still writable"))
    store.close()
    store, state = opened(tmp_path, segment_size=4096)
    assert contents(store, state)["q"][-1][0] == b"still writable"
    assert segs[0].read_bytes() == data  # an older segment is never truncated
    store.close()


def test_corrupted_length_field_resynchronizes(tmp_path: Path) -> None:
    store, _ = opened(tmp_path, segment_size=1 << 20)
    msgs = [make(b"%02d" % i * 50) for i in range(10)]
    for m in msgs:
        store.add("q", m)
    store.close()
    (seg,) = segment_files(tmp_path)
    pos, _ = records(seg)[3]
    data = bytearray(seg.read_bytes())
    data[pos + 3] ^= 0x7F  # payload length
    seg.write_bytes(data)
    with capture_logs() as logs:
        store, state = opened(tmp_path)
    assert [e["offset"] for e in logs if e["event"] == "store.corrupt_record"] == [pos]
    assert [b for b, _ in contents(store, state)["q"]] == [m.body for i, m in enumerate(msgs) if i != 3]
    store.close()


# -- garbage collection and compaction -------------------------------------------------


def test_publish_and_ack_keeps_disk_small(tmp_path: Path) -> None:
    seg_size = 64 << 10
    store, _ = opened(tmp_path, segment_size=seg_size)
    inflight: deque[Message] = deque()
    peak = 0
    for i in range(20000):
        m = make(os.urandom(1024))
        store.add("q", m)
        inflight.append(m)
        if len(inflight) > 100:
            store.mark_delivered("q", inflight[0])
            store.remove("q", inflight.popleft())
        if i % 64 == 0:
            store.sync()
            peak = max(peak, disk_bytes(tmp_path))
    while inflight:
        store.remove("q", inflight.popleft())
    store.sync()
    assert peak <= 5 * seg_size  # 20 MiB went through
    assert disk_bytes(tmp_path) <= 2 * seg_size
    assert store.stats()["messages"] == 0
    store.close()


def test_compaction_bounds_disk_by_what_is_queued(tmp_path: Path) -> None:
    """One message in 50 goes to a queue nobody consumes: without compaction every
    segment would stay (2 % live); with it, disk stays a small multiple of the backlog,
    and the slow queue keeps its order through the moves."""
    seg_size = 64 << 10
    store, _ = opened(tmp_path, segment_size=seg_size, memory_budget=64 << 10)
    slow: list[bytes] = []
    fast: deque[Message] = deque()
    peak_excess = 0
    for i in range(25000):
        m = make(b"%06d" % i + os.urandom(1018))
        if i % 50 == 0:
            store.add("slow", m)
            slow.append(m.body)
        else:
            store.add("fast", m)
            fast.append(m)
            if i % 7 == 0:
                store.mark_delivered("fast", m)
            if len(fast) > 20:
                store.remove("fast", fast.popleft())
        if i % 100 == 0:
            store.sync()
            queued = (len(slow) + len(fast)) * 1100
            peak_excess = max(peak_excess, disk_bytes(tmp_path) - 4 * queued)
    store.sync()
    stats = store.stats()
    assert stats["compactions"] > 10 and stats["relocated_bytes"] > 0
    assert peak_excess <= 6 * seg_size
    assert disk_bytes(tmp_path) < 4 * len(slow) * 1100 + 6 * seg_size  # vs 27 MB written
    assert_consistent(store)
    store.close()
    store, state = opened(tmp_path, segment_size=seg_size)
    got = contents(store, state)
    assert [b for b, _ in got["slow"]] == slow
    assert len(got["fast"]) == 20
    for m, _ in state["slow"]:
        store.remove("slow", m)
    for m, _ in state["fast"]:
        store.remove("fast", m)
    for _ in range(3):
        store.sync()
    assert disk_bytes(tmp_path) <= 2 * seg_size
    store.close()


def test_crash_in_the_middle_of_compaction(tmp_path: Path) -> None:
    """Copies are durable but the old segment is not deleted yet: both copies are on disk.
    Nothing may be duplicated, lost or resurrected, now or after later compactions."""
    seg_size = 8 << 10
    store, _ = opened(tmp_path, segment_size=seg_size)
    model: dict[str, list[bytes]] = {"slow": [], "fast": []}
    live: dict[bytes, Message] = {}
    for i in range(3000):
        m = make(b"%05d" % i + b"." * 200)
        q = "slow" if i % 10 == 0 else "fast"
        store.add(q, m)
        model[q].append(m.body)
        live[m.body] = m
        if i % 10 == 5:
            store.add("slow", m)  # fanout
            model["slow"].append(m.body)
        if len(model["fast"]) > 10:
            b = model["fast"].pop(0)
            store.remove("fast", live[b])
        if i % 25 == 0:
            store.sync()
    assert store.stats()["compactions"] > 0
    store.maintenance.collect = lambda: None  # type: ignore[method-assign]  # crash before deleting
    for _ in range(5):
        store.sync()
    crash(store)
    for round_ in range(3):
        store, state = opened(tmp_path, segment_size=seg_size)
        got = contents(store, state)
        assert {q: [b for b, _ in v] for q, v in got.items()} == {q: v for q, v in model.items() if v}
        live = {body_of(store, m): m for lst in state.values() for m, _ in lst}
        # consume half of the slow queue, which makes the duplicated segments garbage
        for b in model["slow"][: len(model["slow"]) // 2]:
            store.remove("slow", live[b])
        model["slow"] = model["slow"][len(model["slow"]) // 2 :]
        for i in range(300):
            m = make(b"r%d-%05d" % (round_, i) + b"." * 200)
            store.add("fast", m)
            store.remove("fast", m)
            if i % 20 == 0:
                store.sync()
        assert_consistent(store)
        store.close()


# -- paging ------------------------------------------------------------------------------


def test_bodies_are_paged_out_oldest_first(tmp_path: Path) -> None:
    store, _ = opened(tmp_path, memory_budget=10 * 1024)
    msgs = [make(os.urandom(1024)) for _ in range(100)]
    expected = [m.body for m in msgs]
    for m in msgs:
        store.add("q", m)
    assert all(m.body is not None for m in msgs)  # nothing paged before sync
    store.sync()
    in_ram = [m.body is not None for m in msgs]
    assert in_ram == [False] * 90 + [True] * 10
    assert store.stats()["body_bytes_in_ram"] <= 10 * 1024
    assert [store.load_body(m) for m in msgs] == expected
    for m in msgs[95:]:
        store.remove("q", m)
    assert store.stats()["body_bytes_in_ram"] == 5 * 1024
    store.close()
    store, state = opened(tmp_path)
    assert all(m.body is None for m, _ in state["q"])  # recovered messages start paged out
    assert [store.load_body(m) for m, _ in state["q"]] == expected[:95]
    store.close()


def test_load_body_of_a_removed_message_fails(tmp_path: Path) -> None:
    store, _ = opened(tmp_path, memory_budget=0)
    m = make(b"gone")
    store.add("q", m)
    store.sync()
    store.remove("q", m)
    with pytest.raises(StoreError):
        store.load_body(m)
    store.close()


# -- disk errors ---------------------------------------------------------------------------


def test_enospc_on_write_raises_store_error_and_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = opened(tmp_path, sync=True, memory_budget=0)
    m1 = make(b"durable")
    store.add("q", m1)
    store.sync()
    assert m1.body is None
    m2 = make(b"x" * 5000)
    store.add("q", m2)
    real_write = os.write
    calls = []

    def half_then_full(fd: int, data: Any) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))  # a short write first
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(StoreError, match="No space left on device"):
        store.sync()
    assert store.load_body(m1) == b"durable"  # reads keep working
    m2.body = None
    assert store.load_body(m2) == b"x" * 5000  # from the write buffer
    (seg,) = segment_files(tmp_path)
    assert records(seg)[-1][1] == seg.stat().st_size  # the partial write was rolled back
    with pytest.raises(StoreError):
        store.sync()
    monkeypatch.setattr(os, "write", real_write)
    store.sync()  # retried once there is room again
    store.close()
    store, state = opened(tmp_path)
    assert contents(store, state) == {"q": [(b"durable", False), (b"x" * 5000, False)]}
    store.close()


def test_fsync_failure_makes_the_store_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = opened(tmp_path, sync=True, memory_budget=0)
    m = make(b"body")
    store.add("q", m)
    store.sync()

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    store.add("q", make(b"more"))
    with pytest.raises(StoreError, match="Input/output error"):
        store.sync()
    monkeypatch.undo()
    with pytest.raises(StoreError, match="failed fsync"):
        store.sync()  # after a failed fsync the page cache cannot be trusted to be on disk
    assert store.load_body(m) == b"body"
    with pytest.raises(StoreError):
        store.close()
    store, state = opened(tmp_path)
    assert contents(store, state)["q"][0] == (b"body", False)
    store.close()


def test_cannot_create_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = opened(tmp_path)
    real_open = os.open

    def eacces(path: Any, *a: Any, **kw: Any) -> int:
        if str(path).endswith(".seg"):
            raise OSError(errno.EACCES, "Permission denied")
        return real_open(path, *a, **kw)

    monkeypatch.setattr(os, "open", eacces)
    store.add("q", make(b"a"))
    with pytest.raises(StoreError, match="Permission denied"):
        store.sync()
    monkeypatch.undo()
    store.sync()
    store.close()
    store, state = opened(tmp_path)
    assert contents(store, state) == {"q": [(b"a", False)]}
    store.close()


# -- definitions log -------------------------------------------------------------------------


OPS = [{"op": "queue.declare", "vhost": "/", "name": f"q{i}", "durable": True, "arguments": {"n": i}} for i in range(5)]


def test_definitions_torn_last_line(tmp_path: Path) -> None:
    store = DiskDefinitionStore(tmp_path)
    for op in OPS:
        store.append(op)
    store.close()
    path = tmp_path / DiskDefinitionStore.FILE
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    for cut in range(last, len(data)):
        path.write_bytes(data[:cut])
        with capture_logs() as logs:
            store = DiskDefinitionStore(tmp_path)
        assert store.load() == OPS[:-1]
        assert not [e for e in logs if e["event"] == "store.corrupt_definition"]
        store.append({"op": "after"})
        store.close()
        assert DiskDefinitionStore(tmp_path).load() == OPS[:-1] + [{"op": "after"}]


def test_definitions_corrupt_middle_line_is_skipped(tmp_path: Path) -> None:
    store = DiskDefinitionStore(tmp_path)
    for op in OPS:
        store.append(op)
    store.close()
    path = tmp_path / DiskDefinitionStore.FILE
    data = bytearray(path.read_bytes())
    second = data.find(b"\n") + 1
    data[second + 20] ^= 0x01
    path.write_bytes(data)
    with capture_logs() as logs:
        store = DiskDefinitionStore(tmp_path)
        assert store.load() == OPS[:1] + OPS[2:]
    assert [e["line"] for e in logs if e["event"] == "store.corrupt_definition"] == [2]
    store.close()


def test_definitions_compaction_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DiskDefinitionStore(tmp_path)
    for op in OPS:
        store.append(op)

    def fail(*a: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(StoreError):
        store.compact(OPS[:2])
    monkeypatch.undo()
    assert store.load() == OPS  # the old log is untouched
    store.compact(OPS[:2])
    store.append(OPS[4])
    store.close()
    assert DiskDefinitionStore(tmp_path).load() == OPS[:2] + OPS[4:]
    assert [p.name for p in tmp_path.iterdir()] == [DiskDefinitionStore.FILE]
