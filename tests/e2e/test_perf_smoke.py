"""A short smoke run of `amqpbroker perf` against the broker: the tool works and verifies.

Not a benchmark: nothing here is timed; the numbers are only checked to exist.
"""

import json
import subprocess
import sys

import pytest

from amqpbroker import run_in_thread


@pytest.fixture(scope="module")
def url():
    with run_in_thread() as broker:
        yield broker.url


@pytest.mark.parametrize("args", [
    ["--size", "16", "--count", "2000"],
    ["--size", "1024", "--ack", "manual", "--prefetch", "50", "--confirm", "64",
     "--count", "2000"],
    ["--size", "32", "--exchange", "topic", "--bindings", "40", "--queues", "4",
     "--consumers", "4", "--count", "1000"],
])
def test_perf_run_verifies_ok(url, args):
    out = subprocess.run([sys.executable, "-m", "amqpbroker", "perf", "--uri", url, "--json",
                          "--timeout", "60", *args],
                         capture_output=True, text=True, timeout=90)
    result = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-2000:])
    assert result["status"] == "OK"
