"""Broker-wide MQTT state, without IO: who is connected under which client id, the retained
messages, QoS 2 publishes awaiting PUBREL, and wills waiting for their delay.

One `MQTTRegistry` per broker, shared by every MQTT session (the way `BrokerCore` is shared
by AMQP connections). Timers are driven by `tick(now)` from the server shell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from amqpbroker.mqtt import topics
from amqpbroker.mqtt.options import MQTTSettings

if TYPE_CHECKING:
    from amqpbroker.mqtt.port import CorePort
    from amqpbroker.mqtt.session import MQTTSession


@dataclass
class Retained:
    topic: str
    payload: bytes
    qos: int
    properties: dict[str, Any] = field(default_factory=dict)


class RetainedStore:
    """The retained message of each topic, per vhost (3.3.1.3), in memory for matching;
    every change is made durable through the vhost's port (`store_retained`), and a
    vhost's retained messages are read back (`load_retained`) at its first MQTT
    connection after a start."""

    def __init__(self) -> None:
        self.by_vhost: dict[str, dict[str, Retained]] = {}
        self.loaded: set[str] = set()

    def ensure_loaded(self, vhost: Any) -> None:
        if vhost.name in self.loaded:
            return
        self.loaded.add(vhost.name)
        topics_ = self.by_vhost.setdefault(vhost.name, {})
        for msg in vhost.load_retained():
            topics_.setdefault(msg.topic, msg)

    def put(self, vhost: Any, msg: Retained) -> None:
        self.ensure_loaded(vhost)
        topics_ = self.by_vhost.setdefault(vhost.name, {})
        if msg.payload:
            topics_[msg.topic] = msg
        elif topics_.pop(msg.topic, None) is None:
            return  # clearing a topic without a retained message changes nothing
        vhost.store_retained(msg.topic, msg if msg.payload else None)

    def matching(self, vhost: str, topic_filter: str) -> list[Retained]:
        return [m for t, m in sorted(self.by_vhost.get(vhost, {}).items())
                if topics.matches(topic_filter, t)]


@dataclass
class PendingWill:
    due: float
    vhost: str
    client_id: str
    fire: Callable[[], None]


class MQTTRegistry:
    def __init__(self, core: "CorePort", settings: MQTTSettings | None = None,
                 retained: RetainedStore | None = None) -> None:
        self.core = core
        self.settings = settings or MQTTSettings()
        self.retained = retained or RetainedStore()
        self.sessions: dict[tuple[str, str], "MQTTSession"] = {}
        # QoS 2 packet ids received (PUBREC sent) but not yet released, per client: they
        # outlive a connection so that a resent PUBLISH is not routed twice (4.3.3).
        self.awaiting_rel: dict[tuple[str, str], set[int]] = {}
        self.wills: list[PendingWill] = []
        self.next_client_number = 0

    def register(self, vhost: str, client_id: str, session: "MQTTSession") -> None:
        """Client id takeover (3.1.4-3): a second connection closes the first."""
        old = self.sessions.get((vhost, client_id))
        if old is not None and old is not session:
            old.taken_over()
        self.sessions[(vhost, client_id)] = session
        self.cancel_will(vhost, client_id)

    def unregister(self, vhost: str, client_id: str, session: "MQTTSession") -> None:
        if self.sessions.get((vhost, client_id)) is session:
            del self.sessions[(vhost, client_id)]

    def assign_client_id(self) -> str:
        self.next_client_number += 1
        return f"amqpbroker-{id(self) & 0xFFFFFF:06x}-{self.next_client_number}"

    # -- wills (5.0 3.1.3.2: Will Delay Interval) -------------------------------------------
    def schedule_will(self, due: float, vhost: str, client_id: str, fire: Callable[[], None]) -> None:
        self.wills.append(PendingWill(due, vhost, client_id, fire))

    def cancel_will(self, vhost: str, client_id: str) -> None:
        self.wills = [w for w in self.wills if (w.vhost, w.client_id) != (vhost, client_id)]

    def tick(self, now: float) -> None:
        due = [w for w in self.wills if w.due <= now]
        if due:
            self.wills = [w for w in self.wills if w.due > now]
            for w in due:
                w.fire()
