"""`amqpbroker serve --config FILE`: the shipped example, with command-line overrides."""

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aio_pika

REPO = Path(__file__).resolve().parents[2]


def start(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "amqpbroker", "serve", "--management-port", "0", "--prometheus-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0", *args], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 15
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r"listening on port (\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise AssertionError("broker did not start:\n" + "".join(seen) + proc.stderr.read())


async def test_serve_the_shipped_config_with_overrides(tmp_path):
    # --port and --data-dir override the file's 5672 and ./data
    proc, port = start("--config", "config/broker.yaml", "--host", "127.0.0.1", "--port", "0",
                       "--data-dir", str(tmp_path), "--log-level", "warning")
    try:
        assert port != 5672
        async with await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/") as conn:
            ch = await conn.channel()
            orders = await ch.get_exchange("orders")
            queue = await ch.get_queue("orders.created")
            await orders.publish(aio_pika.Message(b"order"), routing_key="order.created")
            assert (await queue.get(no_ack=True, timeout=5)).body == b"order"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
        assert (tmp_path / "definitions").is_dir()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_serve_refuses_a_file_that_conflicts_with_the_data_dir(tmp_path):
    conflicting = tmp_path / "c.yaml"
    text = (REPO / "config" / "broker.yaml").read_text()
    conflicting.write_text(text.replace("type: topic ", "type: fanout"))
    proc, _ = start("--config", "config/broker.yaml", "--host", "127.0.0.1", "--port", "0",
                    "--data-dir", str(tmp_path / "data"))
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    proc.stderr.close()
    result = subprocess.run(
        [sys.executable, "-m", "amqpbroker", "serve", "--management-port", "0", "--prometheus-port", "0", "--config", str(conflicting),
         "--port", "0", "--host", "127.0.0.1", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 1
    assert "conflicts with the stored topology (1 problem)" in result.stderr
    assert ("exchanges[0]: inequivalent arg 'type' for exchange 'orders' in vhost '/': "
            "received 'fanout' but current is 'topic'") in result.stderr
