"""Drive MQTT sessions with packets over the in-memory core: a client/server pair harness."""

from __future__ import annotations

from amqpbroker.mqtt import packets as p
from amqpbroker.mqtt.codec import decode_packet, encode_packet
from amqpbroker.mqtt.reader import PacketReader
from amqpbroker.mqtt.registry import MQTTRegistry, MQTTSettings
from amqpbroker.mqtt.session import MQTTSession
from fake_core import FakeCore


class Client:
    def __init__(self, registry: MQTTRegistry, version: int = 4, now: float = 0.0):
        self.registry = registry
        self.version = version
        self.session = MQTTSession(registry, "test:1", now)
        self.reader = PacketReader()
        self.now = now

    def send(self, *packets: p.Packet) -> list[p.Packet]:
        data = b"".join(encode_packet(x, self.version) for x in packets)
        return self.send_bytes(data)

    def send_bytes(self, data: bytes) -> list[p.Packet]:
        """Feeds `data` and, as the listener does on later loop turns, what the session
        held back by its turn budget (`input_waiting`)."""
        self.session.feed(data, self.now)
        while self.session.input_waiting and not self.session.closed:
            self.session.feed(b"", self.now)
        return self.received()

    def feed_once(self, data: bytes) -> list[p.Packet]:
        """One turn only: what is held back stays held (`session.input_waiting`)."""
        self.session.feed(data, self.now)
        return self.received()

    def received(self) -> list[p.Packet]:
        return [decode_packet(f, b, self.version)
                for f, b in self.reader.feed(self.session.data_to_send())]

    def connect(self, client_id: str = "c1", clean: bool = True, **kw) -> p.ConnAck:
        kw.setdefault("username", "guest")
        kw.setdefault("password", b"guest")
        out = self.send(p.Connect(client_id=client_id, protocol_level=self.version,
                                  clean_start=clean, **kw))
        assert isinstance(out[0], p.ConnAck), out
        return out[0]

    def subscribe(self, *filters: str, qos: int = 1, pid: int = 1, **props) -> list[p.Packet]:
        return self.send(p.Subscribe(pid, [(f, p.SubOptions(qos)) for f in filters], props))


def make(settings: MQTTSettings | None = None):
    core = FakeCore()
    return core, MQTTRegistry(core, settings)
