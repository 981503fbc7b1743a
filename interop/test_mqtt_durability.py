"""MQTT state that must survive the broker: a persistent session (its queue, subscriptions
and QoS 1 messages) and retained messages across a clean restart, and no PUBACKed QoS 1
message lost on a persistent session when the broker is killed with SIGKILL."""

from __future__ import annotations

import random
import socket
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from .mqtt_clients import collect_garbage, V5, V311, Paho, mqtt_broker, props

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def _no_leaked_sockets():
    yield
    collect_garbage()


def test_persistent_session_and_retained_survive_restart(tmp_path):
    with mqtt_broker(data_dir=str(tmp_path)) as b:
        dev = Paho(b.mqtt_port, "meter-1", V311, clean=False)
        dev.subscribe("meters/1/cmd", 1)
        dev.disconnect()
        pub = Paho(b.mqtt_port, "ops", V5)
        for i in range(3):
            pub.publish("meters/1/cmd", b"cmd%d" % i, 1)
        pub.publish("meters/1/config", b"v2", 1, retain=True,
                    properties=props(ContentType="text/plain", UserProperty=[("rev", "2")]))
        pub.disconnect()
    with mqtt_broker(data_dir=str(tmp_path)) as b:
        dev = Paho(b.mqtt_port, "meter-1", V311, clean=False)
        assert dev.session_present
        assert [dev.get().payload for _ in range(3)] == [b"cmd0", b"cmd1", b"cmd2"]
        viewer = Paho(b.mqtt_port, "viewer", V5)
        viewer.subscribe("meters/+/config", 1)
        m = viewer.get()
        assert (m.topic, m.payload, m.retain) == ("meters/1/config", b"v2", True)
        assert m.properties.ContentType == "text/plain"
        assert ("rev", "2") in m.properties.UserProperty
        # the subscription itself survived: a new publish still reaches the device
        viewer.publish("meters/1/cmd", b"after restart", 1)
        assert dev.get().payload == b"after restart"
        viewer.publish("meters/1/config", b"", 1, retain=True)  # clear it
        dev.disconnect()
        viewer.disconnect()
    with mqtt_broker(data_dir=str(tmp_path)) as b:
        late = Paho(b.mqtt_port, "late", V311)
        late.subscribe("meters/+/config", 1)
        assert late.nothing(0.5)
        late.disconnect()


def _serve(data_dir: str, log: Path) -> tuple[subprocess.Popen, int]:
    """`amqpbroker serve` with MQTT on a free port; its stderr goes to `log`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "amqpbroker", "serve", "--host", "127.0.0.1", "--port", "0",
           "--mqtt-port", str(port), "--mqtt-ws-port", "0", "--management-port", "0",
           "--prometheus-port", "0", "--data-dir", data_dir,
           "--log-level", "warning"]
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, stderr=err, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        if f"MQTT port {port}" in log.read_text(errors="replace"):
            return proc, port
        time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    raise AssertionError(f"broker did not start: {log.read_text(errors='replace')[-2000:]}")


@pytest.mark.parametrize("seed", range(1))
def test_kill_9_loses_no_pubacked_qos1_message(tmp_path, seed):
    rnd = random.Random(seed)
    log = tmp_path / "stderr.log"
    data = str(tmp_path / "data")
    proc, port = _serve(data, log)
    try:
        dev = Paho(port, "durable-dev", V311, clean=False)
        dev.subscribe("orders/#", 1)
        dev.disconnect()
        acked_mids: set[int] = set()  # paho calls on_publish on its own thread
        mids: dict[int, int] = {}
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="order-source",
                          protocol=mqtt.MQTTv311)
        pub.username_pw_set("guest", "guest")
        pub.max_inflight_messages_set(100)

        def on_publish(client, userdata, mid, rc, properties):
            acked_mids.add(mid)  # the PUBACK arrived

        pub.on_publish = on_publish
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        stop_at = time.monotonic() + rnd.uniform(0.3, 1.0)
        i = 0
        while time.monotonic() < stop_at and i < 20_000:
            info = pub.publish(f"orders/{i % 7}", b"%d" % i, qos=1)
            mids[info.mid] = i  # fewer than 65536 publishes: packet ids are not reused
            i += 1
            if i % 200 == 0:
                time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        pub.loop_stop()
        pub._reset_sockets()
        confirmed = {mids[m] for m in list(acked_mids)}
        assert confirmed, "no PUBACK before the kill: nothing was tested"
        log.write_text("")
        proc, port = _serve(data, log)
        dev = Paho(port, "durable-dev", V311, clean=False)
        assert dev.session_present
        got: set[int] = set()
        while True:
            try:
                m = dev.get(timeout=3)
            except Exception:
                break
            got.add(int(m.payload))
        print(f"published {i}, PUBACKed {len(confirmed)}, received after restart {len(got)}")
        missing = confirmed - got
        assert not missing, f"{len(missing)} PUBACKed messages lost, e.g. {sorted(missing)[:5]}"
        dev.disconnect()
    finally:
        proc.kill()
        proc.wait(10)
