"""An in-memory twin of the broker core as the MQTT session sees it (`mqtt/port.py`):
queues with bindings on topic exchanges, consumers with prefetch, publisher confirms that a
test releases by hand (`auto_confirm=False`) to prove PUBACK waits for them."""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Callable

from amqpbroker.mqtt.port import Delivery, OutgoingMessage, Refused


def topic_match(key: str, routing_key: str) -> bool:
    parts = []
    for word in key.split("."):
        parts.append({"*": r"[^.]*", "#": r".*"}.get(word, re.escape(word)))
    pattern = r"\.".join(parts).replace(r".*\.", r"(?:.*\.)?").replace(r"\..*", r"(?:\..*)?")
    return re.fullmatch(pattern, routing_key) is not None


class FakeQueue:
    def __init__(self, name, durable, arguments):
        self.name, self.durable, self.arguments = name, durable, arguments
        self.ready: deque = deque()
        self.bindings: list[tuple[str, str, dict]] = []
        self.consumers: list[FakeConsumer] = []
        self.unacked = 0


class FakeConsumer:
    def __init__(self, vhost, queue, prefetch, on_delivery):
        self.vhost, self.queue, self.prefetch, self.on_delivery = vhost, queue, prefetch, on_delivery
        self.unacked = 0
        self.active = True


class FakeUser:
    def __init__(self, name, password, vhosts, write_ok=lambda rk: True, read_ok=lambda rk: True):
        self.name, self.password, self.vhosts = name, password, vhosts
        self.write_ok, self.read_ok = write_ok, read_ok


class FakeCore:
    def __init__(self):
        self.users = {"guest": FakeUser("guest", "guest", {"/"})}
        self.queues: dict[tuple[str, str], FakeQueue] = {}
        self.vhosts = {"/"}
        self.auto_confirm = True
        self.pending_confirms: list[Callable[[bool], None]] = []
        self.published: list[OutgoingMessage] = []
        self.retained_disk: dict[tuple[str, str], object] = {}

    def authenticate(self, username, password, loopback):
        user = self.users.get(username)
        if user is None or user.password != password:
            raise Refused("login", "bad credentials")
        return user

    def vhost_exists(self, name):
        return name in self.vhosts

    def open(self, user, vhost):
        if vhost not in self.vhosts or vhost not in user.vhosts:
            raise Refused("vhost", f"access to vhost '{vhost}' refused")
        return FakeVhost(self, user, vhost)

    def confirm_all(self, ok=True):
        pending, self.pending_confirms = self.pending_confirms, []
        for cb in pending:
            cb(ok)

    def queue(self, vhost, name):
        return self.queues.get((vhost, name))


class FakeVhost:
    def __init__(self, core: FakeCore, user: FakeUser, name: str):
        self.core, self.user, self.name = core, user, name
        self.consumers: list[FakeConsumer] = []
        self.outstanding: list[tuple[FakeConsumer, Any]] = []

    def after_read(self):
        pass

    def set_client_id(self, client_id):
        self.client_id = client_id

    def set_protocol(self, label):
        self.protocol = label

    def resume(self):
        pass

    def store_retained(self, topic, retained):
        if retained is None:
            self.core.retained_disk.pop((self.name, topic), None)
        else:
            self.core.retained_disk[(self.name, topic)] = retained

    def load_retained(self):
        return [r for (v, _), r in self.core.retained_disk.items() if v == self.name]

    def check(self, permission, resource, name, routing_key=None):
        ok = self.user.write_ok if permission == "write" else self.user.read_ok
        if routing_key is not None and not ok(routing_key):
            raise Refused("access", f"{permission} access to topic '{routing_key}' refused")

    def declare_queue(self, name, *, durable, auto_delete, arguments):
        key = (self.name, name)
        if key in self.core.queues:
            self.core.queues[key].arguments = arguments
            return True
        self.core.queues[key] = FakeQueue(name, durable, arguments)
        return False

    def queue_exists(self, name):
        return (self.name, name) in self.core.queues

    def delete_queue(self, name):
        q = self.core.queues.pop((self.name, name), None)
        if q is not None:
            for c in q.consumers:
                c.active = False

    def bind(self, queue, exchange, key, arguments):
        q = self.core.queues[(self.name, queue)]
        if (exchange, key, arguments) not in q.bindings:
            q.bindings.append((exchange, key, dict(arguments)))

    def unbind(self, queue, exchange, key, arguments):
        q = self.core.queues.get((self.name, queue))
        if q is not None and (exchange, key, arguments) in q.bindings:
            q.bindings.remove((exchange, key, arguments))

    def bindings(self, queue):
        return list(self.core.queues[(self.name, queue)].bindings)

    def publish(self, msg: OutgoingMessage, on_safe):
        self.core.published.append(msg)
        for (vhost, _), q in list(self.core.queues.items()):
            if vhost == self.name and any(ex == msg.exchange and topic_match(k, msg.routing_key)
                                          for ex, k, _ in q.bindings):
                q.ready.append((msg, False))
                self._dispatch(q)
        if self.core.auto_confirm:
            on_safe(True)
        else:
            self.core.pending_confirms.append(on_safe)

    def consume(self, queue, prefetch, on_delivery, no_ack=False):
        q = self.core.queues[(self.name, queue)]
        c = FakeConsumer(self, q, prefetch, on_delivery)
        q.consumers.append(c)
        self.consumers.append(c)
        self._dispatch(q)
        return c

    def cancel(self, c):
        c.active = False
        if c in c.queue.consumers:
            c.queue.consumers.remove(c)

    def close(self):
        for c in self.consumers:
            self.cancel(c)
        for c, entry in self.outstanding:
            msg, _ = entry
            c.queue.ready.appendleft((msg, True))
        self.outstanding.clear()

    def _dispatch(self, q: FakeQueue):
        progress = True
        while q.ready and progress:
            progress = False
            for c in list(q.consumers):
                if not q.ready:
                    break
                if c.active and (not c.prefetch or c.unacked < c.prefetch):
                    entry = q.ready.popleft()
                    c.unacked += 1
                    c.vhost.outstanding.append((c, entry))
                    msg, redelivered = entry
                    q.consumers.remove(c)  # round robin, as a queue's consumers take turns
                    q.consumers.append(c)
                    c.on_delivery(Delivery(msg.routing_key, msg.body, msg.properties, redelivered,
                                           lambda ack, c=c, entry=entry: c.vhost._settle(c, entry, ack),
                                           msg.exchange))
                    progress = True

    def _settle(self, c, entry, ack):
        if (c, entry) in self.outstanding:
            self.outstanding.remove((c, entry))
            c.unacked -= 1
            self._dispatch(c.queue)
