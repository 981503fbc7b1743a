"""The admin facade: the one narrow way the management plane reads and changes the broker.

The HTTP API (`amqpbroker/management/`) and therefore `amqpbroker ctl` only call this
class. Reads return plain dicts named as RabbitMQ's info items (the same names
`rabbitmqctl list_queues` takes as columns and the HTTP API returns as JSON keys).
Declares, deletes, binds, purges, publishes and gets go through a broker core `Session`
(`broker/session.py`) opened for the acting user: the same code paths and permission
checks as an AMQP client's, so the API obeys the same rules and produces the same error
texts. Internal operations (definitions import, the aliveness test) act as an internal
administrator with full permissions in the vhost.
Changes to users, vhosts, permissions, policies, parameters and limits are appended to
the definitions store (`broker/runtime.py`) and take effect at once.

Errors: the model's `errors.AMQPError`s (404 not found, 403 access refused, 406
precondition failed ...) and `BadRequest` for input that cannot mean anything; the HTTP
layer turns them into statuses in one place (`management/errors.py`).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import quote

from pamqp import commands

from amqpbroker import errors
from amqpbroker.broker import runtime
from amqpbroker.broker.session import Session
from amqpbroker.message import Message
from amqpbroker.model import policy as policy_model
from amqpbroker.model.exchange_base import Exchange
from amqpbroker.model.users import (
    HASHING_ALGORITHMS,
    SHA256,
    Permission,
    User,
    hash_password,
    password_hash_problem,
)
from amqpbroker.protocol.properties import decode_properties, encode_properties

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore
    from amqpbroker.model.vhost import VirtualHost

NODE = "amqpbroker@localhost"
USER_TAGS = ("administrator", "monitoring", "policymaker", "management", "impersonator")
POLICY_APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")
VHOST_LIMITS = ("max-connections", "max-queues")
USER_LIMITS = ("max-connections", "max-channels")
GET_ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true",
                "reject_requeue_false")


class BadRequest(ValueError):
    """Input that is invalid whatever the broker's state (HTTP 400)."""


class _Quiet:
    """Session and publisher events of the admin's short-lived sessions: nothing to tell
    (a publish over HTTP is neither mandatory nor confirmed; nothing reads from a socket)."""

    def reading(self, paused: bool) -> None: ...
    def blocked(self, on: bool, reason: str) -> None: ...
    def force_close(self, code: int, text: str) -> None: ...
    def returned(self, msg: Message, code: int, text: str) -> None: ...
    def nacked(self, seq: int) -> None: ...
    def confirms_ready(self) -> None: ...


_QUIET = _Quiet()
INTERNAL_USER = "rmq-internal"  # RabbitMQ's name for the broker acting on its own


class Admin:
    def __init__(self, core: "BrokerCore", on_publish: Callable[[], None] | None = None,
                 find_conflicts: Callable[[Any], list[Any]] | None = None) -> None:
        self.core = core
        # The configuration loader's dry run (topology.find_conflicts, wired by the shell:
        # it lives above the core).
        self._find_conflicts = find_conflicts or (lambda config: [])
        # Called after a publish that may wait for an fsync (the server starts a sync).
        self.on_publish = on_publish or (lambda: None)
        # The broker's listeners ({"protocol", "port", "ip"}), set by the server shell
        # (health checks, overview).
        self.listeners: list[dict[str, Any]] = []

    # -- identity ---------------------------------------------------------------------------
    def authenticate(self, username: str, password: str, loopback: bool = True
                     ) -> User | None:
        """The user, if the password is right (and, for `loopback_users` such as guest,
        the request came from localhost, as RabbitMQ's management plugin requires)."""
        try:
            return self.core.authenticate(username, password, loopback)
        except errors.LoginRefused:
            return None

    def user(self, name: str) -> User:
        user = self.core.users.get(name)
        if user is None:
            raise errors.NotFound(f"no user '{name}'")
        return user

    def vhost(self, name: str) -> "VirtualHost":
        vhost = self.core.vhosts.get(name)
        if vhost is None:
            raise errors.NotFound(f"no vhost '{name}'")
        return vhost

    def vhost_names(self) -> list[str]:
        return sorted(self.core.vhosts)

    def session(self, actor: User | None, vhost: str) -> Session:
        """A core session in `vhost` for the acting user (None: the broker itself, with
        full permissions there). Not registered as a client session: it holds nothing."""
        v = self.vhost(vhost)
        user = actor if actor is not None else User(INTERNAL_USER, "", ["administrator"],
                                                    {vhost: Permission()})
        return Session(self.core, user, v, _QUIET)

    # -- overview ---------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        core = self.core
        channels = sum(len(c.channels) for c in core.connections)
        queues = [q for v in core.vhosts.values() for q in v.queues.values()]
        ready = sum(q.message_count for q in queues)
        unacked = sum(q.unacked for q in queues)
        return {
            "node": NODE, "cluster_name": NODE,
            "queue_totals": {"messages": ready + unacked, "messages_ready": ready,
                             "messages_unacknowledged": unacked},
            "object_totals": {
                "connections": len(core.connections), "channels": channels,
                "consumers": sum(len(q.consumers) for q in queues), "queues": len(queues),
                "exchanges": sum(len(v.exchanges) for v in core.vhosts.values())},
            "started_at": int(core.started_at * 1000),
            "alarms": sorted(core.alarms),
        }

    # -- vhosts ----------------------------------------------------------------------------
    def vhost_counters(self, name: str) -> dict[str, int]:
        """message_stats of a vhost: its queues' counters (deleted queues' too), its
        exchanges' publishes, its live channels' confirms and unroutable messages."""
        vhost = self.vhost(name)
        out = _sum([queue_counters(q) for q in list(vhost.queues.values())], QUEUE_COUNTERS)
        for key, value in _queue_totals(vhost.retired_counters).items():
            out[key] += value
        out["publish"] = sum(ex.published_in for ex in list(vhost.exchanges.values()))
        channels = [channel_counters(ch) for conn in list(self.core.connections)
                    if conn.vhost is vhost for ch in list(conn.channels.values())]
        for key in ("confirm", "return_unroutable", "drop_unroutable"):
            out[key] = sum(c[key] for c in channels)
        return out

    def overview_counters(self) -> dict[str, int]:
        return _sum([self.vhost_counters(n) for n in self.vhost_names()], VHOST_COUNTERS)

    def counter_samples(self) -> list[tuple[tuple[str, Any], dict[str, int]]]:
        """Every object's message counters, for the rates sampler."""
        out: list[tuple[tuple[str, Any], dict[str, int]]] = []
        for vname in self.vhost_names():
            v = self.core.vhosts[vname]
            out += [(("queue", (vname, q.name)), queue_counters(q))
                    for q in list(v.queues.values())]
            out += [(("exchange", (vname, ex.name)), {"publish_in": ex.published_in,
                                                      "publish_out": ex.published_out})
                    for ex in list(v.exchanges.values())]
            out.append((("vhost", vname), self.vhost_counters(vname)))
        for conn in list(self.core.connections):
            chans = [(f"{connection_name(conn)} ({ch.id})", channel_counters(ch))
                     for ch in list(conn.channels.values())]
            out += [(("channel", name), c) for name, c in chans]
            out.append((("connection", connection_name(conn)),
                        _sum([c for _, c in chans], CHANNEL_COUNTERS)))
        out.append((("overview", None), self.overview_counters()))
        return out

    def vhost_info(self, name: str) -> dict[str, Any]:
        vhost = self.vhost(name)
        meta = self.core.runtime.vhost_meta.get(name, {})
        description = meta.get("description",
                               "Default virtual host" if name == self.core.settings.default_vhost
                               else "")
        tags = list(meta.get("tags", []))
        ready = sum(q.message_count for q in vhost.queues.values())
        unacked = sum(q.unacked for q in vhost.queues.values())
        return {"name": name, "description": description, "tags": tags,
                "default_queue_type": meta.get("default_queue_type", "undefined"),
                "metadata": {"description": description, "tags": tags},
                "tracing": bool(meta.get("tracing", False)),
                "cluster_state": {NODE: "running"},
                "messages": ready + unacked, "messages_ready": ready,
                "messages_unacknowledged": unacked,
                "message_stats": self.vhost_counters(name)}

    def put_vhost(self, name: str, description: str | None = None,
                  tags: Iterable[str] | None = None, default_queue_type: str | None = None,
                  tracing: bool | None = None, grant_to: str | None = None) -> bool:
        """Create a vhost, or change its metadata. True when it was created. As RabbitMQ's
        API does, the user who creates a vhost gets full permissions in it (`grant_to`)."""
        check_name("vhost", name)
        created = name not in self.core.vhosts
        meta = dict(self.core.runtime.vhost_meta.get(name, {}))
        for key, value in (("description", description), ("default_queue_type",
                                                          default_queue_type),
                           ("tracing", tracing)):
            if value is not None:
                meta[key] = value
        if tags is not None:
            meta["tags"] = list(tags)
        if default_queue_type not in (None, "undefined", "classic", "quorum", "stream"):
            raise BadRequest(f"invalid default_queue_type '{default_queue_type}'")
        runtime.record(self.core, {"op": "vhost.put", "vhost": name, "meta": meta})
        self.core.add_vhost(name)
        self.core.runtime.vhost_meta[name] = meta
        self.core.runtime.deleted_defaults.discard("vhost")
        if created and grant_to is not None and grant_to in self.core.users:
            self.set_permission(grant_to, name, ".*", ".*", ".*")
        return created

    def delete_vhost(self, name: str) -> None:
        """Close its connections (320), delete its queues and everything else in it."""
        self.vhost(name)
        runtime.record(self.core, {"op": "vhost.delete", "vhost": name})
        self.core.delete_vhost(name)
        runtime.forget_vhost(self.core.runtime, name)
        if name == self.core.settings.default_vhost:
            self.core.runtime.deleted_defaults.add("vhost")

    # -- users -----------------------------------------------------------------------------
    def users(self) -> list[dict[str, Any]]:
        return [self.user_info(name) for name in sorted(self.core.users)]

    def user_info(self, name: str) -> dict[str, Any]:
        user = self.user(name)
        return {"name": user.name, "password_hash": user.password_hash,
                "hashing_algorithm": user.hashing_algorithm, "tags": list(user.tags),
                "limits": dict(self.core.runtime.user_limits.get(name, {}))}

    def put_user(self, name: str, *, password: str | None = None,
                 password_hash: str | None = None, hashing_algorithm: str | None = None,
                 tags: Iterable[str] | None = None) -> bool:
        """Create or replace a user (RabbitMQ's PUT /api/users/{name}). True if created.

        Without password and password_hash an existing user keeps its password and a new
        one gets none (it cannot log in with a password), as RabbitMQ."""
        check_name("user", name)
        if password is not None and password_hash is not None:
            raise BadRequest("give either password or password_hash, not both")
        algorithm = hashing_algorithm or SHA256
        if algorithm not in HASHING_ALGORITHMS:
            raise BadRequest(f"unknown hashing_algorithm '{algorithm}'")
        existing = self.core.users.get(name)
        if password is not None:
            new_hash = hash_password(password, algorithm=algorithm)
        elif password_hash is not None:
            problem = password_hash_problem(password_hash, algorithm)
            if problem is not None:
                raise BadRequest(f"invalid password_hash: {problem}")
            new_hash = password_hash
        elif existing is not None:
            new_hash, algorithm = existing.password_hash, existing.hashing_algorithm
        else:
            new_hash = ""
        tag_list = [t for t in (tags or []) if t]
        self._record_user(name, new_hash, algorithm, tag_list)
        runtime.put_user(self.core, name, new_hash, algorithm, tag_list)
        if name == self.core.settings.default_user:
            self.core.runtime.deleted_defaults.discard("user")
        return existing is None

    def _record_user(self, name: str, password_hash: str, algorithm: str,
                     tags: list[str]) -> None:
        runtime.record(self.core, {"op": "user.put", "vhost": "", "name": name,
                                   "password_hash": password_hash,
                                   "hashing_algorithm": algorithm, "tags": tags})

    def _make_live(self, user: User) -> None:
        """A user from the configuration file becomes a stored one before its first live
        change, so the change has something to apply to after a restart."""
        if user.name not in self.core.runtime.live_users:
            self._record_user(user.name, user.password_hash, user.hashing_algorithm,
                              list(user.tags))
            self.core.runtime.live_users.add(user.name)
            for vhost, p in user.permissions.items():
                runtime.record(self.core, {"op": "permission.put", "user": user.name,
                                           "vhost": vhost, "configure": p.configure,
                                           "write": p.write, "read": p.read})

    def delete_user(self, name: str) -> None:
        """Delete a user and close its connections (320, as RabbitMQ)."""
        self.user(name)
        runtime.record(self.core, {"op": "user.delete", "vhost": "", "name": name})
        del self.core.users[name]
        runtime.forget_user(self.core.runtime, name)
        if name == self.core.settings.default_user:
            self.core.runtime.deleted_defaults.add("user")
        for session in list(self.core.sessions):  # every protocol's clients
            if session.user.name == name:
                session.events.force_close(320, f"CONNECTION_FORCED - user '{name}' was deleted")

    def users_without_permissions(self) -> list[dict[str, Any]]:
        return [self.user_info(n) for n in sorted(self.core.users)
                if not self.core.users[n].permissions]

    # -- permissions -----------------------------------------------------------------------
    def permissions(self, user: str | None = None, vhost: str | None = None
                    ) -> list[dict[str, Any]]:
        out = []
        for name in sorted(self.core.users):
            if user is not None and name != user:
                continue
            for vname, p in self.core.users[name].permissions.items():
                if vhost is None or vname == vhost:
                    out.append({"user": name, "vhost": vname, "configure": p.configure,
                                "write": p.write, "read": p.read})
        return out

    def set_permission(self, user: str, vhost: str, configure: str, write: str,
                       read: str) -> bool:
        u = self.user(user)
        self.vhost(vhost)
        for kind, pattern in (("configure", configure), ("write", write), ("read", read)):
            if not isinstance(pattern, str):
                raise BadRequest(f"{kind} must be a string")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise BadRequest(f"invalid {kind} pattern '{pattern}': {exc}") from None
        self._make_live(u)
        created = vhost not in u.permissions
        runtime.record(self.core, {"op": "permission.put", "user": user, "vhost": vhost,
                                   "configure": configure, "write": write, "read": read})
        u.permissions[vhost] = Permission(configure, write, read)
        self._permissions_changed(user)
        return created

    def clear_permission(self, user: str, vhost: str) -> None:
        u = self.user(user)
        if vhost not in u.permissions:
            raise errors.NotFound(f"no permissions for user '{user}' in vhost '{vhost}'")
        self._make_live(u)
        runtime.record(self.core, {"op": "permission.delete", "user": user, "vhost": vhost})
        del u.permissions[vhost]
        self._permissions_changed(user)

    def _permissions_changed(self, user: str) -> None:
        # Connections remember grants (the publish fast path): from the next operation on,
        # they check again (https://www.rabbitmq.com/docs/access-control).
        for session in list(self.core.sessions):
            if session.user.name == user:
                session.permissions_changed()

    def topic_permissions(self, user: str | None = None, vhost: str | None = None
                          ) -> list[dict[str, Any]]:
        return [{"user": u, "vhost": v, "exchange": x, **p}
                for (u, v, x), p in sorted(self.core.runtime.topic_permissions.items())
                if (user is None or u == user) and (vhost is None or v == vhost)]

    def set_topic_permission(self, user: str, vhost: str, exchange: str, write: str,
                             read: str) -> None:
        self.user(user)
        self.vhost(vhost)
        for kind, pattern in (("write", write), ("read", read)):
            if not isinstance(pattern, str):
                raise BadRequest(f"{kind} must be a string")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise BadRequest(f"invalid {kind} pattern '{pattern}': {exc}") from None
        runtime.record(self.core, {"op": "topic_permission.put", "user": user, "vhost": vhost,
                                   "exchange": exchange, "write": write, "read": read})
        self.core.runtime.topic_permissions[(user, vhost, exchange)] = {"write": write,
                                                                        "read": read}
        self._permissions_changed(user)  # channels re-check routing keys from now on

    def clear_topic_permissions(self, user: str, vhost: str, exchange: str | None = None
                                ) -> None:
        keys = [k for k in self.core.runtime.topic_permissions
                if k[0] == user and k[1] == vhost and (exchange is None or k[2] == exchange)]
        if not keys:
            raise errors.NotFound(f"no topic permissions for user '{user}' in vhost '{vhost}'")
        for key in keys:
            runtime.record(self.core, {"op": "topic_permission.delete", "user": key[0],
                                       "vhost": key[1], "exchange": key[2]})
            del self.core.runtime.topic_permissions[key]
        self._permissions_changed(user)

    # -- exchanges --------------------------------------------------------------------------
    def exchanges(self, vhost: str | None = None) -> list[dict[str, Any]]:
        names = [vhost] if vhost is not None else self.vhost_names()
        return [self._exchange_info(v, ex) for v in names
                for ex in self.vhost(v).exchanges.values()]

    def exchange_info(self, vhost: str, name: str) -> dict[str, Any]:
        return self._exchange_info(vhost, self.vhost(vhost).exchange(name))

    def _exchange_info(self, vhost: str, ex: Any) -> dict[str, Any]:
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
        if session.publish(msg, False, session.publisher(_QUIET)):
            self.on_publish()  # it waits for the group commit: start a sync
        return routed

    # -- queues -----------------------------------------------------------------------------
    def queues(self, vhost: str | None = None) -> list[dict[str, Any]]:
        names = [vhost] if vhost is not None else self.vhost_names()
        return [self._queue_info(v, q) for v in names for q in self.vhost(v).queues.values()]

    def queue_samples(self) -> list[tuple[tuple[str, str], int, int, int]]:
        """((vhost, name), ready, unacked, consumers) of every queue: what the rates
        sampler reads every few seconds (cheap: no scan of the messages)."""
        return [((vname, q.name), q.message_count, q.unacked, len(q.consumers))
                for vname, v in list(self.core.vhosts.items()) for q in list(v.queues.values())]

    def connection_samples(self) -> list[tuple[str, int, int]]:
        return [(connection_name(c), c.recv_oct, c.send_oct) for c in list(self.core.connections)]

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
        owner = q.exclusive_owner if not q.is_stream else None
        consumers = len(q.consumers)
        persistent = _persistent(q)
        info = {
            "name": q.name, "vhost": vhost, "durable": q.durable,
            "auto_delete": q.auto_delete, "exclusive": owner is not None,
            "arguments": dict(q.arguments),
            "type": q.arguments.get("x-queue-type") or "classic",
            "node": NODE, "state": "running",
            "messages": ready + unacked, "messages_ready": ready,
            "messages_unacknowledged": unacked,
            "message_bytes": ready_bytes, "message_bytes_ready": ready_bytes,
            "message_bytes_unacknowledged": 0,
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
            # Everything is in memory (bodies may be paged out by the disk store, but the
            # queue holds every message's entry).
            "messages_ram": ready + unacked, "messages_ready_ram": ready,
            "messages_unacknowledged_ram": unacked, "message_bytes_ram": ready_bytes,
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
            "name": connection_name(conn), "node": NODE, "type": "network",
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
            "name": f"{connection_name(conn)} ({ch.id})", "number": ch.id, "node": NODE,
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
                                "number": ch.id, "node": NODE,
                                "connection_name": connection_name(conn),
                                "peer_host": peer_host, "peer_port": _int(peer_port),
                                "user": conn.user.name},
        }

    # -- parameters, policies, limits -----------------------------------------------------------
    def parameters(self, component: str | None = None, vhost: str | None = None
                   ) -> list[dict[str, Any]]:
        return [{"vhost": v, "component": c, "name": n, "value": value}
                for (v, c, n), value in sorted(self.core.runtime.parameters.items(),
                                               key=lambda kv: kv[0])
                if (component is None or c == component) and (vhost is None or v == vhost)]

    def put_parameter(self, component: str, vhost: str, name: str, value: Any) -> bool:
        self.vhost(vhost)
        check_name("parameter", name)
        if value is None:
            raise BadRequest("value is required")
        key = (vhost, component, name)
        created = key not in self.core.runtime.parameters
        runtime.record(self.core, {"op": "parameter.put", "vhost": vhost, "component": component,
                                   "name": name, "value": value})
        self.core.runtime.parameters[key] = value
        return created

    def delete_parameter(self, component: str, vhost: str, name: str) -> None:
        key = (vhost, component, name)
        if key not in self.core.runtime.parameters:
            raise errors.NotFound(f"no parameter '{name}'")
        runtime.record(self.core, {"op": "parameter.delete", "vhost": vhost,
                                   "component": component, "name": name})
        del self.core.runtime.parameters[key]

    def global_parameters(self) -> list[dict[str, Any]]:
        return [{"name": n, "value": v}
                for n, v in sorted(self.core.runtime.global_parameters.items())]

    def put_global_parameter(self, name: str, value: Any) -> bool:
        check_name("parameter", name)
        created = name not in self.core.runtime.global_parameters
        runtime.record(self.core, {"op": "global_parameter.put", "vhost": "", "name": name,
                                   "value": value})
        self.core.runtime.global_parameters[name] = value
        return created

    def delete_global_parameter(self, name: str) -> None:
        if name not in self.core.runtime.global_parameters:
            raise errors.NotFound(f"no global parameter '{name}'")
        runtime.record(self.core, {"op": "global_parameter.delete", "vhost": "", "name": name})
        del self.core.runtime.global_parameters[name]

    def policies(self, kind: str = "policy", vhost: str | None = None) -> list[dict[str, Any]]:
        return [{"vhost": v, "name": n, **p}
                for (v, n), p in sorted(self.core.runtime.policies[kind].items())
                if vhost is None or v == vhost]

    def policy(self, kind: str, vhost: str, name: str) -> dict[str, Any]:
        p = self.core.runtime.policies[kind].get((vhost, name))
        if p is None:
            raise errors.NotFound(f"no policy '{name}' in vhost '{vhost}'")
        return {"vhost": vhost, "name": name, **p}

    def put_policy(self, kind: str, vhost: str, name: str, pattern: Any, definition: Any,
                   priority: Any = 0, apply_to: Any = "all") -> bool:
        self.vhost(vhost)
        check_name("policy", name)
        if not isinstance(pattern, str):
            raise BadRequest("pattern must be a string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadRequest(f"invalid pattern '{pattern}': {exc}") from None
        if not isinstance(definition, dict) or not definition:
            raise BadRequest("definition must be a non-empty object")
        if isinstance(priority, str) and priority.lstrip("-").isdigit():
            priority = int(priority)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise BadRequest("priority must be an integer")
        if apply_to not in POLICY_APPLY_TO:
            raise BadRequest(f"apply-to must be one of {', '.join(POLICY_APPLY_TO)}")
        try:  # RabbitMQ 4.x's checks: known keys, valid values, no ha-* (mirroring)
            policy_model.validate(kind, definition)
        except policy_model.PolicyError as exc:
            raise BadRequest(str(exc)) from None
        table = self.core.runtime.policies[kind]
        created = (vhost, name) not in table
        policy = {"pattern": pattern, "apply-to": apply_to, "definition": definition,
                  "priority": priority}
        runtime.record(self.core, {"op": "policy.put", "kind": kind, "vhost": vhost,
                                   "name": name, "policy": policy})
        table[(vhost, name)] = policy
        runtime.refresh_vhost(self.core, vhost)  # matching queues and exchanges, at once
        return created

    def delete_policy(self, kind: str, vhost: str, name: str) -> None:
        self.policy(kind, vhost, name)
        runtime.record(self.core, {"op": "policy.delete", "kind": kind, "vhost": vhost,
                                   "name": name})
        del self.core.runtime.policies[kind][(vhost, name)]
        runtime.refresh_vhost(self.core, vhost)

    def vhost_limits(self, vhost: str | None = None) -> list[dict[str, Any]]:
        if vhost is not None:
            self.vhost(vhost)
        return [{"vhost": v, "value": dict(value)}
                for v, value in sorted(self.core.runtime.vhost_limits.items())
                if vhost is None or v == vhost]

    def set_vhost_limit(self, vhost: str, name: str, value: Any) -> None:
        self.vhost(vhost)
        limits = dict(self.core.runtime.vhost_limits.get(vhost, {}))
        if value is None:
            if name not in limits:
                raise errors.NotFound(f"no limit '{name}' on vhost '{vhost}'")
            del limits[name]
        else:
            limits[name] = _limit(name, value, VHOST_LIMITS)
        runtime.record(self.core, {"op": "vhost_limits.put", "vhost": vhost, "value": limits})
        runtime.replay(self.core, {"op": "vhost_limits.put", "vhost": vhost, "value": limits})

    def user_limits(self, user: str | None = None) -> list[dict[str, Any]]:
        if user is not None:
            self.user(user)
        return [{"user": u, "value": dict(value)}
                for u, value in sorted(self.core.runtime.user_limits.items())
                if user is None or u == user]

    def set_user_limit(self, user: str, name: str, value: Any) -> None:
        self.user(user)
        limits = dict(self.core.runtime.user_limits.get(user, {}))
        if value is None:
            if name not in limits:
                raise errors.NotFound(f"no limit '{name}' on user '{user}'")
            del limits[name]
        else:
            limits[name] = _limit(name, value, USER_LIMITS)
        runtime.record(self.core, {"op": "user_limits.put", "vhost": "", "name": user,
                                   "value": limits})
        runtime.replay(self.core, {"op": "user_limits.put", "name": user, "value": limits})

    def topology_conflicts(self, config: Any) -> list[str]:
        """Why declaring a loaded definitions file would fail (the same dry run as at
        startup, topology.find_conflicts); changes nothing."""
        return [p.message or str(p) for p in self._find_conflicts(config)]

    def alarms(self) -> list[str]:
        return sorted(self.core.alarms)

    def connections_of(self, vhost: str) -> list[dict[str, Any]]:
        return [i for i in self.connections() if i["vhost"] == vhost]


# -- helpers shared by the facade and the HTTP layer ---------------------------------------------
def check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{kind} name must be a non-empty string")
    if len(name.encode("utf-8")) > 255:
        raise BadRequest(f"{kind} name is longer than 255 bytes")


def _limit(name: str, value: Any, allowed: tuple[str, ...]) -> int:
    if name not in allowed:
        raise BadRequest(f"unknown limit '{name}' (expected one of {', '.join(allowed)})")
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"limit '{name}' must be an integer")
    return value


def _int(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def connection_name(conn: Any) -> str:
    """RabbitMQ's connection name: "peer -> local" addresses."""
    local = getattr(conn, "local", "")
    return f"{conn.peer} -> {local}" if local else conn.peer


def _ready_bytes(q: Any) -> int:
    if getattr(q, "features", None) is not None or q.is_stream:
        return int(getattr(q, "ready_bytes", 0) or 0)
    return sum(entry[0].body_size for entry in q.ready)


QUEUE_COUNTERS = ("publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty",
                  "deliver_get", "ack", "redeliver")
CHANNEL_COUNTERS = ("publish", "confirm", "return_unroutable", "drop_unroutable", "deliver",
                    "deliver_no_ack", "get", "get_no_ack", "get_empty", "deliver_get", "ack",
                    "redeliver")
VHOST_COUNTERS = tuple(dict.fromkeys(QUEUE_COUNTERS + CHANNEL_COUNTERS))


def _queue_totals(c: Any) -> dict[str, int]:
    """RabbitMQ's message_stats names from a destination's counters (an object or the
    dict a vhost keeps for deleted queues)."""
    get = c["fetched"] if isinstance(c, dict) else c.fetched
    value = (lambda k: c[k]) if isinstance(c, dict) else (lambda k: getattr(c, k))
    no_ack = value("fetched_no_ack")
    return {"publish": value("published"), "deliver": value("delivered"),
            "deliver_no_ack": value("delivered_no_ack"), "get": get - no_ack,
            "get_no_ack": no_ack, "get_empty": value("fetched_empty"),
            "deliver_get": value("delivered") + value("delivered_no_ack") + get,
            "ack": value("acked"), "redeliver": value("redelivered")}


def queue_counters(q: Any) -> dict[str, int]:
    return _queue_totals(q)


def channel_counters(ch: Any) -> dict[str, int]:
    pub = ch.publisher
    return {"publish": pub.published, "confirm": pub.upto if pub.confirm else 0,
            "return_unroutable": pub.returned_unroutable,
            "drop_unroutable": pub.dropped_unroutable, "deliver": ch.delivered,
            "deliver_no_ack": ch.delivered_no_ack, "get": ch.fetched,
            "get_no_ack": ch.fetched_no_ack, "get_empty": ch.fetched_empty,
            "deliver_get": ch.delivered + ch.delivered_no_ack + ch.fetched
            + ch.fetched_no_ack, "ack": ch.acked, "redeliver": ch.redelivered}


def _sum(items: list[dict[str, int]], keys: tuple[str, ...]) -> dict[str, int]:
    out = dict.fromkeys(keys, 0)
    for item in items:
        for key in keys:
            out[key] += item.get(key, 0)
    return out


def _connection_state(conn: Any) -> str:
    session = getattr(conn, "session", None)
    if session is not None and session.alarm_blocked:
        return "blocked"
    return "running"


def _persistent(q: Any) -> tuple[int, int]:
    """How many ready messages are persistent, and their bytes (quorum and stream queues
    keep every message)."""
    if q.is_stream:
        return q.message_count, 0
    if getattr(q, "persist_all", False):
        return q.message_count, _ready_bytes(q)
    count = size = 0
    for entry in q.ready:
        msg = entry[0]
        if msg.persistent:
            count += 1
            size += msg.body_size
    return count, size


def _active_tag(q: Any) -> str | None:
    active = getattr(q, "active", None)
    return getattr(active, "tag", None) if active is not None else None


def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    """RabbitMQ's binding "properties key": the routing key, and a hash of the arguments
    when there are any (rabbit_mgmt_format:pack_binding_props)."""
    key = quote(routing_key, safe="") if routing_key else "~"
    if not arguments:
        return key
    digest = hashlib.sha1(json.dumps(arguments, sort_keys=True, default=str).encode()).digest()
    return f"{quote(routing_key, safe='')}~" + base64.urlsafe_b64encode(digest)[:8].decode()


def binding_info(vhost: str, source: str, destination: str, destination_type: str,
                 routing_key: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"source": source, "vhost": vhost, "destination": destination,
            "destination_type": destination_type, "routing_key": routing_key,
            "arguments": dict(arguments),
            "properties_key": properties_key(routing_key, arguments)}


# AMQP basic properties <-> the management API's JSON names.
_PROPERTY_NAMES = {"content_type": "content_type", "content_encoding": "content_encoding",
                   "headers": "headers", "delivery_mode": "delivery_mode",
                   "priority": "priority", "correlation_id": "correlation_id",
                   "reply_to": "reply_to", "expiration": "expiration",
                   "message_id": "message_id", "timestamp": "timestamp",
                   "type": "message_type", "user_id": "user_id", "app_id": "app_id",
                   "cluster_id": "cluster_id"}


def properties_from_json(props: Any) -> commands.Basic.Properties:
    if not isinstance(props, dict):
        raise BadRequest("properties must be an object")
    kwargs: dict[str, Any] = {}
    for key, value in props.items():
        attr = _PROPERTY_NAMES.get(key)
        if attr is None:
            raise BadRequest(f"unknown property '{key}'")
        if key == "timestamp":
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadRequest("timestamp must be an integer (seconds)")
            value = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        elif key in ("delivery_mode", "priority"):
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
                raise BadRequest(f"{key} must be an integer 0-255")
        elif key == "headers":
            if not isinstance(value, dict):
                raise BadRequest("headers must be an object")
        elif not isinstance(value, str):
            raise BadRequest(f"{key} must be a string")
        kwargs[attr] = value
    try:
        props_obj = commands.Basic.Properties(**kwargs)
        encode_properties(props_obj)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"invalid properties: {exc}") from None
    return props_obj


def properties_to_json(raw: bytes) -> dict[str, Any]:
    try:
        props = decode_properties(raw)
    except ValueError:
        return {}
    out: dict[str, Any] = {}
    for key, attr in _PROPERTY_NAMES.items():
        value = getattr(props, attr, None)
        if value is None or (key == "cluster_id" and value == ""):
            continue
        if isinstance(value, datetime.datetime):
            value = int(value.replace(tzinfo=value.tzinfo or datetime.timezone.utc).timestamp())
        out[key] = value
    return out


def message_json(msg: Message, body: bytes, redelivered: bool, remaining: int,
                 encoding: str, truncate: int | None) -> dict[str, Any]:
    payload = body if truncate is None else body[:truncate]
    text: str | None = None
    if encoding == "auto":
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return {"payload_bytes": len(body), "redelivered": redelivered,
            "exchange": msg.exchange, "routing_key": msg.routing_key,
            "message_count": remaining, "properties": properties_to_json(msg.properties),
            "payload": text if text is not None else base64.b64encode(payload).decode(),
            "payload_encoding": "string" if text is not None else "base64"}


def now_ms() -> int:
    return int(time.time() * 1000)
