"""The stream log contract, run against the in-memory twin (issue 14).

`test_stream_log.py` holds the stream log's behaviour tests; it runs them against the disk
log (`StreamLog`). Here the same test bodies run against `MemoryStreamLog` by swapping
the suite's `opened()` factory: every test listed in CONTRACT is a statement about the
interface (offsets, chunks and "last", offset specs, filters, cursors, retention by whole
segments, offset tracking, restart and crash), so both logs must pass it. Tests that look
at files, file descriptors or fsync calls are the disk log's own and are not listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import test_stream_log as suite
from amqpbroker.store.stream_memory import MemoryStreamLog

CONTRACT = [
    "test_append_assigns_consecutive_offsets_and_reads_back_everything",
    "test_unicode_names_and_empty_fields_round_trip",
    "test_big_records_larger_than_the_read_buffer",
    "test_kill_9_keeps_every_synced_offset_and_never_reuses_them",
    "test_first_next_and_numeric_offsets",
    "test_next_skips_appended_but_unwritten_records",
    "test_last_is_the_start_of_the_last_chunk",
    "test_chunks_are_capped",
    "test_timestamps_and_intervals",
    "test_invalid_specs",
    "test_timestamps_never_go_backwards",
    "test_many_cursors_read_independently_and_remove_nothing",
    "test_filters_are_exact",
    "test_retention_by_age_on_enforce_and_on_roll",
    "test_the_last_segment_with_messages_is_kept",
    "test_stored_offsets_survive_a_restart",
]


def memory_opened(path: Path, clock: Any = None, **kw: Any) -> MemoryStreamLog:
    return MemoryStreamLog(path, clock=clock or suite.Clock(), **{"sync": False, **kw})


@pytest.mark.parametrize("name", CONTRACT)
def test_memory_twin_keeps_the_stream_log_contract(name: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite, "opened", memory_opened)
    getattr(suite, name)(tmp_path)


def test_every_contract_test_exists_in_the_disk_suite() -> None:
    assert all(callable(getattr(suite, name, None)) for name in CONTRACT)


def test_memory_twin_has_the_disk_logs_interface() -> None:
    from amqpbroker.store.stream_log import StreamLog

    public = {n for n in dir(StreamLog) if not n.startswith("_")}
    assert public <= set(dir(MemoryStreamLog)), public - set(dir(MemoryStreamLog))


def test_size_retention_drops_old_segments(tmp_path: Path) -> None:
    log = memory_opened(tmp_path, max_segment_bytes=1000, max_bytes=3000)
    behind = log.open_cursor("first")
    suite.fill(log, 500)
    log.sync()
    assert log.first_offset > 0 and log.size_bytes < 3000 + 1200
    assert suite.offsets(log) == list(range(log.first_offset, 500))
    assert behind.next().offset == log.first_offset
