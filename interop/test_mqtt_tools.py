"""Other MQTT clients: aiomqtt (asyncio, on paho), Debian's mosquitto_pub/mosquitto_sub
(3.1.1 and 5), MQTT.js over WebSocket from Node. Missing tools FAIL, never skip."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import aiomqtt
import pytest

from .harness import require_node
from .mqtt_clients import collect_garbage, V5, Paho, mqtt_broker

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def _no_leaked_sockets():
    yield
    collect_garbage()
NODE_DIR = __import__("pathlib").Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def broker():
    with mqtt_broker(mqtt_ws_port=0) as b:
        yield b


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (Debian package mosquitto-clients; .ci/run installs it)"
    return path


async def test_aiomqtt_publish_subscribe(broker):
    async with aiomqtt.Client("127.0.0.1", broker.mqtt_port, username="guest", password="guest",
                              identifier="aio-sub") as sub, \
            aiomqtt.Client("127.0.0.1", broker.mqtt_port, username="guest", password="guest",
                           identifier="aio-pub", protocol=aiomqtt.ProtocolVersion.V5) as pub:
        await sub.subscribe("aio/+/level", qos=1)
        for i in range(3):
            await pub.publish(f"aio/{i}/level", b"%d" % i, qos=1)
        got = []
        async with asyncio.timeout(10):
            async for m in sub.messages:
                got.append((str(m.topic), m.payload, m.qos))
                if len(got) == 3:
                    break
        assert got == [(f"aio/{i}/level", b"%d" % i, 1) for i in range(3)]


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_pub_and_sub(broker, version):
    common = ["-h", "127.0.0.1", "-p", str(broker.mqtt_port), "-u", "guest", "-P", "guest",
              "-V", version]
    sub = subprocess.Popen([_tool("mosquitto_sub"), *common, "-t", f"tools/{version}/#",
                            "-q", "1", "-C", "3", "-v", "-i", f"msub-{version}"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wait until the subscription exists: a retained-free probe until it is seen
        probe = Paho(broker.mqtt_port, f"probe-{version}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            q = broker.call_soon(lambda: broker.core.vhosts["/"].queues.get(
                f"mqtt-subscription-msub-{version}qos1"))
            if q is not None and q.consumers:
                break
            time.sleep(0.05)
        probe.disconnect()
        for i in range(3):
            subprocess.run([_tool("mosquitto_pub"), *common, "-t", f"tools/{version}/{i}",
                            "-m", f"m{i}", "-q", "1"], check=True, timeout=10)
        out, err = sub.communicate(timeout=15)
    finally:
        sub.kill()
    assert sub.returncode == 0, err
    assert out.splitlines() == [f"tools/{version}/{i} m{i}" for i in range(3)]


def test_mosquitto_sub_receives_retained(broker):
    common = ["-h", "127.0.0.1", "-p", str(broker.mqtt_port), "-u", "guest", "-P", "guest"]
    subprocess.run([_tool("mosquitto_pub"), *common, "-t", "tools/retained", "-m", "kept",
                    "-r", "-q", "1"], check=True, timeout=10)
    out = subprocess.run([_tool("mosquitto_sub"), *common, "-t", "tools/retained", "-C", "1",
                          "-W", "10"], capture_output=True, text=True, timeout=15)
    assert out.stdout.strip() == "kept", out.stderr




@pytest.mark.parametrize("version", [4, 5])
def test_mqtt_js_over_websocket(broker, version):
    require_node()
    url = f"ws://127.0.0.1:{broker.mqtt_ws_port}/ws"
    out = subprocess.run(["node", "mqtt_ws_check.js", url, str(version)], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    import json
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert (got["topic"], got["payload"], got["qos"]) == ("browser/1/events", "from mqtt.js", 1)
    if version == 5:
        assert got["user"] == {"origin": "node"}


def test_websocket_wrong_path_is_404(broker):
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{broker.mqtt_ws_port}/other", timeout=5)
    assert info.value.code == 404
    info.value.close()
