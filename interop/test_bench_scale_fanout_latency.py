"""The fanout and latency scale axes (interop/scale/fanout.py, latency.py) run tiny against
amqpbroker through bench_scale's CLI, and plot_scale.py draws what they wrote (and
synthetic records). Durations are shrunk to a second or two; no timing is asserted, only
that the records have the right shape and plausible values."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from . import bench_scale, plot_scale

from scale.common import bench_source  # noqa: E402

# The C load generator is built from the workplace's bench folder (../shared/bench);
# without it these tests cannot run and say so.
needs_generator = pytest.mark.skipif(bench_source() is None,
                                     reason="no ../shared/bench (AMQPBROKER_BENCH_DIR)")


pytestmark = pytest.mark.interop

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tiny runs of this module write their JSON lines (plotted at the end)."""
    return tmp_path_factory.mktemp("scale-runs")


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def assert_png(path: Path) -> None:
    from PIL import Image

    assert path.exists(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert 2_000 < path.stat().st_size < 400_000, path.stat().st_size
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 200


@needs_generator
def test_fanout_tiny(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fanout = importlib.import_module("scale.fanout")  # bench_scale put interop/ on sys.path
    monkeypatch.setattr(fanout, "DURATION", 1.0)
    monkeypatch.setattr(fanout, "DRAIN", 10.0)
    monkeypatch.setattr(fanout, "FANOUT_DRAIN", 10.0)
    monkeypatch.setattr(fanout, "DELIVERY_BUDGET", 60_000)
    monkeypatch.setattr(fanout, "PUBLISH_BUDGET", 60_000)
    monkeypatch.setattr(fanout, "RAW_PUBLISH_BUDGET", 30_000)
    # 2 producers are amqpgen's; 3, over MAX_THREADS, are scale/many_publishers.py's
    monkeypatch.setattr(fanout, "MAX_THREADS", 2)
    assert bench_scale.main(["fanout", "--brokers", "amqpbroker", "--steps", "2,3",
                             "--out-dir", str(runs_dir)]) == 0
    rows = read_lines(runs_dir / "fanout.jsonl")
    assert [(r["axis"], r["broker"], r["step"]) for r in rows] == \
        [("fanout", "amqpbroker", 2), ("fanout", "amqpbroker", 3)]
    for row in rows:
        m = row["metrics"]
        n = row["step"]
        assert m["fanout_ok"] == 1, m
        assert positive(m["fanout_deliveries_per_s"]) and positive(m["fanout_publishes_per_s"])
        assert 0 < m["fanout_cpu_us_per_delivery"] < 10_000
        # every publish reached every one of the n queues
        assert m["fanout_delivered"] == m["fanout_published"] * n == m["fanout_expected"]
        assert m["fanout_published"] <= 60_000 // n
        assert m["fanout_queues"] == n and m["fanout_consumer_connections"] == min(n, 2)
        assert positive(m["rss_mib"])
    step2, step3 = rows
    m = step2["metrics"]
    assert m["publishers_ok"] == 1 and m["publishers_producers"] == 2, m
    assert positive(m["publishers_deliveries_per_s"])
    assert 0 < m["publishers_cpu_us_per_msg"] < 10_000
    assert m["publishers_delivered"] == m["publishers_published"] <= 60_000
    assert "error" not in m
    # more producers than the generator can run: the asyncio publishers, every message
    # delivered once
    m = step3["metrics"]
    assert m["publishers_ok"] == 1 and m["publishers_producers"] == 3, m
    assert m["publishers_generator"].startswith("many_publishers")
    assert positive(m["publishers_deliveries_per_s"]) and positive(m["publishers_publishes_per_s"])
    assert 0 < m["publishers_cpu_us_per_msg"] < 10_000
    assert "error" not in m


@needs_generator
def test_latency_tiny(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    latency = importlib.import_module("scale.latency")
    monkeypatch.setattr(latency, "MAX_DURATION", 1.0)
    monkeypatch.setattr(latency, "STEP_DURATION", 1.5)
    monkeypatch.setattr(latency, "DRAIN", 10.0)
    assert bench_scale.main(["latency", "--brokers", "amqpbroker", "--steps", "10,20",
                             "--out-dir", str(runs_dir)]) == 0
    rows = read_lines(runs_dir / "latency.jsonl")
    assert [(r["axis"], r["broker"], r["step"]) for r in rows] == \
        [("latency", "amqpbroker", 10), ("latency", "amqpbroker", 20)]
    top = rows[0]["metrics"]["max_rate_msgs_per_s"]
    assert positive(top)
    for row in rows:
        m = row["metrics"]
        assert m["ok"] == 1 and "error" not in m, m
        assert m["percent"] == row["step"]
        assert m["max_rate_msgs_per_s"] == top
        assert m["rate_msgs_per_s"] == max(1, round(top * row["step"] / 100))
        assert positive(m["latency_samples"])
        assert 0 <= m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"] <= m["p999_ms"] <= m["max_ms"]
        assert m["sched_lag_max_ms"] >= 0
        assert m["p99_corrected_ms_upper"] == pytest.approx(m["p99_ms"] + m["sched_lag_max_ms"])
        assert 0 <= m["late_share_upper"] <= 1
        if "late_share" in m:  # only when amqpgen reported it: over 1% late
            assert 0.01 <= m["late_share"] == m["late_share_upper"]
        assert positive(m["achieved_out_rate"]) and positive(m["broker_cpu_us_per_msg"])
        assert m["other_cores"] is None or m["other_cores"] >= 0


def test_plot_the_tiny_runs(runs_dir: Path) -> None:
    """plot_scale on what the two tests above wrote."""
    present = [a for a in ("fanout", "latency") if (runs_dir / f"{a}.jsonl").exists()]
    if len(present) < 2:
        pytest.skip("needs the JSON lines of test_fanout_tiny and test_latency_tiny")
    assert plot_scale.main(["--out-dir", str(runs_dir), "fanout", "latency"]) == 0
    assert_png(runs_dir / "fanout.png")
    assert_png(runs_dir / "latency.png")


def synthetic(axis: str, broker: str, step, **metrics) -> str:
    return json.dumps({"axis": axis, "broker": broker, "step": step, "version": "x",
                       "date": "2026-12-06T00:00:00Z", "metrics": metrics})


def test_plot_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lines = []
    for broker, scale in (("amqpbroker", 1.0), ("rabbitmq", 2.0)):
        for step in (10, 100, 1000):
            # measured three times: median drawn, min..max as an error bar
            for k in (0.9, 1.0, 1.2):
                lines.append(synthetic(
                    "fanout", broker, step, fanout_deliveries_per_s=1e5 * k / scale,
                    fanout_cpu_us_per_delivery=2.0 * k * scale,
                    publishers_deliveries_per_s=None if step == 1000 else 9e4 * k,
                    publishers_cpu_us_per_msg=None if step == 1000 else 5.0 * k,
                    error="publishers: too many" if step == 1000 else None))
        for pct in (25, 50, 75):
            lines.append(synthetic("latency", broker, pct, p50_ms=0.3 * pct * scale,
                                   p99_ms=2.0 * pct ** 2, p999_ms=1e4 if pct == 75 else 3.0,
                                   p99_corrected_ms_upper=2.5 * pct ** 2))
        # another axis's metrics, partly missing: connections has no open_seconds here
        for n in (100, 1000, 10000):
            lines.append(synthetic("connections", broker, n, kb_per_connection=50 / scale,
                                   probe_active_p99_ms=None if n == 10000 else 1.5))
        # an axis not in the table: its first numeric metrics are drawn
        lines.append(synthetic("backlogx", broker, 1_000_000, rss_mib=100.0 * scale,
                               status="OK", ok=True))
        lines.append(synthetic("backlogx", broker, 3_000_000, rss_mib=300.0 * scale))
    for axis in ("fanout", "latency", "connections", "backlogx"):
        (tmp_path / f"{axis}.jsonl").write_text(
            "\n".join(l for l in lines if f'"axis": "{axis}"' in l) + "\nnot json\n\n")
    # a file with nothing plottable: no PNG, no failure
    (tmp_path / "sizes.jsonl").write_text(synthetic("sizes", "amqpbroker", 16, mb_per_s=None,
                                                    error="could not") + "\n")
    assert plot_scale.main(["--out-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    for axis in ("fanout", "latency", "connections", "backlogx"):
        assert_png(tmp_path / f"{axis}.png")
    assert not (tmp_path / "sizes.png").exists()
    assert "'open_seconds' is not in the data" in err
    assert "not JSON" in err
    # one axis by name, and a missing one only noted
    (tmp_path / "fanout.png").unlink()
    assert plot_scale.main(["--out-dir", str(tmp_path), "fanout", "queues"]) == 0
    assert_png(tmp_path / "fanout.png")
    assert "queues.jsonl does not exist" in capsys.readouterr().err


def test_plot_series_median_and_range() -> None:
    rows = [json.loads(synthetic("fanout", "amqpbroker", s, fanout_deliveries_per_s=v))
            for s, v in ((10, 3.0), (10, 1.0), (10, 2.0), (100, 5.0), (100, None))]
    assert plot_scale.series(rows, "fanout_deliveries_per_s") == {
        "amqpbroker": [(10.0, 2.0, 1.0, 3.0), (100.0, 5.0, 5.0, 5.0)]}
