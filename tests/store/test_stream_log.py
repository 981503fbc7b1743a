"""The stream log (issue 11): offsets, group commit, cursors and offset specs, recovery
(torn tails, corruption, sealed segments), retention by size and age on a clock the tests
move, filters, offset tracking, and flat memory while replaying a long stream."""

from __future__ import annotations

import datetime
import os
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from amqpbroker.store import stream_records
from amqpbroker.store.records import StoreError
from amqpbroker.store.stream_log import READ_BUF, StreamLog, StreamRecord, parse_interval
from amqpbroker.store.stream_records import (
    CRC, K_MSG, K_SEAL, MAGIC, MSG_HEAD, SEAL_SIZE, list_segments, segment_name, valid_at,
)

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def opened(path: Path, clock: Clock | None = None, **kw: Any) -> StreamLog:
    return StreamLog(path, clock=clock or Clock(), **{"sync": False, **kw})


def crash(log: StreamLog) -> None:
    """Drop a log without writing its buffers (what a kill -9 leaves behind)."""
    log._close_fds()
    log._closed = True


def fill(log: StreamLog, n: int, start: int = 0, **kw: Any) -> list[int]:
    return [log.append("ex", f"rk.{i}", b"P%d" % i, b"body-%d" % i, **kw)
            for i in range(start, start + n)]


def offsets(log: StreamLog, spec: Any = "first", **kw: Any) -> list[int]:
    return [r.offset for r in log.open_cursor(spec, **kw)]


def seg_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.seg"))


# -- writing and reading -------------------------------------------------------------------

def test_append_assigns_consecutive_offsets_and_reads_back_everything(tmp_path: Path) -> None:
    clock = Clock()
    log = opened(tmp_path, clock)
    assert (log.first_offset, log.next_offset, log.message_count) == (0, 0, 0)
    offs = []
    for i in range(5):
        offs.append(log.append("amq.topic", "a.b", b"\x80\x00props", b"body%d" % i))
        clock.t += 0.5
    assert offs == [0, 1, 2, 3, 4]
    log.flush()
    recs = list(log.open_cursor("first"))
    assert recs[0] == StreamRecord(0, int(T0 * 1000), "amq.topic", "a.b", b"\x80\x00props", b"body0")
    assert [r.timestamp_ms - recs[0].timestamp_ms for r in recs] == [0, 500, 1000, 1500, 2000]
    assert log.message_count == 5
    log.close()
    again = opened(tmp_path)
    assert list(again.open_cursor("first")) == recs
    assert again.append("", "q", b"", b"next") == 5


def test_unicode_names_and_empty_fields_round_trip(tmp_path: Path) -> None:
    log = opened(tmp_path)
    log.append("", "", b"", b"")
    log.append("ëx\x00/", "ключ", b"p", b"b" * 10, filter_value="région")
    log.flush()
    recs = list(log.open_cursor("first"))
    assert recs[0][2:] == ("", "", b"", b"")
    assert recs[1][2:] == ("ëx\x00/", "ключ", b"p", b"b" * 10)


def test_file_format_is_crc_framed_records(tmp_path: Path) -> None:
    log = opened(tmp_path)
    log.append("ex", "rk", b"props", b"body", filter_value="f")
    log.flush()
    data = (tmp_path / segment_name(0)).read_bytes()
    assert valid_at(data, 0) == len(data)
    magic, kind, n, off, ts, flags, exl, rkl, fvl, pl = MSG_HEAD.unpack_from(data)
    assert (magic, kind, off, ts, flags) == (MAGIC, K_MSG, 0, int(T0 * 1000), 3)
    assert data[33:len(data) - 4] == b"exrkfpropsbody"
    assert CRC.unpack_from(data, len(data) - 4)[0] != 0


def test_cursors_only_see_written_records_and_sync_is_group_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fsyncs: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real(fd))[1])
    log = opened(tmp_path, sync=True)
    fsyncs.clear()
    cur = log.open_cursor("first")
    fill(log, 3)
    assert cur.next() is None and log.committed_offset == 0 and fsyncs == []
    log.flush()  # written, not durable
    assert [r.offset for r in cur] == [0, 1, 2] and log.committed_offset == 0 and fsyncs == []
    assert log.sync() == 3 and log.committed_offset == 3 and len(fsyncs) == 1
    fill(log, 2, 3)
    assert log.sync() == 5 and len(fsyncs) == 2 and [r.offset for r in cur] == [3, 4]


def test_sync_false_writes_but_never_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    log = opened(tmp_path, max_segment_bytes=300)
    fill(log, 50)
    assert log.sync() == 50 and log.segment_count > 1
    assert calls == []
    assert offsets(log) == list(range(50))


def test_big_records_larger_than_the_read_buffer(tmp_path: Path) -> None:
    log = opened(tmp_path)
    big = os.urandom(3 * READ_BUF + 7)
    log.append("", "q", b"", b"small")
    log.append("", "q", b"", big)
    log.append("", "q", b"", b"after")
    log.flush()
    assert [r.body for r in log.open_cursor("first")] == [b"small", big, b"after"]


def test_sync_in_another_thread_while_appending(tmp_path: Path) -> None:
    log = opened(tmp_path, sync=True, max_segment_bytes=64 << 10)
    stop = threading.Event()
    errors: list[BaseException] = []

    def syncer() -> None:
        try:
            while not stop.is_set():
                log.sync()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=syncer)
    t.start()
    try:
        fill(log, 20_000)
    finally:
        stop.set()
        t.join()
    assert not errors
    log.sync()
    recs = list(log.open_cursor("first"))
    assert [r.offset for r in recs] == list(range(20_000))
    assert all(r.body == b"body-%d" % r.offset for r in recs)
    log.close()
    assert offsets(opened(tmp_path)) == list(range(20_000))


# -- segments and recovery -------------------------------------------------------------------

def test_segments_roll_and_are_named_by_their_first_offset(tmp_path: Path) -> None:
    log = opened(tmp_path, max_segment_bytes=1000)
    fill(log, 100)
    log.sync()
    firsts = list_segments(tmp_path)
    assert len(firsts) == log.segment_count > 3 and firsts[0] == 0
    for path in seg_files(tmp_path)[:-1]:  # closed segments end with INDEX + SEAL
        data = path.read_bytes()
        assert valid_at(data, len(data) - SEAL_SIZE) == len(data) and data[-SEAL_SIZE + 1] == K_SEAL
    assert offsets(log) == list(range(100))
    assert offsets(log, 57) == list(range(57, 100))


def test_closed_segments_are_not_rescanned_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = opened(tmp_path, max_segment_bytes=2000)
    fill(log, 200)
    log.close()
    scanned: list[int] = []
    real = stream_records.scan_segment
    monkeypatch.setattr("amqpbroker.store.stream_log.scan_segment",
                        lambda fd, path, first, *a: (scanned.append(first), real(fd, path, first, *a))[1])
    again = opened(tmp_path, max_segment_bytes=2000)
    assert scanned == [list_segments(tmp_path)[-1]]
    assert offsets(again) == list(range(200))
    assert offsets(again, 123) == list(range(123, 200))


def test_a_closed_segment_with_a_damaged_seal_is_scanned(tmp_path: Path) -> None:
    log = opened(tmp_path, max_segment_bytes=2000)
    fill(log, 100)
    log.close()
    first = seg_files(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[-3] ^= 0xFF
    first.write_bytes(data)
    again = opened(tmp_path, max_segment_bytes=2000)
    assert offsets(again) == list(range(100))
    assert offsets(again, 5) == list(range(5, 100))


def test_kill_9_keeps_every_synced_offset_and_never_reuses_them(tmp_path: Path) -> None:
    log = opened(tmp_path, sync=True, max_segment_bytes=4000)
    fill(log, 120)
    assert log.sync() == 120
    fill(log, 30, 120)  # buffered (a roll writes some of them, unsynced)
    crash(log)
    again = opened(tmp_path, sync=True, max_segment_bytes=4000)
    got = offsets(again)
    assert got == list(range(again.next_offset)) and got[:120] == list(range(120))
    assert again.append("", "q", b"", b"new") == again.next_offset - 1 == len(got)
    # without a roll in between, the unsynced tail is simply gone
    log = opened(tmp_path / "b", sync=True)
    fill(log, 120)
    log.sync()
    fill(log, 30, 120)
    crash(log)
    again = opened(tmp_path / "b", sync=True)
    assert offsets(again) == list(range(120)) and again.next_offset == 120


def test_torn_tail_is_cut_off(tmp_path: Path) -> None:
    log = opened(tmp_path)
    fill(log, 10)
    log.sync()
    path = tmp_path / segment_name(0)
    good = path.stat().st_size
    log.append("ex", "rk", b"", b"x" * 100)
    log.flush()
    crash(log)
    with open(path, "r+b") as f:  # the last write only half made it
        f.truncate(good + 60)
    with capture_logs() as logs:
        again = opened(tmp_path)
    assert any(e["event"] == "stream.torn_tail" and e["dropped"] == 60 for e in logs)
    assert path.stat().st_size == good
    assert offsets(again) == list(range(10))
    assert again.append("", "q", b"", b"again") == 10
    again.flush()
    assert offsets(again)[-1] == 10


def test_a_corrupt_record_is_skipped_by_recovery_and_by_readers(tmp_path: Path) -> None:
    log = opened(tmp_path)
    fill(log, 5)
    log.close()
    path = tmp_path / segment_name(0)
    data = bytearray(path.read_bytes())
    second = valid_at(bytes(data), 0)
    data[second + 40] ^= 0x55  # inside record 1's payload
    path.write_bytes(data)
    with capture_logs() as logs:
        again = opened(tmp_path)
        assert offsets(again) == [0, 2, 3, 4]
    assert [e["event"] for e in logs].count("stream.corrupt_record") == 2  # recovery + reader
    assert again.next_offset == 5


def test_garbage_files_and_empty_directories(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("not a segment")
    (tmp_path / "s" / "x.seg").write_text("not a segment either")
    log = opened(tmp_path / "s")
    assert log.next_offset == 0 and offsets(log) == []
    log.close()
    with pytest.raises(StoreError):
        log.append("", "q", b"", b"closed")


# -- offset specs ------------------------------------------------------------------------------

def test_first_next_and_numeric_offsets(tmp_path: Path) -> None:
    log = opened(tmp_path, max_segment_bytes=800)
    fill(log, 40)
    log.flush()
    nxt = log.open_cursor("next")
    default = log.open_cursor()
    assert offsets(log, "first") == list(range(40))
    assert offsets(log, 17) == list(range(17, 40))
    assert offsets(log, -5) == list(range(40))  # clamped to the start
    assert offsets(log, 10_000) == []  # clamped to the end: only new messages
    far = log.open_cursor(10_000)
    assert nxt.next() is None and default.next() is None
    fill(log, 2, 40)
    log.flush()
    assert [r.offset for r in nxt] == [40, 41] == [r.offset for r in default]
    assert [r.offset for r in far] == [40, 41]


def test_next_skips_appended_but_unwritten_records(tmp_path: Path) -> None:
    log = opened(tmp_path)
    fill(log, 3)  # still in the buffer
    cur = log.open_cursor("next")
    fill(log, 2, 3)
    log.flush()
    assert [r.offset for r in cur] == [3, 4]


def test_last_is_the_start_of_the_last_chunk(tmp_path: Path) -> None:
    log = opened(tmp_path)
    assert offsets(log, "last") == []  # empty stream: like next
    fill(log, 5)
    log.flush()  # chunk 0..4
    fill(log, 3, 5)
    log.flush()  # chunk 5..7
    assert offsets(log, "last") == [5, 6, 7]
    log.append("", "q", b"", b"single")
    log.flush()
    assert offsets(log, "last") == [8]
    log.close()
    assert offsets(opened(tmp_path), "last") == [8]  # chunk starts are in the records


def test_chunks_are_capped(tmp_path: Path) -> None:
    log = opened(tmp_path)
    fill(log, stream_records.CHUNK_MAX + 10)
    log.flush()
    assert offsets(log, "last") == list(range(stream_records.CHUNK_MAX, stream_records.CHUNK_MAX + 10))


def test_last_survives_a_crash_right_after_a_roll(tmp_path: Path) -> None:
    log = opened(tmp_path, max_segment_bytes=300)
    fill(log, 10)
    log.flush()
    n = log.segment_count
    while log.segment_count == n:  # the append that rolls: its record stays buffered
        log.append("", "q", b"", b"roll")
    expected = log._segs[-2].last_chunk
    crash(log)
    tail = seg_files(tmp_path)[-1]
    assert tail.stat().st_size == 0
    again = opened(tmp_path, max_segment_bytes=300)
    last = offsets(again, "last")
    assert last and last[0] == expected and last[-1] == again.next_offset - 1
    again.close()
    tail.unlink()  # a crash between sealing and creating the next file
    again = opened(tmp_path, max_segment_bytes=300)
    assert seg_files(tmp_path)[-1].name == tail.name
    assert offsets(again, "last")[0] == expected
    assert again.append("", "q", b"", b"on") == int(tail.stem)


def test_timestamps_and_intervals(tmp_path: Path) -> None:
    clock = Clock()
    log = opened(tmp_path, clock, max_segment_bytes=700)
    for i in range(60):  # one message a minute
        log.append("", "q", b"", b"%d" % i)
        clock.t += 60
    log.flush()
    t = lambda minutes: datetime.datetime.fromtimestamp(T0 + minutes * 60, datetime.timezone.utc)
    assert offsets(log, t(30)) == list(range(30, 60))
    assert offsets(log, t(29.5)) == list(range(30, 60))  # first at or after
    assert offsets(log, t(-10)) == list(range(60))
    assert offsets(log, t(100)) == []
    naive = t(45).replace(tzinfo=None)
    assert offsets(log, naive)[0] == 45  # naive datetimes are UTC
    assert offsets(log, ("timestamp", int((T0 + 59 * 60) * 1000))) == [59]
    # now = T0 + 60 min: "10m" = messages of the last ten minutes
    assert offsets(log, "10m") == list(range(50, 60))
    assert offsets(log, "1h") == list(range(60))
    assert offsets(log, "1D") == list(range(60))


def test_invalid_specs(tmp_path: Path) -> None:
    log = opened(tmp_path)
    for spec in ("later", "0h", "h", "1w", "1.5h", True, 1.5, ("time", 3), b"first"):
        with pytest.raises(ValueError):
            log.open_cursor(spec)


def test_parse_interval_units() -> None:
    assert parse_interval("7D") == 7 * 86_400_000
    assert parse_interval("12h") == 12 * 3_600_000
    assert parse_interval("30m") == 30 * 60_000
    assert parse_interval("10s") == 10_000
    assert parse_interval("1Y") == 365 * 86_400_000
    assert parse_interval("1M") == 30 * 86_400_000
    for bad in ("", "0s", "-1h", "1", "h", "1d", "1H", "1hh", " 1h", "1h "):
        assert parse_interval(bad) is None


def test_timestamps_never_go_backwards(tmp_path: Path) -> None:
    clock = Clock()
    log = opened(tmp_path, clock)
    log.append("", "q", b"", b"a")
    clock.t -= 3600  # the wall clock jumps back
    log.append("", "q", b"", b"b")
    log.flush()
    a, b = log.open_cursor("first")
    assert b.timestamp_ms == a.timestamp_ms


# -- readers are independent ---------------------------------------------------------------

def test_many_cursors_read_independently_and_remove_nothing(tmp_path: Path) -> None:
    log = opened(tmp_path, max_segment_bytes=600)
    fill(log, 50)
    log.flush()
    cursors = [log.open_cursor("first") for _ in range(3)]
    assert [r.offset for r in cursors[0].read(10)] == list(range(10))
    assert [r.offset for r in cursors[1].read(25)] == list(range(25))
    assert [r.offset for r in cursors[0]] == list(range(10, 50))
    assert cursors[2].offset == 0 and [r.offset for r in cursors[2]] == list(range(50))
    assert log.message_count == 50 and offsets(log) == list(range(50))


def test_filters_are_exact(tmp_path: Path) -> None:
    log = opened(tmp_path)
    values = ["ca", None, "ny", "ca", None, "tx", "ny"]
    for i, v in enumerate(values):
        log.append("", "q", b"", b"%d" % i, filter_value=v)
    log.flush()
    assert offsets(log, filters=["ca"]) == [0, 3]
    assert offsets(log, filters=["ca", "ny"]) == [0, 2, 3, 6]
    assert offsets(log, filters=["ca"], match_unfiltered=True) == [0, 1, 3, 4]
    assert offsets(log, filters=[]) == []
    assert offsets(log, filters=[], match_unfiltered=True) == [1, 4]
    assert offsets(log) == list(range(7))
    cur = log.open_cursor("first", filters=["tx"])
    assert [r.offset for r in cur] == [5] and cur.offset == 7  # skipped ones count as read


# -- retention ------------------------------------------------------------------------------

def test_retention_by_size_drops_whole_old_segments(tmp_path: Path) -> None:
    log = opened(tmp_path, max_segment_bytes=1000, max_bytes=3000)
    behind = log.open_cursor("first")
    fill(log, 500)
    log.sync()
    assert log.first_offset > 0
    assert log.size_bytes < 3000 + 1200
    assert list_segments(tmp_path)[0] == log.first_offset
    assert offsets(log) == list(range(log.first_offset, 500))
    assert behind.next().offset == log.first_offset  # on from the first retained one
    log.close()
    again = opened(tmp_path, max_segment_bytes=1000, max_bytes=3000)
    assert again.next_offset == 500 and again.append("", "q", b"", b"x") == 500


def test_retention_by_age_on_enforce_and_on_roll(tmp_path: Path) -> None:
    clock = Clock()
    log = opened(tmp_path, clock, max_segment_bytes=400, max_age_ms=3_600_000)
    for i in range(40):
        log.append("", "q", b"", b"%d" % i)
        clock.t += 60  # 40 minutes of messages
    log.flush()
    segs = log.segment_count
    assert log.enforce_retention() == 0 and log.first_offset == 0
    clock.t += 30 * 60  # the cutoff is now T0 + 10 min: message 10 is exactly an hour old
    assert log.enforce_retention() == 0  # a segment goes only when its newest is older
    clock.t += 60
    dropped = log.enforce_retention()
    assert dropped >= 1 and log.segment_count == segs - dropped
    # message i was published at T0 + i min, the cutoff is T0 + 11 min: only segments made
    # of messages 0..10 may go
    assert 0 < log.first_offset <= 11 and offsets(log)[0] == log.first_offset
    clock.t += 24 * 3600  # everything is old: the newest messages stay
    log.append("", "q", b"", b"late")  # the roll evaluates retention too
    log.flush()
    log.enforce_retention()
    assert log.message_count >= 1 and offsets(log)[-1] == 40


def test_the_last_segment_with_messages_is_kept(tmp_path: Path) -> None:
    clock = Clock()
    log = opened(tmp_path, clock, max_segment_bytes=200, max_age_ms=1000, max_bytes=0)
    fill(log, 20)
    log.flush()
    clock.t += 3600
    log.enforce_retention()
    assert log.message_count >= 1
    assert offsets(log)[-1] == 19
    log.close()
    again = opened(tmp_path, clock, max_segment_bytes=200, max_age_ms=1000, max_bytes=0)
    assert again.next_offset == 20


# -- offset tracking --------------------------------------------------------------------------

def test_stored_offsets_survive_a_restart(tmp_path: Path) -> None:
    log = opened(tmp_path, sync=True)
    fill(log, 10)
    log.store_offset("billing", 4)
    log.store_offset("audit", 9)
    log.store_offset("billing", 6)
    assert log.stored_offset("billing") == 6 and log.stored_offset("nobody") is None
    log.sync()
    crash(log)
    again = opened(tmp_path)
    assert again.tracked_offsets() == {"billing": 6, "audit": 9}
    assert offsets(again, again.stored_offset("billing") + 1) == [7, 8, 9]


def test_tracking_torn_tail_and_compaction(tmp_path: Path) -> None:
    log = opened(tmp_path)
    for i in range(4000):
        log.store_offset("c1", i)
        if i % 500 == 0:
            log.sync()
    log.store_offset("c2", 7)
    log.sync()
    trk = tmp_path / "offsets.trk"
    assert trk.stat().st_size < 64 << 10  # compacted: one record per consumer, more or less
    log.close()
    with open(trk, "ab") as f:
        f.write(b"\xa8\x04\x20\x00\x00\x00partial")
    again = opened(tmp_path)
    assert again.tracked_offsets() == {"c1": 3999, "c2": 7}


# -- memory and lifecycle -----------------------------------------------------------------------

def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_memory_stays_flat_replaying_200000_messages(tmp_path: Path) -> None:
    log = opened(tmp_path, max_segment_bytes=4 << 20)
    body = b"m" * 100
    for _ in range(200_000):
        log.append("amq.direct", "k", b"\x10\x00\x02", body)
    log.close()
    log = opened(tmp_path, max_segment_bytes=4 << 20)
    data = log.size_bytes
    assert data > 25 << 20
    cur = log.open_cursor("first")
    start = _rss()
    highest = start
    n = 0
    for rec in cur:
        n += 1
        if n % 5_000 == 0:
            highest = max(highest, _rss())
        if n == 100_000:  # an exact look at a slice in the middle
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        elif n == 120_000:
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    assert n == 200_000
    assert peak - base < 2 * READ_BUF + (64 << 10)  # the read buffer, whatever the length
    assert current - base < READ_BUF + (64 << 10)
    assert highest - start < 8 << 20  # vs. 30 MB of messages read


def test_delete_removes_the_directory(tmp_path: Path) -> None:
    log = opened(tmp_path / "s", max_segment_bytes=500)
    fill(log, 50)
    log.store_offset("x", 1)
    log.sync()
    cur = log.open_cursor("first")
    log.delete()
    assert not (tmp_path / "s").exists()
    assert cur.next() is None
