"""The bindings and sizes axes of the scale benchmarks (interop/bench_scale.py), run through
the CLI against amqpbroker only, at tiny steps and with the axes' constants shrunk, so each
test takes seconds. Only the shape and plausibility of the JSON lines are checked, never
timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pamqp import body, commands, frame, header

from . import bench_scale  # puts interop/ on sys.path: the axes are the `scale` package
import scale.bindings as bindings  # noqa: E402  (same module objects bench_scale runs)
import scale.sizes as sizes  # noqa: E402

from scale.common import bench_source  # noqa: E402

# The C load generator is built from the workplace's bench folder (../shared/bench);
# without it these tests cannot run and say so.
needs_generator = pytest.mark.skipif(bench_source() is None,
                                     reason="no ../shared/bench (AMQPBROKER_BENCH_DIR)")



def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_hand_built_frames_match_pamqp() -> None:
    assert bindings.bind_frame("q", "x", "a1.*.c2") == frame.marshal(
        commands.Queue.Bind(queue="q", exchange="x", routing_key="a1.*.c2"), 1)
    expected = (frame.marshal(commands.Basic.Publish(exchange="x", routing_key="a1.b2.c3"), 1)
                + frame.marshal(header.ContentHeader(0, len(bindings.BODY),
                                                     commands.Basic.Properties()), 1)
                + frame.marshal(body.ContentBody(bindings.BODY), 1))
    assert bindings.publish_frames("x", "a1.b2.c3", bindings.BODY) == expected
    assert bindings.BIND_OK == frame.marshal(commands.Queue.BindOk(), 1)


def test_workload_is_deterministic_and_mixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bindings, "COLD_KEYS", 5000)
    monkeypatch.setattr(bindings, "PUBLISH_COUNT", 2000)
    a, b = bindings.Workload(1000), bindings.Workload(1000)
    assert a.bindings == b.bindings and a.cold == b.cold and a.warm == b.warm
    assert len(set(a.bindings)) == 1000
    patterns = [p for p, _ in a.bindings]
    assert sum("*" in p for p in patterns) == 80 and sum("#" in p for p in patterns) == 20
    assert {q for _, q in a.bindings} == set(range(len(bindings.QUEUES)))
    stats = a.match_stats(a.cold)
    assert 0 < stats["match_fraction"] < 0.5 and stats["queues_per_msg"] > 0
    assert a.match_stats(a.warm)["distinct_keys"] <= bindings.WARM_KEYS


def test_bindings_axis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bindings, "COLD_KEYS", 20000)
    monkeypatch.setattr(bindings, "WARM_KEYS", 100)
    monkeypatch.setattr(bindings, "PUBLISH_COUNT", 5000)
    assert bench_scale.main(["bindings", "--brokers", "amqpbroker", "--steps", "100,1000",
                             "--out-dir", str(tmp_path)]) == 0
    got = rows(tmp_path / "bindings.jsonl")
    assert [(r["axis"], r["broker"], r["step"]) for r in got] == [
        ("bindings", "amqpbroker", 100), ("bindings", "amqpbroker", 1000)]
    for r in got:
        m = r["metrics"]
        assert "error" not in m, m
        assert m["bindings"] == r["step"]
        assert m["bind_rate"] > 0 and m["bind_s"] > 0
        assert isinstance(m["rss_per_binding_bytes"], float)
        assert m["rss_bound_mib"] > 0
        for phase in ("cold", "warm"):
            assert m[f"{phase}_published"] == 5000
            assert m[f"{phase}_publish_rate"] > 0
            assert m[f"{phase}_cpu_us_per_msg"] > 0
            assert m[f"{phase}_rss_after_mib"] > 0
            assert 0 < m[f"{phase}_match_fraction"] <= 1
        assert m["warm_distinct_keys"] <= 100 < m["cold_distinct_keys"]


@needs_generator
def test_sizes_axis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizes, "MAX_COUNT", 2000)
    monkeypatch.setattr(sizes, "STEP_BYTES", 16 * 2**20)   # 16 messages of 1 MiB
    monkeypatch.setattr(sizes, "PUBLISH_SECONDS", 5.0)
    monkeypatch.setattr(sizes, "DRAIN_SECONDS", 10.0)
    monkeypatch.setattr(sizes, "GEN_TIMEOUT", 20.0)
    assert bench_scale.main(["sizes", "--brokers", "amqpbroker", "--steps", "16,1048576",
                             "--out-dir", str(tmp_path)]) == 0
    got = rows(tmp_path / "sizes.jsonl")
    assert [(r["axis"], r["broker"], r["step"]) for r in got] == [
        ("sizes", "amqpbroker", 16), ("sizes", "amqpbroker", 1048576)]
    for r in got:
        m = r["metrics"]
        assert m["status"] == "OK", m
        assert m["delivered"] == m["published"] == m["count"] == sizes.step_count(r["step"])
        assert m["mb_per_s"] > 0 and m["msg_per_s"] > 0 and m["cpu_us_per_msg"] > 0
        assert m["rss_peak_mib"] >= m["rss_base_mib"] > 0
        assert m["rss_samples"] >= 1
    assert "rss_per_body" not in got[0]["metrics"]
    big = got[1]["metrics"]
    assert big["probe_status"] == "OK"
    assert big["rss_per_body"] >= 0 and big["hwm_per_body"] >= 0
