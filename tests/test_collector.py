"""The collector policy of `serve` (amqpbroker/collector.py): when a full collection runs."""

from __future__ import annotations

import gc
import subprocess
import sys

from amqpbroker.collector import NEVER, CollectorPolicy


class Process:
    """A fake clock, CPU clock and heap size for the policy."""

    def __init__(self) -> None:
        self.t = self.cpu = 0.0
        self.blocks = 1000
        self.collected = 0

    def policy(self, **kw) -> CollectorPolicy:
        p = CollectorPolicy(blocks=lambda: self.blocks, cpu=lambda: self.cpu,
                            now=lambda: self.t, collect=self.collect, **kw)
        p._baseline, p._last_now, p._last_cpu = self.blocks, self.t, self.cpu
        return p

    def collect(self) -> None:
        self.collected += 1
        self.blocks = int(self.blocks * 0.9)  # some garbage went

    def second(self, load: float, grow: int = 0) -> None:
        self.t += 1.0
        self.cpu += load
        self.blocks += grow


def test_no_collection_until_the_heap_grew_by_a_quarter():
    proc = Process()
    policy = proc.policy()
    for _ in range(10):
        proc.second(load=0.0, grow=20)
        policy.check()
    assert proc.blocks == 1200 and proc.collected == 0
    proc.second(load=0.0, grow=60)
    assert policy.check() and proc.collected == 1
    # the next one is measured from the heap after this collection
    proc.second(load=0.0, grow=100)
    assert not policy.check()


def test_a_busy_process_defers_the_collection_up_to_max_defer():
    proc = Process()
    policy = proc.policy(max_defer=30.0)
    proc.second(load=1.0, grow=500)
    assert not policy.check()  # due, but the process is busy: no pause now
    for _ in range(28):
        proc.second(load=0.95, grow=100)
        assert not policy.check()
    assert policy.deferred == 29
    proc.second(load=1.0)
    proc.second(load=1.0)
    assert policy.check()  # 30 s after it became due: runs even though busy
    assert proc.collected == 1


def test_a_deferred_collection_runs_as_soon_as_the_burst_ends():
    proc = Process()
    policy = proc.policy()
    for _ in range(5):
        proc.second(load=1.0, grow=1000)
        assert not policy.check()
    proc.second(load=0.1)
    assert policy.check() and proc.collected == 1


def test_settle_freezes_and_takes_over_full_collections_then_stop_gives_them_back():
    before = gc.get_threshold()
    policy = CollectorPolicy()
    policy.settle()
    try:
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (policy.young, NEVER, NEVER)
    finally:
        policy.stop()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_serve_runs_with_the_policy(tmp_path):
    """`serve` settles the collector once it has started (its log line says so)."""
    code = (
        "import asyncio, sys, gc\n"
        "from amqpbroker import cli\n"
        "from amqpbroker.settings import Settings\n"
        "async def main():\n"
        "    s = Settings(port=0, host='127.0.0.1', data_dir=None, mqtt_port=None,\n"
        "                 mqtt_ws_port=None, management_port=None, prometheus_port=None)\n"
        "    task = asyncio.create_task(cli.serve(s))\n"
        "    for _ in range(200):\n"
        "        await asyncio.sleep(0.05)\n"
        "        if gc.get_freeze_count():\n"
        "            break\n"
        "    print('frozen', gc.get_freeze_count(), 'threshold', gc.get_threshold()[2])\n"
        "    import signal, os\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    print('exit', await task, 'frozen', gc.get_freeze_count())\n"
        "asyncio.run(main())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    lines = [line.split() for line in out.stdout.splitlines()
             if line.startswith(("frozen", "exit"))]  # the broker logs to stdout too
    assert len(lines) == 2, out
    assert int(lines[0][1]) > 10_000 and int(lines[0][3]) == NEVER, out
    assert lines[1] == ["exit", "0", "frozen", "0"], out
    assert "gc.settled" in out.stdout
