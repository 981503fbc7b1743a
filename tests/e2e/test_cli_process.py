"""The command line: start as a process, serve, stop cleanly on SIGTERM/SIGINT."""

import asyncio
import re
import signal
import subprocess
import sys
import time

import aio_pika
import pytest


def start_broker(*args: str, data_dir: str | None = None) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "amqpbroker", "serve", "--management-port", "0", "--prometheus-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--data-dir", data_dir] if data_dir else ["--in-memory"]
    proc = subprocess.Popen([*cmd, *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on port (\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise AssertionError(f"broker did not start: {proc.stderr.read()}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_closes_clients_with_320_and_exits_0(sig, tmp_path):
    proc, port = start_broker(data_dir=str(tmp_path))
    try:
        conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        closed = asyncio.get_running_loop().create_future()
        conn.close_callbacks.add(lambda _c, exc: closed.done() or closed.set_result(exc))
        proc.send_signal(sig)
        exc = await asyncio.wait_for(closed, 5)
        assert "CONNECTION_FORCED" in str(exc)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "amqpbroker", "--version"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip()
    out = subprocess.run([sys.executable, "-m", "amqpbroker", "serve", "--help"],
                         capture_output=True, text=True, timeout=30)
    assert "--data-dir" in out.stdout


def test_second_broker_on_the_same_data_dir_is_refused(tmp_path):
    proc, _port = start_broker(data_dir=str(tmp_path))
    try:
        second = subprocess.run(
            [sys.executable, "-m", "amqpbroker", "serve", "--management-port", "0", "--prometheus-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert "in use by another amqpbroker process" in second.stderr
        imported = subprocess.run(
            [sys.executable, "-m", "amqpbroker", "definitions", "import", "--data-dir",
             str(tmp_path), "config/broker.yaml"],
            capture_output=True, text=True, timeout=30)
        assert imported.returncode != 0 and "in use" in imported.stderr
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()
    # Once the broker is gone, the data dir is free again.
    proc, _port = start_broker(data_dir=str(tmp_path))
    proc.terminate()
    proc.wait(10)
    proc.stderr.close()


def test_unwritable_data_dir_is_a_clear_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a directory")
    out = subprocess.run(
        [sys.executable, "-m", "amqpbroker", "serve", "--management-port", "0", "--prometheus-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(target / "data")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "cannot start" in out.stderr and "Traceback" not in out.stderr
