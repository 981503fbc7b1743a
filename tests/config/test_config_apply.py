"""apply_config: through the VirtualHost methods, idempotent, all-or-nothing on conflicts."""

import json

import pytest

from amqpbroker import errors
from amqpbroker.config import ConfigError, load_config
from amqpbroker.core import BrokerCore
from amqpbroker.settings import Settings
from amqpbroker.store.disk import DiskDefinitionStore
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore
from amqpbroker.topology import apply_config, find_conflicts

TOPOLOGY = """\
vhosts: [/, staging]
users:
  - {name: admin, password: pw, tags: [administrator]}
  - {name: app, password: apppw}
permissions:
  - {user: admin, vhost: /, configure: ".*", write: ".*", read: ".*"}
  - {user: app, vhost: staging, configure: "^$", write: "^in$", read: "^work$"}
exchanges:
  - {name: in, vhost: staging, type: topic}
  - {name: fan, vhost: staging, type: fanout, internal: true}
  - {name: events, type: headers, arguments: {alternate-exchange: amq.fanout}}
  - {name: scratch, type: direct, durable: false}
queues:
  - {name: work, vhost: staging, arguments: {x-max-length: 10}}
  - {name: audit, vhost: staging, auto_delete: false}
bindings:
  - {source: in, vhost: staging, destination: work, routing_key: "job.*"}
  - {source: in, vhost: staging, destination: fan, destination_type: exchange, routing_key: "#"}
  - {source: fan, vhost: staging, destination: audit}
  - {source: amq.direct, vhost: staging, destination: work, routing_key: direct}
  - {source: events, destination: scratch, destination_type: exchange,
     arguments: {x-match: any, kind: a}}
"""


def canonical(ops):
    return sorted(json.dumps(op, sort_keys=True) for op in ops)


def new_core(definitions=None) -> BrokerCore:
    return BrokerCore(Settings(data_dir=None), MemoryMessageStore(),
                      definitions or MemoryDefinitionStore())


def test_everything_is_declared_and_routes():
    core = new_core()
    created = apply_config(core, load_config(TOPOLOGY))
    assert created == {"vhosts": 1, "exchanges": 4, "queues": 2, "bindings": 5}
    staging = core.vhosts["staging"]
    assert staging.exchanges["fan"].internal and staging.exchanges["in"].type == "topic"
    assert staging.queues["work"].arguments == {"x-max-length": 10}
    assert not core.vhosts["/"].exchanges["scratch"].durable
    from amqpbroker.message import Message

    msg = Message("in", "job.1", None, b"x", 1, False)
    assert {q.name for q in staging.route(staging.exchanges["in"], msg)} == {"work", "audit"}
    assert set(core.users) == {"admin", "app"}  # guest replaced by the file's users
    assert set(core.users["app"].permissions) == {"staging"}
    assert core.users["app"].permissions["staging"].allows("write", "in")


def test_durable_entities_reach_the_definition_store_once():
    store = MemoryDefinitionStore()
    core = new_core(store)
    apply_config(core, load_config(TOPOLOGY))
    ops = store.load()
    kinds = [op["op"] for op in ops]
    assert kinds.count("exchange.declare") == 3  # not the transient 'scratch'
    assert kinds.count("queue.declare") == 2
    assert kinds.count("bind") == 4  # not the binding to 'scratch'
    assert apply_config(core, load_config(TOPOLOGY)) == {
        "vhosts": 0, "exchanges": 0, "queues": 0, "bindings": 0}
    assert store.load() == ops  # re-applying wrote nothing


def test_restart_replays_then_reapplies_as_a_no_op(tmp_path):
    config = load_config(TOPOLOGY)
    store = DiskDefinitionStore(tmp_path)
    core = new_core(store)
    core.recover()
    apply_config(core, config)
    first = store.load()
    core.close()
    for _ in range(2):  # a restart: recover the stored topology, then apply the file
        store = DiskDefinitionStore(tmp_path)
        core = new_core(store)
        core.recover()
        assert apply_config(core, config)["queues"] == 0
        assert "work" in core.vhosts["staging"].queues
        assert canonical(store.load()) == canonical(first)
        core.close()


def test_conflicts_are_all_reported_and_nothing_changes():
    store = MemoryDefinitionStore()
    core = new_core(store)
    apply_config(core, load_config(TOPOLOGY))
    before = store.load()
    users_before = dict(core.users)
    changed = (
        TOPOLOGY
        .replace("{name: work, vhost: staging, arguments: {x-max-length: 10}}",
                 "{name: work, vhost: staging, durable: false, arguments: {x-max-length: 10}}")
        .replace("{name: in, vhost: staging, type: topic}",
                 "{name: in, vhost: staging, type: direct}")
        .replace("{name: audit, vhost: staging, auto_delete: false}",
                 "{name: audit, vhost: staging, arguments: {x-max-length: 5}}")
        .replace("queues:\n", "queues:\n  - {name: new-queue}\n")
    )
    with pytest.raises(ConfigError) as info:
        apply_config(core, load_config(changed))
    text = str(info.value)
    assert text.splitlines()[0] == (
        "the configuration conflicts with the stored topology (3 problems):")
    assert ("<config>:9: exchanges[0]: inequivalent arg 'type' for exchange 'in' in vhost "
            "'staging': received 'direct' but current is 'topic'") in text
    assert ("queues[1]: inequivalent arg 'durable' for queue 'work' in vhost 'staging': "
            "received 'false' but current is 'true'") in text
    assert ("queues[2]: inequivalent arg 'x-max-length' for queue 'audit' in vhost "
            "'staging': received the value '5' of type 'long' but current is none") in text
    # not half-configured: the new queue was not created, nothing was written
    assert "new-queue" not in core.vhosts["/"].queues
    assert store.load() == before
    assert core.users == users_before


def test_conflicts_with_what_clients_declared():
    core = new_core()
    core.vhosts["/"].declare_queue("orders", durable=False)
    config = load_config("queues: [{name: orders}]\nexchanges: [{name: e, type: direct}]\n")
    problems = find_conflicts(core, config)
    assert [str(p) for p in problems] == [
        "<config>:1: queues[0]: inequivalent arg 'durable' for queue 'orders' in vhost '/': "
        "received 'true' but current is 'false'"]
    assert "e" not in core.vhosts["/"].exchanges


def test_declare_level_errors_are_found_by_the_dry_run():
    config = load_config("""\
exchanges: [{name: h, type: headers}]
queues: [{name: q}]
bindings: [{source: h, destination: q, arguments: {x-match: sometimes}}]
""")
    problems = find_conflicts(new_core(), config)
    assert len(problems) == 1 and problems[0].line == 3
    assert problems[0].path == "bindings[0]"


def test_permissions_for_the_default_user_without_a_users_section():
    core = new_core()
    apply_config(core, load_config("""\
vhosts: [/, other]
permissions:
  - {user: guest, vhost: other, configure: "^$", write: ".*", read: ".*"}
"""))
    guest = core.users["guest"]
    assert set(guest.permissions) == {"/", "other"}
    assert not guest.permissions["other"].allows("configure", "x")
    core.open_vhost(guest, "other")
    with pytest.raises(errors.NotAllowed):
        core.open_vhost(core.users["guest"], "missing")


def test_permission_for_a_missing_default_user_is_a_conflict():
    core = BrokerCore(Settings(data_dir=None, default_user=""))
    config = load_config('permissions: [{user: guest, vhost: /, configure: "", write: "", '
                         'read: ""}]')
    with pytest.raises(ConfigError, match="user 'guest' does not exist"):
        apply_config(core, config)


def test_loopback_users_from_the_file():
    core = BrokerCore(load_config("vhosts: [/]").settings)
    with pytest.raises(errors.LoginRefused, match="can only connect via localhost"):
        core.authenticate("guest", "guest", loopback=False)
    open_core = BrokerCore(load_config("loopback_users: []").settings)
    assert open_core.authenticate("guest", "guest", loopback=False).name == "guest"
