"""The connections and queues axes of the scale benchmarks (interop/bench_scale.py), run through
the CLI against amqpbroker only, at tiny steps and with the axes' time constants shrunk, so
each test takes seconds. Only the shape and plausibility of the JSON lines are checked, never
timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pamqp import body, commands, frame, header

from . import bench_scale  # puts interop/ on sys.path: the axes are the `scale` package
import scale.connections as connections  # noqa: E402  (same module objects bench_scale runs)
import scale.queues as queues  # noqa: E402


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_hand_built_frames_match_pamqp() -> None:
    assert queues.declare_frame("scale.q.000007") == frame.marshal(
        commands.Queue.Declare(queue="scale.q.000007", durable=True), 1)
    assert connections.publish_bytes() == (
        frame.marshal(commands.Basic.Publish(exchange="", routing_key=connections.QUEUE), 1)
        + frame.marshal(header.ContentHeader(0, len(connections.BODY),
                                             commands.Basic.Properties()), 1)
        + frame.marshal(body.ContentBody(connections.BODY), 1))
    assert len(connections.BODY) == 16
    # the windows hold a declare and a bind per queue, WINDOW queues each
    ws = queues.windows(queues.WINDOW + 3)
    assert len(ws) == 2
    assert ws[1] == b"".join(
        queues.declare_frame(queues.queue_name(i))
        + frame.marshal(commands.Queue.Bind(queue=queues.queue_name(i), exchange="amq.topic",
                                            routing_key=queues.queue_name(i)), 1)
        for i in range(queues.WINDOW, queues.WINDOW + 3))


def test_connections_axis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "SETTLE_SECONDS", 0.5)
    monkeypatch.setattr(connections, "LEAD_SECONDS", 0.5)
    monkeypatch.setattr(connections, "PROBE_SECONDS", 1.5)
    monkeypatch.setattr(connections, "PROBE_SAMPLES", 20)
    monkeypatch.setattr(connections, "ACTIVE_SECONDS", 2.5)
    monkeypatch.setattr(connections, "OPEN_CONCURRENCY", 20)  # fewer than the connections
    assert bench_scale.main(["connections", "--brokers", "amqpbroker", "--steps", "60",
                             "--out-dir", str(tmp_path)]) == 0
    got = rows(tmp_path / "connections.jsonl")
    assert [(r["axis"], r["broker"], r["step"]) for r in got] == [
        ("connections", "amqpbroker", 60)]
    m = got[0]["metrics"]
    assert "error" not in m, m
    assert m["opened"] == m["attempted"] == 60 and m["failed"] == 0
    assert m["open_seconds"] > 0 and m["handshake_p99_ms"] >= m["handshake_p50_ms"] > 0
    assert m["rss_idle_mib"] > 0 and m["rss_before_mib"] > 0 and m["rss_active_mib"] > 0
    assert isinstance(m["kb_per_connection"], float)
    for phase in ("idle", "active"):
        assert m[f"probe_{phase}_n"] > 0 and m[f"probe_{phase}_lost"] == 0
        assert m[f"probe_{phase}_p99_ms"] >= m[f"probe_{phase}_p50_ms"] > 0
    # ~1 publish per connection per second for ~2 s
    assert 60 <= m["published"] <= 60 * 4 and m["publish_rate"] > 0
    assert m["alive_after_idle"] == m["alive_after_active"] == 60
    assert m["unsent_bytes"] >= 0 and m["ticks"] > 0


def test_queues_axis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queues, "SETTLE_SECONDS", 0.5)
    monkeypatch.setattr(queues, "WINDOW", 50)  # several windows even at these steps
    assert bench_scale.main(["queues", "--brokers", "amqpbroker", "--steps", "120,400",
                             "--out-dir", str(tmp_path)]) == 0
    got = rows(tmp_path / "queues.jsonl")
    assert [(r["axis"], r["broker"], r["step"]) for r in got] == [
        ("queues", "amqpbroker", 120), ("queues", "amqpbroker", 400)]
    for r in got:
        m, n = r["metrics"], r["step"]
        assert "error" not in m, m
        assert m["declared"] == n and m["declare_rate"] > 0 and m["declare_seconds"] > 0
        assert isinstance(m["bytes_per_queue"], float)
        assert m["rss_idle_mib"] > 0
        assert m["declare_new_ms"] > 0 and m["declare_passive_ms"] > 0
        assert m["listing_count"] == n and m["listing_seconds"] > 0
        assert m["stop_forced"] == 0
        assert m["recovery_listed"] == n
        assert m["recovery_seconds"] >= m["recovery_declare_seconds"] > 0
        assert m["rss_recovered_mib"] > 0
