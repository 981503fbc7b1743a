"""Runtime state that only administrators change: vhost metadata, runtime parameters,
policies, operator policies, limits, topic permissions, and which users were created or
changed live (https://www.rabbitmq.com/docs/parameters).

Every change is one operation appended to the definitions store (the core's one stream of
durable changes), replayed at startup by `replay()`, and written back in full by
`snapshot()` when the store is compacted. Policies and limits are stored and returned
here and handed to the model: each vhost's `PolicySet` and `limits` (`refresh_vhost`),
user limits read at connection and channel open (`session/connection.py`), topic
permissions read by `model/topic_permissions.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from amqpbroker.model.users import Permission, User

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore

# Operations of this module in the definitions store (the others are topology ops that
# `VirtualHost.apply` replays).
OPS = frozenset({
    "vhost.put", "vhost.delete", "user.put", "user.delete", "permission.put",
    "permission.delete", "topic_permission.put", "topic_permission.delete", "parameter.put",
    "parameter.delete", "global_parameter.put", "global_parameter.delete", "policy.put",
    "policy.delete", "vhost_limits.put", "user_limits.put",
})
POLICY_KINDS = ("policy", "operator_policy")


@dataclass
class RuntimeState:
    # vhost name -> {"description", "tags", "default_queue_type", "tracing"}
    vhost_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (vhost, component, name) -> value
    parameters: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    global_parameters: dict[str, Any] = field(default_factory=dict)
    # kind ("policy" | "operator_policy") -> (vhost, name) -> {pattern, apply-to, priority,
    # definition}
    policies: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(
        default_factory=lambda: {k: {} for k in POLICY_KINDS})
    vhost_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    user_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    # (user, vhost, exchange) -> {"write", "read"}
    topic_permissions: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    # Users created or changed through the management plane: they survive a restart even
    # when the configuration file lists other users (docs/management.md).
    live_users: set[str] = field(default_factory=set)
    # The default vhost/user were deleted live: do not create them again at boot.
    deleted_defaults: set[str] = field(default_factory=set)


def record(core: "BrokerCore", op: dict[str, Any]) -> None:
    """Append one admin operation to the core's one stream of durable changes (the
    definitions store fsyncs it; replication and events see it as a "definition")."""
    core.changes.definition(op)


def replay(core: "BrokerCore", op: dict[str, Any]) -> None:
    """Apply one stored admin operation at startup (no new records)."""
    rt: RuntimeState = core.runtime
    kind = op["op"]
    if kind == "vhost.put":
        core.add_vhost(op["vhost"])
        rt.vhost_meta[op["vhost"]] = dict(op.get("meta") or {})
        rt.deleted_defaults.discard("vhost")
    elif kind == "vhost.delete":
        core.delete_vhost(op["vhost"])
        forget_vhost(rt, op["vhost"], core)
        if op["vhost"] == core.settings.default_vhost:
            rt.deleted_defaults.add("vhost")
    elif kind == "user.put":
        put_user(core, op["name"], op["password_hash"], op["hashing_algorithm"], op["tags"])
        if op["name"] == core.settings.default_user:
            rt.deleted_defaults.discard("user")
    elif kind == "user.delete":
        core.users.pop(op["name"], None)
        forget_user(rt, op["name"])
        if op["name"] == core.settings.default_user:
            rt.deleted_defaults.add("user")
    elif kind == "permission.put":
        user = core.users.get(op["user"])
        if user is not None and op["vhost"] in core.vhosts:
            user.permissions[op["vhost"]] = Permission(op["configure"], op["write"], op["read"])
    elif kind == "permission.delete":
        user = core.users.get(op["user"])
        if user is not None:
            user.permissions.pop(op["vhost"], None)
    elif kind == "topic_permission.put":
        rt.topic_permissions[(op["user"], op["vhost"], op["exchange"])] = {
            "write": op["write"], "read": op["read"]}
    elif kind == "topic_permission.delete":
        rt.topic_permissions.pop((op["user"], op["vhost"], op["exchange"]), None)
    elif kind == "parameter.put":
        store_parameter(core, op["vhost"], op["component"], op["name"], op["value"])
    elif kind == "parameter.delete":
        store_parameter(core, op["vhost"], op["component"], op["name"], None)
    elif kind == "global_parameter.put":
        rt.global_parameters[op["name"]] = op["value"]
    elif kind == "global_parameter.delete":
        rt.global_parameters.pop(op["name"], None)
    elif kind == "policy.put":
        rt.policies[op["kind"]][(op["vhost"], op["name"])] = dict(op["policy"])
        refresh_vhost(core, op["vhost"])
    elif kind == "policy.delete":
        rt.policies[op["kind"]].pop((op["vhost"], op["name"]), None)
        refresh_vhost(core, op["vhost"])
    elif kind == "vhost_limits.put":
        _set_limits(rt.vhost_limits, op["vhost"], op["value"])
        refresh_vhost(core, op["vhost"])
    elif kind == "user_limits.put":
        _set_limits(rt.user_limits, op["name"], op["value"])


def store_parameter(core: "BrokerCore", vhost: str, component: str, name: str,
                    value: Any) -> None:
    """Set a runtime parameter (`value` None: delete it) and tell the listeners (the shovel
    manager starts, restarts or stops that shovel at once)."""
    key = (vhost, component, name)
    if value is None:
        if core.runtime.parameters.pop(key, None) is None:
            return
    else:
        core.runtime.parameters[key] = value
    _parameter_changed(core, vhost, component, name, value)


def _parameter_changed(core: "BrokerCore", vhost: str, component: str, name: str,
                       value: Any) -> None:
    for listener in list(core.parameter_listeners):
        listener(vhost, component, name, value)


def refresh_vhost(core: "BrokerCore", name: str) -> None:
    """Hand a vhost its current policies and limits; every queue and exchange in it
    re-evaluates its policy at once (RabbitMQ applies policy changes live)."""
    vhost = core.vhosts.get(name)
    if vhost is None:
        return
    rt: RuntimeState = core.runtime
    vhost.limits = dict(rt.vhost_limits.get(name, {}))
    had = bool(vhost.policies)
    vhost.policies.load(
        ((n, p) for (v, n), p in rt.policies["policy"].items() if v == name),
        ((n, p) for (v, n), p in rt.policies["operator_policy"].items() if v == name))
    if had or vhost.policies:
        vhost.reapply_policies()


def _set_limits(table: dict[str, dict[str, int]], key: str, value: dict[str, int]) -> None:
    if value:
        table[key] = dict(value)
    else:
        table.pop(key, None)


def put_user(core: "BrokerCore", name: str, password_hash: str, algorithm: str,
             tags: list[str]) -> User:
    """Create a user or change one in place (open connections keep their `User` object,
    so a permission change reaches them at once)."""
    user = core.users.get(name)
    if user is None:
        user = core.users[name] = User(name, password_hash, list(tags), {},
                                       hashing_algorithm=algorithm)
    else:
        user.password_hash, user.hashing_algorithm, user.tags = password_hash, algorithm, list(tags)
    core.runtime.live_users.add(name)
    return user


def forget_vhost(rt: RuntimeState, name: str, core: "BrokerCore | None" = None) -> None:
    """Drop what a deleted vhost had; with `core`, listeners learn its parameters are gone
    (its shovels stop)."""
    if core is not None:
        for v, component, pname in [k for k in rt.parameters if k[0] == name]:
            store_parameter(core, v, component, pname, None)
    rt.vhost_meta.pop(name, None)
    rt.vhost_limits.pop(name, None)
    for table in (rt.parameters, *rt.policies.values()):
        for key in [k for k in table if k[0] == name]:
            del table[key]
    for key in [k for k in rt.topic_permissions if k[1] == name]:
        del rt.topic_permissions[key]


def forget_user(rt: RuntimeState, name: str) -> None:
    rt.live_users.discard(name)
    rt.user_limits.pop(name, None)
    for key in [k for k in rt.topic_permissions if k[0] == name]:
        del rt.topic_permissions[key]


def snapshot(core: "BrokerCore") -> Iterator[dict[str, Any]]:
    """The admin state as a minimal op list, for compaction (topology ops come after)."""
    rt: RuntimeState = core.runtime
    s = core.settings
    if "vhost" in rt.deleted_defaults and s.default_vhost not in core.vhosts:
        yield {"op": "vhost.delete", "vhost": s.default_vhost}
    if "user" in rt.deleted_defaults and s.default_user not in core.users:
        yield {"op": "user.delete", "vhost": "", "name": s.default_user}
    for name in core.vhosts:
        if name in rt.vhost_meta:  # created or changed live (not by the config file)
            yield {"op": "vhost.put", "vhost": name, "meta": rt.vhost_meta.get(name, {})}
    for name in sorted(rt.live_users):
        user = core.users.get(name)
        if user is None:
            continue
        yield {"op": "user.put", "vhost": "", "name": name, "password_hash": user.password_hash,
               "hashing_algorithm": user.hashing_algorithm, "tags": list(user.tags)}
        for vhost, p in user.permissions.items():
            yield {"op": "permission.put", "user": name, "vhost": vhost,
                   "configure": p.configure, "write": p.write, "read": p.read}
    for (user, vhost, exchange), p in rt.topic_permissions.items():
        yield {"op": "topic_permission.put", "user": user, "vhost": vhost,
               "exchange": exchange, **p}
    for (vhost, component, name), value in rt.parameters.items():
        yield {"op": "parameter.put", "vhost": vhost, "component": component, "name": name,
               "value": value}
    for name, value in rt.global_parameters.items():
        yield {"op": "global_parameter.put", "vhost": "", "name": name, "value": value}
    for kind, table in rt.policies.items():
        for (vhost, name), policy in table.items():
            yield {"op": "policy.put", "kind": kind, "vhost": vhost, "name": name,
                   "policy": policy}
    for vhost, value in rt.vhost_limits.items():
        yield {"op": "vhost_limits.put", "vhost": vhost, "value": value}
    for name, value in rt.user_limits.items():
        yield {"op": "user_limits.put", "vhost": "", "name": name, "value": value}


def apply_defs(core: "BrokerCore", defs: Any) -> int:
    """Apply the runtime part of a configuration or definitions file (policies, limits,
    topic permissions, parameters: config/runtime_keys.RuntimeDefs) as the API would:
    each is stored in the definitions store and takes effect at once. Returns how many
    entries were applied."""
    if not defs:
        return 0
    ops: list[dict[str, Any]] = []
    for kind, vhost, name, policy in defs.policies:
        ops.append({"op": "policy.put", "kind": kind, "vhost": vhost, "name": name,
                    "policy": policy})
    for vhost, limits in defs.vhost_limits.items():
        ops.append({"op": "vhost_limits.put", "vhost": vhost, "value": dict(limits)})
    for user, limits in defs.user_limits.items():
        ops.append({"op": "user_limits.put", "vhost": "", "name": user, "value": dict(limits)})
    for user, vhost, exchange, write, read in defs.topic_permissions:
        ops.append({"op": "topic_permission.put", "user": user, "vhost": vhost,
                    "exchange": exchange, "write": write, "read": read})
    for vhost, component, name, value in defs.parameters:
        ops.append({"op": "parameter.put", "vhost": vhost, "component": component,
                    "name": name, "value": value})
    for name, value in defs.global_parameters:
        ops.append({"op": "global_parameter.put", "vhost": "", "name": name, "value": value})
    for op in ops:
        record(core, op)
        replay(core, op)
    for session in list(core.sessions):  # topic permissions: sessions check again
        session.permissions_changed()
    return len(ops)
