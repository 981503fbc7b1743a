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

The class is in four modules: this one (identity, overview, vhosts, users,
permissions, policies, parameters, limits), `admin_topology.py` (exchanges, queues,
bindings, connections, channels, consumers), `admin_metrics.py` (what the Prometheus
endpoint reads) and `admin_shapes.py` (RabbitMQ's shapes of what they return).

Errors: the model's `errors.AMQPError`s (404 not found, 403 access refused, 406
precondition failed ...) and `BadRequest` for input that cannot mean anything; the HTTP
layer turns them into statuses in one place (`management/errors.py`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from amqpbroker import errors
from amqpbroker.broker import runtime
from amqpbroker.broker.admin_shapes import (  # noqa: F401  (re-exported for the HTTP layer)
    _QUIET,
    CHANNEL_COUNTERS,
    GET_ACKMODES,
    INTERNAL_USER,
    NODE,
    POLICY_APPLY_TO,
    QUEUE_COUNTERS,
    USER_LIMITS,
    USER_TAGS,
    VHOST_COUNTERS,
    VHOST_LIMITS,
    BadRequest,
    _limit,
    _queue_totals,
    _sum,
    binding_info,
    channel_counted,
    channel_counters,
    check_name,
    connection_name,
    edited_limits,
    message_json,
    properties_from_json,
    properties_key,
    properties_to_json,
    counted,
    queue_counters,
    raw_counters,
)
from amqpbroker.broker.admin_metrics import MetricsAdmin
from amqpbroker.broker.admin_topology import TopologyAdmin
from amqpbroker.broker.session import Session
from amqpbroker.model import policy as policy_model
from amqpbroker.model.shovel_spec import parse_spec
from amqpbroker.model.users import (
    HASHING_ALGORITHMS,
    SHA256,
    Permission,
    User,
    hash_password,
    password_hash_problem,
)

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore
    from amqpbroker.model.vhost import VirtualHost

# Runtime parameter components whose values are checked before they are stored (a dynamic
# shovel's definition: docs/shovel.md); ValueError lists the problems.
PARAMETER_VALIDATORS: dict[str, Callable[[Any], Any]] = {"shovel": parse_spec}


class Admin(MetricsAdmin, TopologyAdmin):
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
        # The dynamic shovels' manager (shovel/manager.py), set by the server shell when it
        # runs shovels: GET /api/shovels reads its status.
        self.shovels: Any = None
        # Reloads every TLS listener's certificate (Broker.reload_certificates), set by the
        # server shell: POST /api/tls/reload-certificates (`ctl reload_certificates`).
        self.reload_certificates: Any = None
        # On a cluster leader, the cluster as etcd and replication see it
        # (cluster/view.py): members, roles, ISR, lag; None on a single node.
        self.cluster: Any = None

    @property
    def node_name(self) -> str:
        """This node's name: the cluster's `node_name`, RabbitMQ-like on a single node."""
        return self.cluster.node if self.cluster is not None else NODE

    @property
    def cluster_name(self) -> str:
        return self.cluster.cluster_name if self.cluster is not None else NODE

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
            "node": self.node_name, "cluster_name": self.cluster_name,
            "queue_totals": {"messages": ready + unacked, "messages_ready": ready,
                             "messages_unacknowledged": unacked},
            "object_totals": {
                "connections": len(core.connections), "channels": channels,
                "consumers": sum(len(q.consumers) for q in queues), "queues": len(queues),
                "exchanges": sum(len(v.exchanges) for v in core.vhosts.values())},
            "started_at": int(core.started_at * 1000),
            "alarms": sorted(core.alarms),
        }

    def churn(self) -> dict[str, int]:
        """Churn totals since the broker started (model/churn.py): connection_created,
        connection_closed, channel_created, channel_closed, queue_declared, queue_created,
        queue_deleted -- RabbitMQ's overview `churn_rates` names, and what its Prometheus
        endpoint exports as rabbitmq_connections_opened_total / _closed_total,
        rabbitmq_channels_opened_total / _closed_total, rabbitmq_queues_declared_total /
        _created_total / _deleted_total."""
        return self.core.churn.totals()

    # -- vhosts ----------------------------------------------------------------------------
    def vhost_counters(self, name: str, raw: dict[str, int] | None = None) -> dict[str, int]:
        """message_stats of a vhost: its queues' counters (deleted queues' too), its
        exchanges' publishes, its live channels' confirms and unroutable messages. `raw`:
        its queues' raw counters, when the caller has just added them up."""
        vhost = self.vhost(name)
        if raw is None:
            raw = raw_counters(list(vhost.queues.values()), dict(vhost.retired_counters))
        out = _queue_totals(raw)
        out["publish"] = sum(ex.published_in for ex in list(vhost.exchanges.values()))
        channels = [channel_counters(ch) for conn in list(self.core.connections)
                    if conn.vhost is vhost for ch in list(conn.channels.values())
                    if channel_counted(ch)]
        for key in ("confirm", "return_unroutable", "drop_unroutable"):
            out[key] = sum(c[key] for c in channels)
        return out

    def overview_counters(self) -> dict[str, int]:
        return _sum([self.vhost_counters(n) for n in self.vhost_names()], VHOST_COUNTERS)

    def counter_samples(self, batch: int = 1000
                        ) -> Iterator[list[tuple[tuple[str, Any], dict[str, int]]]]:
        """Every object's message counters, for the rates sampler, in lists of at most
        `batch` queues looked at (it spreads a pass over loop turns). Queues and exchanges
        that have counted nothing yet are left out: their counters and rates are zero."""
        vhosts = []
        for vname in self.vhost_names():
            v = self.core.vhosts.get(vname)
            if v is None:
                continue  # deleted while the pass was under way
            raw = dict(v.retired_counters)
            queues = list(v.queues.values())
            for start in range(0, len(queues), batch):
                busy = [q for q in queues[start:start + batch] if counted(q)]
                raw_counters(busy, raw)
                yield [(("queue", (vname, q.name)), queue_counters(q)) for q in busy]
            part = [(("exchange", (vname, ex.name)), {"publish_in": ex.published_in,
                                                       "publish_out": ex.published_out})
                    for ex in list(v.exchanges.values())
                    if ex.published_in or ex.published_out]
            totals = self.vhost_counters(vname, raw)
            vhosts.append(totals)
            yield part + [(("vhost", vname), totals)]
        # Channels and connections, `batch` connections per part; idle ones (nothing
        # counted yet) are left out as idle queues are.
        conns = list(self.core.connections)
        for start in range(0, len(conns), batch):
            part = []
            for conn in conns[start:start + batch]:
                chans = [(f"{connection_name(conn)} ({ch.id})", channel_counters(ch))
                         for ch in list(conn.channels.values()) if channel_counted(ch)]
                if chans:
                    part += [(("channel", name), c) for name, c in chans]
                    part.append((("connection", connection_name(conn)),
                                 _sum([c for _, c in chans], CHANNEL_COUNTERS)))
            yield part
        yield [(("overview", None), _sum(vhosts, VHOST_COUNTERS)),
               (("churn", None), self.churn())]

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
                "cluster_state": {self.node_name: "running"},
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
        runtime.forget_vhost(self.core.runtime, name, self.core)
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
        validate = PARAMETER_VALIDATORS.get(component)
        if validate is not None:
            try:
                validate(value)
            except ValueError as exc:  # RabbitMQ: 400 "Validation failed" with the reasons
                raise BadRequest(f"Validation failed\n\n{exc}") from None
        key = (vhost, component, name)
        created = key not in self.core.runtime.parameters
        runtime.record(self.core, {"op": "parameter.put", "vhost": vhost, "component": component,
                                   "name": name, "value": value})
        runtime.store_parameter(self.core, vhost, component, name, value)
        return created

    def delete_parameter(self, component: str, vhost: str, name: str) -> None:
        key = (vhost, component, name)
        if key not in self.core.runtime.parameters:
            raise errors.NotFound(f"no parameter '{name}'")
        runtime.record(self.core, {"op": "parameter.delete", "vhost": vhost,
                                   "component": component, "name": name})
        runtime.store_parameter(self.core, vhost, component, name, None)

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
        limits = edited_limits(self.core.runtime.vhost_limits.get(vhost, {}), name, value,
                               VHOST_LIMITS, f"vhost '{vhost}'")
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
        limits = edited_limits(self.core.runtime.user_limits.get(user, {}), name, value,
                               USER_LIMITS, f"user '{user}'")
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
