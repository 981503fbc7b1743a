"""The admin facade's exchanges, queues, bindings, connections, channels and consumers
(a part of `broker.admin.Admin`). Every change goes through a broker core `Session` for
the acting user (`Admin.session`): the same code paths and permission checks as a
client's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from amqpbroker import errors
from amqpbroker.broker.admin_shapes import (
    _QUIET,
    CHANNEL_COUNTERS,
    BadRequest,
    _active_tag,
    _connection_state,
    _int,
    _persistent,
    _ready_bytes,
    _sum,
    binding_info,
    channel_counters,
    check_name,
    connection_name,
    message_json,
    properties_from_json,
    properties_key,
    queue_counters,
    GET_ACKMODES,
)
from amqpbroker.message import Message
from amqpbroker.model.exchange_base import Exchange
from amqpbroker.protocol.properties import encode_properties

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore
    from amqpbroker.broker.session import Session
    from amqpbroker.model.users import User
    from amqpbroker.model.vhost import VirtualHost


class TopologyAdmin:
    core: "BrokerCore"
    on_publish: Any
    node_name: str  # the node listings name (Admin.node_name: the cluster's node name)

    def vhost(self, name: str) -> "VirtualHost":
        raise NotImplementedError

    def vhost_names(self) -> list[str]:
        raise NotImplementedError

    def session(self, actor: "User | None", vhost: str) -> "Session":
        raise NotImplementedError

    # -- exchanges --------------------------------------------------------------------------
    def exchanges(self, vhost: str | None = None) -> list[dict[str, Any]]:
        names = [vhost] if vhost is not None else self.vhost_names()
        return [self._exchange_info(v, ex) for v in names
                for ex in self.vhost(v).exchanges.values()]

    def exchange_info(self, vhost: str, name: str) -> dict[str, Any]:
        return self._exchange_info(vhost, self.vhost(vhost).exchange(name))

    def _exchange_info(self, vhost: str, ex: Any) -> dict[str, Any]:
        info = self._exchange_shape(vhost, ex)
        if ex.delays:  # messages an x-delayed-message exchange holds (docs/management.md)
            info["messages_delayed"] = self.vhost(vhost).delayed.count(ex)
        return info

    def _exchange_shape(self, vhost: str, ex: Any) -> dict[str, Any]:
        return {"name": ex.name, "vhost": vhost, "type": ex.type, "durable": ex.durable,
                "auto_delete": ex.auto_delete, "internal": ex.internal,
                "arguments": dict(ex.arguments),
                "user_who_performed_action": "rmq-internal",
                "message_stats": {"publish_in": ex.published_in,
                                  "publish_out": ex.published_out},
                # as RabbitMQ, only an exchange a policy applies to has these keys
                **({"policy": ex.policy, "operator_policy": ex.operator_policy,
                    "effective_policy_definition": dict(ex.effective_policy_definition)}
                   if ex.policy or ex.operator_policy else {})}

    def declare_exchange(self, actor: User | None, vhost: str, name: str, type: str, *,
                         durable: bool = True, auto_delete: bool = False,
                         internal: bool = False, arguments: dict[str, Any] | None = None
                         ) -> bool:
        check_name("exchange", name)
        session = self.session(actor, vhost)
        if not isinstance(type, str):
            raise BadRequest("type must be a string")
        created = name not in session.vhost.exchanges
        session.declare_exchange(name, type, durable=durable, auto_delete=auto_delete,
                                 internal=internal, arguments=arguments or {})
        return created

    def delete_exchange(self, actor: User | None, vhost: str, name: str, *,
                        if_unused: bool = False) -> None:
        session = self.session(actor, vhost)
        session.vhost.exchange(name)  # 404 for a missing one (AMQP answers delete-ok)
        session.delete_exchange(name, if_unused=if_unused)

    def publish(self, actor: User | None, vhost: str, exchange: str, routing_key: str,
                properties: dict[str, Any], body: bytes) -> bool:
        """Publish as a client would (write permission, routing, queue limits); True when
        routed to at least one queue."""
        session = self.session(actor, vhost)
        props = properties_from_json(properties)
        msg = Message(exchange, routing_key, encode_properties(props) or b"\x00\x00", body,
                      len(body), props.delivery_mode == 2, props.priority or 0,
                      props.expiration)
        session.check_publish(exchange, routing_key)  # 403 before 404, as for a client
        routed = bool(session.vhost.route(session.vhost.exchange(exchange), msg))
        publisher = session.publisher(_QUIET)
        try:
            if session.publish(msg, False, publisher):
                self.on_publish()  # it waits for the group commit: start a sync
        finally:
            publisher.close()  # its counts join the global counters
        return routed

    # -- queues -----------------------------------------------------------------------------
    def queues(self, vhost: str | None = None) -> list[dict[str, Any]]:
        names = [vhost] if vhost is not None else self.vhost_names()
        return [self._queue_info(v, q) for v in names for q in self.vhost(v).queues.values()]

    def queue_samples(self, batch: int = 1000
                      ) -> Iterator[list[tuple[tuple[str, str], int, int, int]]]:
        """((vhost, name), ready, unacked, consumers) of the queues: what the rates
        sampler reads every few seconds (cheap: no scan of the messages), in lists of at
        most `batch` queues looked at (it spreads a pass over loop turns). Empty queues
        without consumers are left out: all their figures and rates are zero."""
        for vname, v in list(self.core.vhosts.items()):
            queues = list(v.queues.values())
            for start in range(0, len(queues), batch):
                part = []
                for q in queues[start:start + batch]:
                    ready, unacked, consumers = q.message_count, q.unacked, len(q.consumers)
                    if ready or unacked or consumers:
                        part.append(((vname, q.name), ready, unacked, consumers))
                yield part

    def connection_samples(self) -> Iterator[tuple[str, int, int]]:
        """Lazily: the rates sampler takes them a slice per loop turn."""
        return ((connection_name(c), c.recv_oct, c.send_oct) for c in list(self.core.connections))

    def queue_info(self, vhost: str, name: str, details: bool = False) -> dict[str, Any]:
        q = self.vhost(vhost).queue(name)
        info = self._queue_info(vhost, q)
        if details:
            info["consumer_details"] = [self._consumer_info(c) for c in list(q.consumers)]
            info["incoming"] = []
            info["deliveries"] = []
        return info

    def _queue_info(self, vhost: str, q: Any) -> dict[str, Any]:
        ready = q.message_count
        unacked = q.unacked
        ready_bytes = _ready_bytes(q)
        unacked_bytes = q.unacked_bytes
        owner = q.exclusive_owner if not q.is_stream else None
        consumers = len(q.consumers)
        persistent = _persistent(q)
        info = {
            "name": q.name, "vhost": vhost, "durable": q.durable,
            "auto_delete": q.auto_delete, "exclusive": owner is not None,
            "arguments": dict(q.arguments),
            "type": q.arguments.get("x-queue-type") or "classic",
            "node": self.node_name, "state": "running",
            "messages": ready + unacked, "messages_ready": ready,
            "messages_unacknowledged": unacked,
            "message_bytes": ready_bytes + unacked_bytes, "message_bytes_ready": ready_bytes,
            "message_bytes_unacknowledged": unacked_bytes,
            "consumers": consumers,
            "consumer_capacity": (1.0 if consumers and not ready else 0.0),
            "consumer_utilisation": (1.0 if consumers and not ready else 0.0)
            if consumers else None,
            "exclusive_consumer_tag": (q.exclusive_consumer.tag
                                       if getattr(q, "exclusive_consumer", None) else None),
            "policy": q.policy, "operator_policy": q.operator_policy,
            "effective_policy_definition": dict(q.effective_policy_definition),
            "single_active_consumer_tag": _active_tag(q),
            "message_stats": queue_counters(q),
            "head_message_timestamp": None,
            # Every message's entry is in memory (bodies of persistent messages may be
            # paged out by the disk store: docs/management.md); paged_out is RabbitMQ's
            # count of transient messages paged to disk, which never happens here.
            "messages_ram": ready + unacked, "messages_ready_ram": ready,
            "messages_unacknowledged_ram": unacked,
            "message_bytes_ram": ready_bytes + unacked_bytes,
            "messages_persistent": persistent[0], "message_bytes_persistent": persistent[1],
            "messages_paged_out": 0, "message_bytes_paged_out": 0,
        }
        if owner is not None:  # RabbitMQ shows the owner of exclusive queues only
            peer_host, _, peer_port = owner.peer.rpartition(":")
            info["owner_pid_details"] = {"name": connection_name(owner),
                                         "peer_host": peer_host, "peer_port": _int(peer_port)}
        return info

    def declare_queue(self, actor: User | None, vhost: str, name: str, *,
                      durable: bool = True, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None) -> bool:
        session = self.session(actor, vhost)
        v = session.vhost
        arguments = dict(arguments or {})
        check_name("queue", name)
        queue_type = self.core.runtime.vhost_meta.get(vhost, {}).get("default_queue_type")
        if queue_type not in (None, "undefined") and "x-queue-type" not in arguments \
                and name not in v.queues:
            arguments["x-queue-type"] = queue_type
        created = name not in v.queues
        session.declare_queue(name, durable=durable, auto_delete=auto_delete,
                              arguments=arguments)
        return created

    def delete_queue(self, actor: User | None, vhost: str, name: str, *,
                     if_empty: bool = False, if_unused: bool = False) -> int:
        session = self.session(actor, vhost)
        q = session.vhost.queue(name)
        if q.exclusive_owner is None:
            return session.delete_queue(name, if_empty=if_empty, if_unused=if_unused)
        # An administrator may delete another connection's exclusive queue, as in RabbitMQ.
        session.allow("configure", "queue", name)
        return session.vhost.delete_queue(name, if_empty=if_empty, if_unused=if_unused,
                                          owner=q.exclusive_owner)

    def purge_queue(self, actor: User | None, vhost: str, name: str) -> int:
        session = self.session(actor, vhost)
        q = session.vhost.queue(name)
        if q.exclusive_owner is None:
            return session.purge(name)
        session.allow("read", "queue", name)  # another connection's exclusive queue
        return session.vhost.purge_queue(name, owner=q.exclusive_owner)

    def get_messages(self, actor: User | None, vhost: str, name: str, *, count: int,
                     ackmode: str, encoding: str = "auto", truncate: int | None = None
                     ) -> list[dict[str, Any]]:
        """POST /api/queues/{vhost}/{name}/get: take up to `count` messages, then requeue,
        ack or reject them all as `ackmode` says."""
        if ackmode not in GET_ACKMODES:
            raise BadRequest(f"ackmode must be one of {', '.join(GET_ACKMODES)}")
        if encoding not in ("auto", "base64"):
            raise BadRequest("encoding must be auto or base64")
        session = self.session(actor, vhost)
        q = session.vhost.queue(name)
        if q.is_stream:
            raise BadRequest(f"cannot get messages from stream queue '{name}'")
        taken: list[tuple[Any, Message, bool]] = []
        for _ in range(max(0, count)):
            got = session.get(name)
            if got is None:
                break
            taken.append(got)
        out = []
        remaining = q.message_count
        for _q, msg, redelivered in taken:
            body = msg.body if msg.body is not None else self.core.changes.load_body(msg)
            out.append(message_json(msg, body, redelivered, remaining, encoding, truncate))
        entries = [(queue, msg, None) for queue, msg, _ in taken]
        if not entries:
            return out
        if ackmode.endswith("requeue_true"):  # back in their original order
            session.requeue(entries)
        elif ackmode.startswith("reject"):  # dead-lettered if the queue has a DLX
            session.reject(entries, requeue=False)
        else:
            session.ack(entries)
        return out

    # -- bindings ---------------------------------------------------------------------------
    def bindings(self, vhost: str | None = None) -> list[dict[str, Any]]:
        names = [vhost] if vhost is not None else self.vhost_names()
        out = []
        for vname in names:
            v = self.vhost(vname)
            for q in v.queues.values():  # the default exchange's implicit bindings
                out.append(binding_info(vname, "", q.name, "queue", q.name, {}))
            for ex in v.exchanges.values():
                if not ex.name:
                    continue
                for dest, key, args in ex.bindings():
                    kind = "exchange" if isinstance(dest, Exchange) else "queue"
                    out.append(binding_info(vname, ex.name, dest.name, kind, key, args))
        return out

    def bind(self, actor: User | None, vhost: str, source: str, destination_type: str,
             destination: str, routing_key: str, arguments: dict[str, Any]) -> str:
        """Create a binding; returns its properties key."""
        session = self.session(actor, vhost)
        session.vhost.exchange(source)
        self._destination(session.vhost, destination_type, destination)
        if destination_type == "queue":
            session.bind_queue(destination, source, routing_key, arguments)
        else:
            session.bind_exchange(destination, source, routing_key, arguments)
        return properties_key(routing_key, arguments)

    def unbind(self, actor: User | None, vhost: str, source: str, destination_type: str,
               destination: str, props_key: str) -> None:
        v = self.vhost(vhost)
        v.exchange(source)
        self._destination(v, destination_type, destination)
        for b in self.bindings(vhost):
            if (b["source"] == source and b["destination"] == destination
                    and b["destination_type"] == destination_type
                    and b["properties_key"] == props_key):
                session = self.session(actor, vhost)
                if destination_type == "queue":
                    session.unbind_queue(destination, source, b["routing_key"],
                                         b["arguments"])
                else:
                    session.unbind_exchange(destination, source, b["routing_key"],
                                            b["arguments"])
                return
        raise errors.NotFound("no such binding")

    @staticmethod
    def _destination(v: "VirtualHost", kind: str, name: str) -> Any:
        if kind == "queue":
            return v.queue(name)
        if kind == "exchange":
            return v.exchange(name)
        raise BadRequest(f"destination type must be 'q' or 'e', got '{kind}'")

    # -- connections, channels, consumers ---------------------------------------------------------
    def connections(self) -> list[dict[str, Any]]:
        return [self._connection_info(c) for c in list(self.core.connections)]

    def connection(self, name: str) -> Any:
        for conn in list(self.core.connections):
            if connection_name(conn) == name:
                return conn
        raise errors.NotFound(f"no connection '{name}'")

    def connection_info(self, name: str) -> dict[str, Any]:
        return self._connection_info(self.connection(name))

    def _connection_info(self, conn: Any) -> dict[str, Any]:
        peer_host, _, peer_port = conn.peer.rpartition(":")
        local = getattr(conn, "local", "")
        host, _, port = local.rpartition(":")
        return {
            "name": connection_name(conn), "node": self.node_name, "type": "network",
            "protocol": "AMQP 0-9-1", "state": _connection_state(conn),
            "user": conn.user.name if conn.user else None,
            "user_who_performed_action": conn.user.name if conn.user else None,
            "vhost": conn.vhost.name if conn.vhost else None,
            "peer_host": peer_host, "peer_port": _int(peer_port),
            "host": host, "port": _int(port), "ssl": False, "auth_mechanism": "PLAIN",
            "channels": len(conn.channels), "channel_max": conn.channel_max,
            "frame_max": conn.frame_max, "timeout": conn.heartbeat,
            "client_properties": dict(conn.client_properties),
            "connected_at": int(getattr(conn, "connected_at", 0) * 1000),
            "recv_oct": conn.recv_oct, "send_oct": conn.send_oct, "recv_cnt": conn.recv_cnt,
            "send_cnt": conn.send_cnt, "send_pend": conn.out_bytes,
            "message_stats": _sum([channel_counters(ch) for ch in list(conn.channels.values())],
                                  CHANNEL_COUNTERS),
            "ssl_protocol": None, "ssl_key_exchange": None, "ssl_cipher": None,
            "ssl_hash": None, "peer_cert_subject": None, "peer_cert_issuer": None,
            "peer_cert_validity": None,
        }

    def close_connection(self, name: str, reason: str) -> None:
        conn = self.connection(name)
        conn.close(320, f"CONNECTION_FORCED - {reason}")

    def channels(self) -> list[dict[str, Any]]:
        return [self._channel_info(conn, ch) for conn in list(self.core.connections)
                for ch in list(conn.channels.values())]

    def channel(self, name: str) -> dict[str, Any]:
        for conn in list(self.core.connections):
            for ch in list(conn.channels.values()):
                info = self._channel_info(conn, ch)
                if info["name"] == name:
                    info["consumer_details"] = [self._consumer_info(c)
                                                for c in list(ch.consumers.values())]
                    info["publishes"] = []
                    info["deliveries"] = []
                    return info
        raise errors.NotFound(f"no channel '{name}'")

    def _channel_info(self, conn: Any, ch: Any) -> dict[str, Any]:
        peer_host, _, peer_port = conn.peer.rpartition(":")
        return {
            "name": f"{connection_name(conn)} ({ch.id})", "number": ch.id,
            "node": self.node_name,
            "user": conn.user.name, "vhost": conn.vhost.name,
            "connection_details": {"name": connection_name(conn), "peer_host": peer_host,
                                   "peer_port": _int(peer_port)},
            "consumer_count": len(ch.consumers),
            "messages_unacknowledged": ch.unacked_count,
            "messages_unconfirmed": len(ch.publisher.pending),
            "messages_uncommitted": len(ch.tx or ()),
            "acks_uncommitted": 0, "prefetch_count": ch.prefetch,
            "global_prefetch_count": ch.global_prefetch, "confirm": ch.confirm,
            "transactional": ch.tx is not None,
            "state": "closing" if ch.closing else "running",
            "user_who_performed_action": conn.user.name,
            "message_stats": channel_counters(ch),
        }

    def consumers(self, vhost: str | None = None) -> list[dict[str, Any]]:
        return [self._consumer_info(c) for conn in list(self.core.connections)
                if vhost is None or conn.vhost.name == vhost
                for ch in list(conn.channels.values()) for c in list(ch.consumers.values())]

    def _consumer_info(self, c: Any) -> dict[str, Any]:
        ch = c.channel
        conn = ch.conn
        peer_host, _, peer_port = conn.peer.rpartition(":")
        q = c.queue
        return {
            "consumer_tag": c.tag, "exclusive": c.exclusive, "ack_required": not c.no_ack,
            "prefetch_count": c.prefetch, "arguments": dict(c.arguments),
            "active": True, "activity_status": "up",
            "queue": {"name": q.name, "vhost": conn.vhost.name},
            "channel_details": {"name": f"{connection_name(conn)} ({ch.id})",
                                "number": ch.id, "node": self.node_name,
                                "connection_name": connection_name(conn),
                                "peer_host": peer_host, "peer_port": _int(peer_port),
                                "user": conn.user.name},
        }

