"""Real MQTT clients for the interop tests: paho-mqtt driven synchronously (its network
loop runs in its own thread), and a broker in a thread with its MQTT listeners on."""

from __future__ import annotations

import queue
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from amqpbroker.embed import run_in_thread

TIMEOUT = 10.0
V311, V5 = mqtt.MQTTv311, mqtt.MQTTv5


@contextmanager
def mqtt_broker(**settings: Any) -> Iterator[Any]:
    settings.setdefault("mqtt_port", 0)
    with run_in_thread(**settings) as broker:
        yield broker


def props(kind: int = PacketTypes.PUBLISH, **values: Any) -> Properties:
    p = Properties(kind)
    for k, v in values.items():
        setattr(p, k, v)
    return p


class Paho:
    """One paho client: connect, subscribe and publish wait for their acknowledgements."""

    def __init__(self, port: int, client_id: str = "", version: int = V311, *,
                 clean: bool = True, user: str | None = "guest", password: str = "guest",
                 transport: str = "tcp", will: tuple[str, bytes, int, bool] | None = None,
                 connect_props: Properties | None = None, will_props: Properties | None = None,
                 keepalive: int = 60) -> None:
        self.version = version
        kw: dict[str, Any] = {"client_id": client_id, "protocol": version, "transport": transport}
        if version != V5:
            kw["clean_session"] = clean
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, **kw)
        if transport == "websockets":
            self.client.ws_set_options(path="/ws")
        if user is not None:
            self.client.username_pw_set(user, password)
        if will is not None:
            self.client.will_set(*will, properties=will_props)
        self.messages: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        self.connack: "queue.Queue[tuple[Any, Any, Any]]" = queue.Queue()
        self.subacks: "queue.Queue[list[Any]]" = queue.Queue()
        self.disconnects: "queue.Queue[Any]" = queue.Queue()
        c = self.client
        c.on_message = lambda cl, u, m: self.messages.put(m)
        c.on_connect = lambda cl, u, flags, rc, pr: self.connack.put((flags, rc, pr))
        c.on_subscribe = lambda cl, u, mid, codes, pr: self.subacks.put(codes)
        c.on_disconnect = lambda cl, u, flags, rc, pr: self.disconnects.put(rc)
        extra: dict[str, Any] = {}
        if version == V5:
            extra["clean_start"] = clean
            extra["properties"] = connect_props
        c.connect("127.0.0.1", port, keepalive=keepalive, **extra)
        c.loop_start()
        self.flags, self.rc, self.connack_props = self.connack.get(timeout=TIMEOUT)

    @property
    def session_present(self) -> bool:
        return bool(self.flags.session_present)

    def subscribe(self, topic: str, qos: int = 1, properties: Properties | None = None,
                  **kw: Any) -> list[Any]:
        if self.version == V5:
            self.client.subscribe(topic, options=mqtt.SubscribeOptions(qos=qos, **kw),
                                  properties=properties)
        else:
            self.client.subscribe(topic, qos)
        return self.subacks.get(timeout=TIMEOUT)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                properties: Properties | None = None) -> None:
        info = self.client.publish(topic, payload, qos, retain, properties=properties)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()

    def get(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def nothing(self, wait: float = 0.5) -> bool:
        try:
            self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def disconnect(self) -> None:
        self.client.disconnect()
        self.stop()

    def stop(self) -> None:
        """Stop the network thread and close every socket paho holds (its wake-up socket
        pair too: left to the garbage collector they raise ResourceWarning)."""
        self.client.loop_stop()
        self.client._reset_sockets()

    def drop(self) -> None:
        """Vanish without DISCONNECT (the will fires)."""
        self.stop()


def wait_until(cond: Any, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


__all__ = ["Paho", "V311", "V5", "mqtt_broker", "props", "wait_until", "threading"]


def collect_garbage() -> None:
    """Collect the clients a test dropped now, so that an unclosed socket is reported in
    the test that leaked it (warnings are errors) rather than in a later one."""
    import gc
    gc.collect()
