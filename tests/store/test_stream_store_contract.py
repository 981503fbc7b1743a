"""The stream store contract (issue 14): what the core writes stream queues through.

One suite, run against `DiskStreamStore` (files under a data dir) and its in-memory twin
`MemoryStreamStore`: logs by queue key, append / read / retain / commit_offset, restart,
delete, the group commit's dirty logs, and a follower's copy fed with `stream_restore` /
`stream_truncate` holding the same records at the same offsets and timestamps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from amqpbroker.store.records import StoreError
from amqpbroker.store.stream_store import (
    DiskStreamStore, MemoryStreamStore, StreamStore, stream_directory,
)

T0 = 1_700_000_000.0
KEY, OTHER = "/\x00orders", "v\u00e9\x00ключ"


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


Factory = Callable[[str], StreamStore]


@pytest.fixture(params=["disk", "memory"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """`make(name)`: a store over the "disk" called `name`; a second store over the same
    name recovers what the first wrote (a restart)."""
    clock = Clock()
    disks: dict[str, dict[str, Any]] = {}

    def factory(name: str = "a") -> StreamStore:
        if request.param == "disk":
            return DiskStreamStore(tmp_path / name, sync=False, clock=clock)
        return MemoryStreamStore(disks=disks.setdefault(name, {}), clock=clock)

    factory.clock = clock  # type: ignore[attr-defined]
    return factory


def fill(store: StreamStore, key: str, n: int, start: int = 0, **kw: Any) -> list[int]:
    return [store.stream_append(key, "ex", f"rk.{i}", b"P%d" % i, b"body-%d" % i, **kw)
            for i in range(start, start + n)]


def bodies(store: StreamStore, key: str, spec: Any = "first") -> list[tuple[int, bytes]]:
    return [(rec.offset, rec.body) for rec, _ in store.log(key).entries(spec)]


def test_logs_by_key_append_and_read(make: Factory) -> None:
    store = make()
    a, b = store.open(KEY), store.open(OTHER)
    assert fill(store, KEY, 3) == [0, 1, 2] and fill(store, OTHER, 2) == [0, 1]
    store.log(KEY).flush()
    assert [r.offset for r in a.open_cursor("first")] == [0, 1, 2]
    assert bodies(store, OTHER) == [(0, b"body-0"), (1, b"body-1")]
    assert b.message_count == 2 and store.open(KEY) is a  # opened once


def test_group_commit_lists_the_logs_with_unsynced_changes(make: Factory) -> None:
    store = make()
    log = store.open(KEY)
    store.open(OTHER)
    store.sync_logs(store.dirty_logs())  # a new log's directory entry, on disk
    assert store.dirty_logs() == []
    fill(store, KEY, 2)
    assert store.dirty_logs() == [log] and log.committed_offset == 0
    store.sync_logs(store.dirty_logs())
    assert log.committed_offset == 2 and store.dirty_logs() == []
    store.stream_offset(KEY, "consumer-1", 1)  # a tracked offset needs a sync too
    assert store.dirty_logs() == [log]


def test_restart_recovers_records_and_tracked_offsets(make: Factory) -> None:
    store = make()
    store.open(KEY)
    fill(store, KEY, 5, filter_value="eu")
    store.stream_offset(KEY, "c", 3)
    store.close()
    again = make()
    log = again.open(KEY)
    assert bodies(again, KEY) == [(i, b"body-%d" % i) for i in range(5)]
    assert log.stored_offset("c") == 3
    assert fill(again, KEY, 1, 5) == [5]  # offsets are never reused


def test_retention_drops_whole_old_segments(make: Factory) -> None:
    store = make()
    log = store.open(KEY, max_segment_bytes=600, max_bytes=1500)
    behind = log.open_cursor("first")
    fill(store, KEY, 100)
    log.flush()
    store.stream_retain(KEY)
    first = log.first_offset
    assert first > 0 and log.message_count == 100 - first
    assert bodies(store, KEY)[0][0] == first
    assert behind.next().offset == first  # a cursor behind continues at the first kept
    store.close()
    assert make().open(KEY).first_offset == first


def test_retention_by_age(make: Factory) -> None:
    store = make()
    clock = make.clock  # type: ignore[attr-defined]
    log = store.open(KEY, max_segment_bytes=300, max_age_ms=60_000)
    fill(store, KEY, 20)
    clock.t += 120
    fill(store, KEY, 20, 20)
    log.flush()
    store.stream_retain(KEY, clock.t)  # (a roll may already have applied it)
    assert 0 < log.first_offset <= 20


def test_delete_removes_the_stream(make: Factory, tmp_path: Path) -> None:
    store = make()
    store.open(KEY)
    fill(store, KEY, 3)
    store.sync_logs(store.dirty_logs())
    store.stream_delete(KEY)
    assert KEY not in store.logs
    if isinstance(store, DiskStreamStore):
        assert not stream_directory(store.root, KEY).exists()
    assert store.open(KEY).next_offset == 0  # declared again: a new, empty stream
    store.stream_delete(OTHER)  # never opened: nothing to do


def test_a_copy_fed_by_restore_holds_the_same_stream(make: Factory) -> None:
    leader, follower = make("leader"), make("follower")
    clock = make.clock  # type: ignore[attr-defined]
    leader.open(KEY, max_segment_bytes=600, max_bytes=1500)
    for i in range(60):
        leader.stream_append(KEY, "ex", "rk", b"p", b"m%d" % i, "f" if i % 2 else None)
        clock.t += 1
    leader.log(KEY).flush()  # the memory twin rolls its segments when it writes
    leader.stream_retain(KEY)
    first = leader.log(KEY).first_offset
    assert first > 0
    # a snapshot: every record the leader holds, at its offset and timestamp
    for rec, fv in leader.log(KEY).entries():
        assert follower.stream_restore(KEY, rec.offset, rec.timestamp_ms, rec.exchange,
                                       rec.routing_key, rec.properties, rec.body, fv)
    rec = next(iter(leader.log(KEY).entries()))[0]
    assert not follower.stream_restore(KEY, rec.offset, 0, "", "", b"", b"dup")  # held
    with pytest.raises(StoreError):  # a gap in a log that holds records
        follower.stream_restore(KEY, 1000, 0, "", "", b"", b"gap")
    follower.stream_offset(KEY, "c", first + 3)
    follower.close()
    copy = make("follower").open(KEY)
    assert copy.first_offset == first and copy.next_offset == 60
    assert [(r.offset, r.timestamp_ms, r.body, fv) for r, fv in copy.entries()] == \
        [(r.offset, r.timestamp_ms, r.body, fv) for r, fv in leader.log(KEY).entries()]
    assert [r.offset for r in copy.open_cursor("first", filters=["f"])] == \
        [o for o in range(first, 60) if o % 2]
    assert copy.stored_offset("c") == first + 3


def test_truncate_follows_the_leaders_retention(make: Factory) -> None:
    follower = make()
    for i in range(50):
        follower.stream_restore(KEY, i, int(T0 * 1000) + i, "", "q", b"", b"x" * 40)
    log = follower.log(KEY)
    log.configure(max_bytes=None, max_age_ms=None, max_segment_bytes=300)
    for i in range(50, 100):  # rolls at the configured size from now on
        follower.stream_restore(KEY, i, int(T0 * 1000) + i, "", "q", b"", b"x" * 40)
    log.flush()
    assert follower.stream_truncate(KEY, 80) > 0
    assert 50 <= log.first_offset <= 80 and log.next_offset == 100
    assert follower.stream_truncate(KEY, 10_000) >= 0 and log.message_count > 0  # active stays
