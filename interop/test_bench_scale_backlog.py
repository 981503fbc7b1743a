"""The backlog axis of the scale benchmarks (interop/bench_scale.py) through the CLI against
amqpbroker only, at a tiny depth: the chunks are confirmed, the queue holds what was sent,
and after kill -9 the broker recovers all of it and a consumer drains it. Only the shape and
plausibility of the JSON lines are checked, never timings."""

from __future__ import annotations

import json

from . import bench_scale  # puts interop/ on sys.path: the axes are the `scale` package


def test_backlog_axis_fills_recovers_after_kill_and_drains(tmp_path) -> None:
    assert bench_scale.main(["backlog", "--brokers", "amqpbroker", "--steps", "3000,8000",
                             "--out-dir", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "backlog.jsonl").read_text().splitlines()]
    fill = [r for r in rows if r["axis"] == "backlog"]
    assert [r["step"] for r in fill] == [3000, 8000]
    for r in fill:
        m = r["metrics"]
        assert r["broker"] == "amqpbroker" and "error" not in m, m
        assert m["depth"] == r["step"] and m["publish_rate"] > 0 and m["bytes_per_message"] > 0
    (recovery,) = [r for r in rows if r["axis"] == "backlog_recovery"]
    m = recovery["metrics"]
    assert recovery["step"] == 8000 and "error" not in m, m
    assert m["recovered"] == 8000 and m["drained"] == 8000 and m["recovery_seconds"] > 0
