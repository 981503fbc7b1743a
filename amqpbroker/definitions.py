"""Definitions export and import (issue 5), offline, against a data dir.

Export replays the data dir's definition store into a `BrokerCore` (the same replay as at
startup, `BrokerCore.recover()`, but on an in-memory copy so the data dir is only read) and
writes its durable exchanges, queues and bindings, its policies, operator policies,
limits, topic permissions and parameters, plus the vhosts, users and permissions of the
configuration file, in RabbitMQ's definitions format (`rabbitmqctl
export_definitions`) as JSON, or as YAML with the same keys. Both are files the
configuration loader accepts, and `rabbitmqctl import_definitions` reads the JSON.

Import validates a file with the configuration loader (so a RabbitMQ export works) and
declares its durable exchanges, queues and bindings, and stores its policies, limits, topic
permissions and parameters, into the data dir's definition store through
`topology.apply_config`. Users, permissions and vhosts are not kept in the data
dir - they come from the configuration file at every startup - so import reports them
rather than dropping them silently. The broker must not be running on that data dir.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import yaml

from amqpbroker import __version__
from amqpbroker.config import Config, ConfigError, Problem, load_config
from amqpbroker.core import BrokerCore
from amqpbroker.settings import Settings
from amqpbroker.topology import apply_config

# The RabbitMQ definitions format version the export claims (the keys it writes are
# those of RabbitMQ 3.x and 4.x alike).
RABBIT_VERSION = "3.13.0"


def _definitions_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "definitions")


def load_stored(data_dir: str, settings: Settings | None = None) -> BrokerCore:
    """A core holding `data_dir`'s durable topology; the data dir is not modified."""
    from amqpbroker.store.disk import DiskDefinitionStore
    from amqpbroker.store.memory import MemoryDefinitionStore

    if not os.path.isdir(data_dir):
        raise ConfigError([Problem(data_dir, None, "", "no such data directory")],
                          "cannot read the stored definitions")
    ops: list[dict[str, Any]] = []
    if os.path.isdir(_definitions_dir(data_dir)):
        disk = DiskDefinitionStore(_definitions_dir(data_dir))
        try:
            ops = disk.load()
        finally:
            disk.close()
    copy = MemoryDefinitionStore()
    copy.compact(ops)
    base = dataclasses.replace(settings or Settings(), data_dir=None)
    core = BrokerCore(base, None, copy)
    core.recover()
    return core


def export_definitions(core: BrokerCore, config: Config | None = None) -> dict[str, Any]:
    """RabbitMQ-format definitions: `core`'s durable topology, `config`'s users etc."""
    out: dict[str, Any] = {"rabbit_version": RABBIT_VERSION, "product_name": "amqpbroker",
                           "product_version": __version__}
    if config is not None and config.users is not None:
        out["users"] = [{"name": u.name, "password_hash": u.password_hash,
                         "hashing_algorithm": u.hashing_algorithm, "tags": list(u.tags)}
                        for u in config.users]
    names = dict.fromkeys([core.settings.default_vhost, *sorted(core.vhosts)])
    if config is not None:
        names.update(dict.fromkeys(v.name for v in config.vhosts))
    out["vhosts"] = [{"name": n} for n in names]
    if config is not None:
        out["permissions"] = [{"user": p.user, "vhost": p.vhost, "configure": p.configure,
                               "write": p.write, "read": p.read} for p in config.permissions]
    exchanges, queues, bindings = [], [], []
    for vhost in core.vhosts.values():
        for op in vhost.durable_ops():
            if op["op"] == "exchange.declare":
                exchanges.append({k: op[k] for k in ("name", "vhost", "type", "durable",
                                                      "auto_delete", "internal", "arguments")})
            elif op["op"] == "queue.declare":
                queue = {k: op[k] for k in ("name", "vhost", "durable", "auto_delete",
                                            "arguments")}
                queue["type"] = op["arguments"].get("x-queue-type") or "classic"
                queues.append(queue)
            elif op["op"] == "bind":
                bindings.append({k: op[k] for k in ("source", "vhost", "destination",
                                                     "destination_type", "routing_key",
                                                     "arguments")})
    out.update(exchanges=exchanges, queues=queues, bindings=bindings)
    # policies, limits, topic permissions and parameters stored in the data dir
    rt = core.runtime
    for kind, key in (("policy", "policies"), ("operator_policy", "operator_policies")):
        out[key] = [{"vhost": v, "name": n, **p} for (v, n), p in sorted(rt.policies[kind].items())]
    out["topic_permissions"] = [{"user": u, "vhost": v, "exchange": x, **p}
                                for (u, v, x), p in sorted(rt.topic_permissions.items())]
    out["parameters"] = [{"vhost": v, "component": c, "name": n, "value": value}
                         for (v, c, n), value in sorted(rt.parameters.items())]
    out["global_parameters"] = [{"name": n, "value": value}
                                for n, value in sorted(rt.global_parameters.items())]
    for vhost in out["vhosts"]:
        if vhost["name"] in rt.vhost_limits:
            vhost["limits"] = dict(rt.vhost_limits[vhost["name"]])
    for user in out.get("users", []):
        if user["name"] in rt.user_limits:
            user["limits"] = dict(rt.user_limits[user["name"]])
    return out


def dump(definitions: dict[str, Any], fmt: str = "json") -> str:
    if fmt == "json":
        return json.dumps(definitions, indent=2, ensure_ascii=False) + "\n"
    header = ("# amqpbroker definitions export: a configuration file `amqpbroker check` and\n"
              "# `serve --config` accept (add listeners, data_dir, ... as needed).\n")
    return header + yaml.safe_dump(definitions, sort_keys=False, allow_unicode=True,
                                   default_flow_style=False)


@dataclasses.dataclass
class ImportResult:
    config: Config
    created: dict[str, int]
    notes: list[str]


def import_definitions(source: Any, data_dir: str,
                       settings: Settings | None = None) -> ImportResult:
    """Declare `source`'s durable topology into `data_dir` (offline). Raises ConfigError
    for an invalid file or one that conflicts with what is stored; then nothing changes.
    Refused (StoreError) while a broker runs on `data_dir`."""
    from amqpbroker.store.lock import DataDirLock

    config = load_config(source)
    lock = DataDirLock(data_dir)  # refuses while a broker runs on this data dir
    try:
        return _import_locked(config, data_dir, settings)
    finally:
        lock.release()


def _import_locked(config: Any, data_dir: str, settings: Settings | None) -> ImportResult:
    from amqpbroker.store.disk import DiskDefinitionStore

    store = DiskDefinitionStore(_definitions_dir(data_dir))
    base = dataclasses.replace(settings or Settings(), data_dir=data_dir)
    core = BrokerCore(base, None, store)
    try:
        core.recover()
        # Users and permissions are not stored; keep the core's own so that permissions
        # for users the file does not declare are no conflict.
        created = apply_config(core, _durable_part(config))
    finally:
        core.close()
    return ImportResult(config, created, _notes(config))


def _transient(config: Config) -> set[tuple[str, str, str]]:
    return ({("exchange", e.vhost, e.name) for e in config.exchanges if not e.durable}
            | {("queue", q.vhost, q.name) for q in config.queues if not q.durable})


def _durable_part(config: Config) -> Config:
    """What import stores: durable exchanges and queues, bindings between stored ones.
    Users and permissions stay those of the core (they are not stored)."""
    skip = _transient(config)
    return dataclasses.replace(
        config, users=None, permissions=[], warnings=[],
        exchanges=[e for e in config.exchanges if e.durable],
        queues=[q for q in config.queues if q.durable],
        bindings=[b for b in config.bindings
                  if ("exchange", b.vhost, b.source) not in skip
                  and (b.destination_type, b.vhost, b.destination) not in skip])


def _notes(config: Config) -> list[str]:
    notes = [str(w) for w in config.warnings]
    transient = [f"exchange '{e.name}' in vhost '{e.vhost}'"
                 for e in config.exchanges if not e.durable]
    transient += [f"queue '{q.name}' in vhost '{q.vhost}'"
                  for q in config.queues if not q.durable]
    skip = _transient(config)
    transient += [f"binding of {b.destination_type} '{b.destination}' to '{b.source}' in vhost "
                  f"'{b.vhost}'" for b in config.bindings
                  if ("exchange", b.vhost, b.source) in skip
                  or (b.destination_type, b.vhost, b.destination) in skip]
    if transient:
        notes.append("not stored, being transient (list them in the configuration file to "
                     "have them declared at every startup): " + ", ".join(transient))
    kept = []
    if config.users:
        kept.append(f"{len(config.users)} users")
    if config.permissions:
        kept.append(f"{len(config.permissions)} permissions")
    if config.vhosts:
        kept.append(f"{len(config.vhosts)} vhosts")
    if kept:
        notes.append(f"{', '.join(kept)} are not stored in the data dir: users, permissions "
                     f"and vhosts come from the configuration file; copy them there "
                     f"(the imported file itself is a valid configuration file)")
    return notes
