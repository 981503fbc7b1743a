"""Apply a configuration's topology to a `BrokerCore`, at every startup, after `recover()`.

Everything goes through the `VirtualHost` methods clients use (declare_exchange,
declare_queue, bind), so the file obeys the same rules and error texts as a client, and
durable entities land in the definition store like any other declare. Re-applying the same
file changes nothing: an equivalent redeclare and an existing binding are no-ops.

All or nothing: first a dry run declares the whole file into scratch copies of each vhost
(holding the exchanges and queues the core already has); every conflict - say a queue the
file now calls durable: false while the stored one is durable - is collected and raised as
one `ConfigError`, and only when there is none is the live core touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from amqpbroker import errors
from amqpbroker.config.model import Config, ConfigError, Problem
from amqpbroker.broker import runtime
from amqpbroker.model.users import Permission, User
from amqpbroker.model.vhost import VirtualHost

if TYPE_CHECKING:
    from amqpbroker.core import BrokerCore

log = structlog.get_logger("amqpbroker")


def _vhost_names(config: Config) -> list[str]:
    names = {v.name for v in config.vhosts}
    for items in (config.exchanges, config.queues, config.bindings):
        names.update(item.vhost for item in items)
    return sorted(names)


def _scratch(live: VirtualHost | None, name: str) -> VirtualHost:
    """A store-less copy of `live`'s exchanges and queues (not its bindings)."""
    scratch = VirtualHost(name)
    if live is None:
        return scratch
    for ex in live.exchanges.values():
        if ex.name not in scratch.exchanges:  # the default and amq.* ones are there already
            scratch.declare_exchange(ex.name, ex.type, durable=ex.durable,
                                     auto_delete=ex.auto_delete, internal=ex.internal,
                                     arguments=ex.arguments)
    for q in live.queues.values():
        scratch.declare_queue(q.name, durable=q.durable, auto_delete=q.auto_delete,
                              arguments=q.arguments, exclusive=q.exclusive_owner is not None,
                              owner=q.exclusive_owner)
    return scratch


def find_conflicts(core: "BrokerCore", config: Config) -> list[Problem]:
    """Every reason applying `config` to `core` would fail; changes nothing."""
    problems: list[Problem] = []
    for name in _vhost_names(config):
        vhost = _scratch(core.vhosts.get(name), name)
        for ex in (e for e in config.exchanges if e.vhost == name):
            try:
                vhost.declare_exchange(ex.name, ex.type, durable=ex.durable,
                                       auto_delete=ex.auto_delete, internal=ex.internal,
                                       arguments=ex.arguments)
            except errors.AMQPError as exc:
                problems.append(ex.where.with_message(exc.text))
        for q in (q for q in config.queues if q.vhost == name):
            try:
                vhost.declare_queue(q.name, durable=q.durable, auto_delete=q.auto_delete,
                                    arguments=q.arguments)
            except errors.AMQPError as exc:
                problems.append(q.where.with_message(exc.text))
        for b in (b for b in config.bindings if b.vhost == name):
            table = vhost.queues if b.destination_type == "queue" else vhost.exchanges
            dest = table.get(b.destination)
            if dest is None or b.source not in vhost.exchanges:
                continue  # its declare failed above (reported there)
            try:
                vhost.bind(dest, b.source, b.routing_key, b.arguments)
            except errors.AMQPError as exc:
                problems.append(b.where.with_message(exc.text))
    if config.users is None:
        for p in config.permissions:
            if p.user not in core.users:
                problems.append(p.where.with_message(
                    f"user '{p.user}' does not exist (declare it under users)"))
    return problems


def apply_config(core: "BrokerCore", config: Config) -> dict[str, int]:
    """Create vhosts, set users and permissions, declare exchanges, queues and bindings.

    Raises `ConfigError` (and changes nothing) when the file conflicts with what the core
    holds. Returns how many entities were created (all zero when re-applied).
    """
    problems = find_conflicts(core, config)
    if problems:
        raise ConfigError(problems, "the configuration conflicts with the stored topology")
    created = {"vhosts": 0, "exchanges": 0, "queues": 0, "bindings": 0}
    for name in [v.name for v in config.vhosts] + _vhost_names(config):
        if name not in core.vhosts:
            created["vhosts"] += 1
        core.add_vhost(name)
    if config.users is not None:  # the file's users are the users: guest only if listed
        # ... besides those created or changed live through the management plane, which
        # the definitions store keeps (docs/management.md, "YAML and live changes").
        live = core.runtime.live_users
        for name in [n for n in core.users if n not in live]:
            del core.users[name]
        for u in config.users:
            user = core.users.get(u.name)
            if user is None:
                core.users[u.name] = User(u.name, u.password_hash, list(u.tags), {},
                                          hashing_algorithm=u.hashing_algorithm)
            else:  # a live user the file also lists: the file's password and tags win
                user.password_hash, user.tags = u.password_hash, list(u.tags)
                user.hashing_algorithm = u.hashing_algorithm
    for p in config.permissions:
        core.users[p.user].permissions[p.vhost] = Permission(p.configure, p.write, p.read)
    # policies first, so that the queues and exchanges below are declared under them
    runtime_entries = runtime.apply_defs(core, config.runtime)
    for ex in config.exchanges:
        vhost = core.vhosts[ex.vhost]
        created["exchanges"] += ex.name not in vhost.exchanges
        vhost.declare_exchange(ex.name, ex.type, durable=ex.durable,
                               auto_delete=ex.auto_delete, internal=ex.internal,
                               arguments=ex.arguments)
    for q in config.queues:
        vhost = core.vhosts[q.vhost]
        created["queues"] += q.name not in vhost.queues
        vhost.declare_queue(q.name, durable=q.durable, auto_delete=q.auto_delete,
                            arguments=q.arguments)
    for b in config.bindings:
        vhost = core.vhosts[b.vhost]
        dest = (vhost.queues if b.destination_type == "queue" else vhost.exchanges)[b.destination]
        source = vhost.exchanges[b.source]
        before = _binding_count(source)
        vhost.bind(dest, b.source, b.routing_key, b.arguments)
        created["bindings"] += _binding_count(source) - before
    log.info("config.applied", source=config.source, runtime=runtime_entries, **created)
    for warning in config.warnings:
        log.warning("config.warning", problem=str(warning))
    return created


def _binding_count(exchange: object) -> int:
    return sum(1 for _ in exchange.bindings())  # type: ignore[attr-defined]
