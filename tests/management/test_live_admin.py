"""Live administration is stored in the definitions store: it survives a restart and
kill -9, and combines with the configuration file's users as docs/management.md says."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import aio_pika
import aiohttp
import pytest

from amqpbroker.embed import Broker
from management_http import Api


async def _setup_live_state(api: Api) -> None:
    assert (await api.put("/api/vhosts/tenant", {"description": "t1",
                                                 "default_queue_type": "quorum"}))[0] == 201
    assert (await api.put("/api/users/ops", {"password": "s3cret",
                                             "tags": ["administrator"]}))[0] == 201
    assert (await api.put("/api/permissions/tenant/ops",
                          {"configure": "^ops-", "write": ".*", "read": ".*"}))[0] == 201
    assert (await api.put("/api/policies/tenant/lim", {"pattern": ".*", "definition":
                                                      {"max-length": 9}}))[0] == 201
    assert (await api.put("/api/vhost-limits/tenant/max-connections", {"value": 4}))[0] == 204
    assert (await api.put("/api/parameters/federation-upstream/tenant/s",
                          {"value": {"a": 1}}))[0] == 201
    assert (await api.put("/api/queues/tenant/ops-q", {"durable": True}, auth=("ops", "s3cret")
                          ))[0] == 201


async def _check_live_state(api: Api) -> None:
    api.auth = ("ops", "s3cret")
    status, v = await api.get("/api/vhosts/tenant")
    assert status == 200 and v["description"] == "t1" and v["default_queue_type"] == "quorum"
    assert (await api.get("/api/permissions/tenant/ops"))[1]["configure"] == "^ops-"
    assert (await api.get("/api/policies/tenant/lim"))[1]["definition"] == {"max-length": 9}
    assert (await api.get("/api/vhost-limits/tenant"))[1][0]["value"] == {"max-connections": 4}
    assert (await api.get("/api/parameters/federation-upstream/tenant/s")
            )[1]["value"] == {"a": 1}
    q = (await api.get("/api/queues/tenant/ops-q"))[1]
    assert q["type"] == "quorum"  # the vhost's default queue type applied at declare
    assert [u["name"] for u in (await api.get("/api/users"))[1]] == ["ops"]  # guest deleted


async def test_live_changes_survive_a_restart(tmp_path) -> None:
    settings = {"data_dir": str(tmp_path), "management": True, "loopback_users": ()}
    async with Broker(**settings) as broker, aiohttp.ClientSession() as s:
        api = Api(s, broker.management_url)
        await _setup_live_state(api)
        assert (await api.delete("/api/users/guest", auth=("ops", "s3cret")))[0] == 204
    for _ in range(2):  # the second start reads the compacted store
        async with Broker(**settings) as broker, aiohttp.ClientSession() as s:
            await _check_live_state(Api(s, broker.management_url))
            with pytest.raises(Exception):  # guest stays deleted
                await aio_pika.connect(broker.url)


CONFIG = """
users:
  - {name: admin, password: adminpw, tags: [administrator]}
permissions:
  - {user: admin, vhost: /, configure: .*, write: .*, read: .*}
"""


async def test_config_users_and_live_users_combine(tmp_path) -> None:
    settings = {"data_dir": str(tmp_path), "management": True, "loopback_users": (),
                "config": CONFIG}
    async with Broker(**settings) as broker, aiohttp.ClientSession() as s:
        api = Api(s, broker.management_url)
        api.auth = ("admin", "adminpw")
        assert [u["name"] for u in (await api.get("/api/users"))[1]] == ["admin"]
        await api.put("/api/users/live", {"password": "p", "tags": "management"})
        await api.put("/api/users/admin", {"password": "changed", "tags": "administrator"})
    async with Broker(**settings) as broker, aiohttp.ClientSession() as s:
        api = Api(s, broker.management_url)
        api.auth = ("admin", "adminpw")  # the file's password wins at boot
        names = [u["name"] for u in (await api.get("/api/users"))[1]]
        assert names == ["admin", "live"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(data_dir: str, mport: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--host", "127.0.0.1", "--port", "0",
         "--management-port", str(mport), "--prometheus-port", "0", "--data-dir", data_dir],
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if re.search(r"listening on port (\d+)", line):
            return proc
    proc.kill()
    raise AssertionError(f"broker did not start: {proc.stderr.read()}")


async def test_live_changes_survive_kill_9(tmp_path) -> None:
    mport = _free_port()
    proc = _start(str(tmp_path), mport)
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, f"http://127.0.0.1:{mport}")
            await _setup_live_state(api)
            assert (await api.delete("/api/users/guest", auth=("ops", "s3cret")))[0] == 204
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stderr.close()  # type: ignore[union-attr]
        proc = _start(str(tmp_path), mport)
        async with aiohttp.ClientSession() as s:
            await _check_live_state(Api(s, f"http://127.0.0.1:{mport}"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
