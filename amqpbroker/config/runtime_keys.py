"""The runtime part of a file: policies, operator policies, vhost and user limits, topic
permissions, runtime and global parameters (RabbitMQ's definitions keys, so an export
from `rabbitmqctl export_definitions` or the HTTP API is read as is).

RabbitMQ writes some of these in older shapes, all accepted (`normalize`):

* operator policies as `parameters` entries of component `operator_policy` (3.x), user
  policies as component `policy`, their definitions as lists of [key, value] pairs;
* vhost limits as `parameters` entries of component `vhost-limits`, and as
  `vhosts[].limits` lists of [key, value] pairs;
* `ha-*` keys (classic queue mirroring, removed in RabbitMQ 4.x) in policy definitions:
  dropped with a warning, the rest of the policy applies.

Applied by `topology.apply_config` through `broker.runtime.apply_defs` (stored in the
definitions store like a change through the API).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from amqpbroker.config.checker import Checker
from amqpbroker.model import policy as policy_model

RUNTIME_KEYS = ("policies", "operator_policies", "topic_permissions", "parameters",
                "global_parameters")
VHOST_LIMITS = ("max-connections", "max-queues")
USER_LIMITS = ("max-connections", "max-channels")
# Parameter components that policies and limits travel as in RabbitMQ exports.
_POLICY_COMPONENTS = {"policy": "policies", "operator_policy": "operator_policies"}


@dataclass
class RuntimeDefs:
    # (kind "policy" | "operator_policy", vhost, name, {pattern, apply-to, priority, definition})
    policies: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    vhost_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    user_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    # (user, vhost, exchange, write, read)
    topic_permissions: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    parameters: list[tuple[str, str, str, Any]] = field(default_factory=list)  # v, comp, n, val
    global_parameters: list[tuple[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.policies, self.vhost_limits, self.user_limits,
                    self.topic_permissions, self.parameters, self.global_parameters))


def pairs(value: Any) -> Any:
    """A RabbitMQ [[key, value], ...] list as a mapping (other values unchanged)."""
    if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        return {k: v for k, v in value}
    return value


def normalize(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of a definitions document in the current shape (see the module docstring),
    and warnings for what was dropped."""
    doc = dict(doc)
    notes: list[str] = []
    params = []
    for item in doc.get("parameters") or []:
        comp = item.get("component") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if comp in _POLICY_COMPONENTS and isinstance(value, dict):
            entry = {"vhost": item.get("vhost"), "name": item.get("name"), **value}
            doc[_POLICY_COMPONENTS[comp]] = [*(doc.get(_POLICY_COMPONENTS[comp]) or []), entry]
        elif comp == "vhost-limits" and isinstance(value, dict):
            doc.setdefault("_vhost_limits", {})[item.get("vhost")] = pairs(value)
        else:
            params.append(item)
    if "parameters" in doc:
        doc["parameters"] = params
    vhosts = []
    for v in doc.get("vhosts") or []:
        if isinstance(v, dict):
            v = dict(v)
            if "limits" in v:
                v["limits"] = pairs(v["limits"]) or {}
            meta = v.get("metadata")
            if isinstance(meta, dict) and meta.get("tags") == "":  # 3.x writes "" for none
                v["metadata"] = {**meta, "tags": []}
            extra = (doc.get("_vhost_limits") or {}).get(v.get("name"))
            if extra:
                v["limits"] = {**(v.get("limits") or {}), **extra}
        vhosts.append(v)
    if "vhosts" in doc:
        doc["vhosts"] = vhosts
    for key in ("policies", "operator_policies"):
        out = []
        for p in doc.get(key) or []:
            if isinstance(p, dict) and "definition" in p:
                p = {**p, "definition": pairs(p["definition"])}
                d = p["definition"]
                if isinstance(d, dict):
                    mirroring = sorted(k for k in d if k.startswith("ha-"))
                    if mirroring:
                        notes.append(f"policy '{p.get('name')}': classic queue mirroring keys "
                                     f"{', '.join(mirroring)} skipped (removed in RabbitMQ 4.x)")
                        p["definition"] = {k: v for k, v in d.items() if not k.startswith("ha-")}
            out.append(p)
        if key in doc:
            doc[key] = out
    return doc, notes


def _regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression {value!r}: {exc}"
    return None


def _limits(c: Checker, value: Any, path: tuple, allowed: tuple[str, ...]) -> dict[str, int]:
    value = pairs(value)
    m = c.mapping(value, path, allowed)
    return {k: v for k in allowed if k in m
            if (v := c.get(m, path, k, "int")) is not None}


def read_runtime(c: Checker, doc: dict[str, Any], vhost_names: set[str],
                 user_names: set[str], default_vhost: str) -> RuntimeDefs:
    doc, notes = normalize(doc)
    for note in notes:
        c.warn(("policies",), note)
    defs = RuntimeDefs()

    def vhost_of(m: dict[str, Any], p: tuple) -> str | None:
        vhost = c.get(m, p, "vhost", "str", default_vhost)
        if vhost is not None and vhost not in vhost_names:
            c.error(p + ("vhost",), f"vhost '{vhost}' is not declared under vhosts")
            return None
        return vhost

    for key, kind in (("policies", "policy"), ("operator_policies", "operator_policy")):
        for i, item in enumerate(c.sequence(doc.get(key), (key,))):
            p = (key, i)
            m = c.mapping(item, p, ("vhost", "name", "pattern", "apply-to", "priority",
                                    "definition"))
            vhost = vhost_of(m, p)
            name = c.get(m, p, "name", "str")
            pattern = c.get(m, p, "pattern", "str", check=_regex)
            apply_to = c.get(m, p, "apply-to", "str", "all", choices=policy_model.APPLY_TO)
            priority = c.get(m, p, "priority", "int", 0)
            definition = c.get(m, p, "definition", "mapping")
            if definition is not None:
                try:
                    policy_model.validate(kind, definition)
                except policy_model.PolicyError as exc:
                    c.error(p + ("definition",), str(exc).replace("\n\n", ": "))
                    definition = None
            if None not in (vhost, name, pattern, apply_to, priority, definition):
                defs.policies.append((kind, vhost, name, {  # type: ignore[arg-type]
                    "pattern": pattern, "apply-to": apply_to, "definition": definition,
                    "priority": priority}))
    for i, item in enumerate(c.sequence(doc.get("vhosts"), ("vhosts",))):
        if isinstance(item, dict) and item.get("limits"):
            limits = _limits(c, item["limits"], ("vhosts", i, "limits"), VHOST_LIMITS)
            if limits and isinstance(item.get("name"), str):
                defs.vhost_limits[item["name"]] = limits
    for i, item in enumerate(c.sequence(doc.get("users"), ("users",))):
        if isinstance(item, dict) and item.get("limits"):
            limits = _limits(c, item["limits"], ("users", i, "limits"), USER_LIMITS)
            if limits and isinstance(item.get("name"), str):
                defs.user_limits[item["name"]] = limits
    for i, item in enumerate(c.sequence(doc.get("topic_permissions"), ("topic_permissions",))):
        p = ("topic_permissions", i)
        m = c.mapping(item, p, ("user", "vhost", "exchange", "write", "read"))
        user = c.get(m, p, "user", "str")
        # without a users list, users are the stored (live) ones: any name may be meant
        if user is not None and "users" in doc and user not in user_names:
            c.error(p + ("user",), f"user '{user}' is not declared under users")
            user = None
        vhost = vhost_of(m, p)
        exchange = c.get(m, p, "exchange", "str")
        write = c.get(m, p, "write", "str", ".*", check=_regex)
        read = c.get(m, p, "read", "str", ".*", check=_regex)
        if None not in (user, vhost, exchange, write, read):
            defs.topic_permissions.append((user, vhost, exchange, write, read))  # type: ignore[arg-type]
    for i, item in enumerate(c.sequence(doc.get("parameters"), ("parameters",))):
        p = ("parameters", i)
        m = c.mapping(item, p, ("vhost", "component", "name", "value"))
        vhost = vhost_of(m, p)
        comp = c.get(m, p, "component", "str")
        name = c.get(m, p, "name", "str")
        if comp == "shovel" and "value" in m:  # a bad shovel stops the start (docs/shovel.md)
            from amqpbroker.model.shovel_spec import ShovelSpecError, parse_spec

            try:
                parse_spec(m["value"])
            except ShovelSpecError as exc:
                for problem in exc.problems:
                    c.error(p + ("value",), problem)
                continue
        if None not in (vhost, comp, name) and "value" in m:
            defs.parameters.append((vhost, comp, name, m["value"]))  # type: ignore[arg-type]
    for i, item in enumerate(c.sequence(doc.get("global_parameters"), ("global_parameters",))):
        p = ("global_parameters", i)
        m = c.mapping(item, p, ("name", "value"))
        name = c.get(m, p, "name", "str")
        if name is not None and "value" in m:
            defs.global_parameters.append((name, m["value"]))
    return defs
