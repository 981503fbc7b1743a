"""Definitions export / import (offline), a real RabbitMQ export, and the command line."""

import json
import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest

from amqpbroker.config import ConfigError, load_config
from amqpbroker.definitions import dump, export_definitions, import_definitions, load_stored
from amqpbroker.embed import Broker

HERE = Path(__file__).parent
REPO = HERE.parents[1]
EXPORT = HERE / "data" / "rabbitmq-3.10.8-export.json"


def topology(defs: dict) -> dict:
    """exchanges / queues / bindings, order-free."""
    return {k: sorted(json.dumps(x, sort_keys=True) for x in defs[k])
            for k in ("exchanges", "queues", "bindings")}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "amqpbroker", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60)


def test_import_of_a_real_rabbitmq_export(tmp_path):
    result = import_definitions(EXPORT, str(tmp_path))
    assert result.created == {"vhosts": 1, "exchanges": 3, "queues": 3, "bindings": 5}
    core = load_stored(str(tmp_path))
    root, staging = core.vhosts["/"], core.vhosts["staging"]
    assert root.exchanges["app.hdr"].arguments == {"alternate-exchange": "app.fan"}
    assert root.queues["app.audit"].arguments == {"x-dead-letter-exchange": "app.fan",
                                                  "x-message-ttl": 5000}
    assert "transient.x" not in root.exchanges  # transient: not stored, and said so
    assert "stage.q" in staging.queues
    assert [(d.name, k) for d, k, _ in staging.exchanges["amq.direct"].bindings()] == [
        ("stage.q", "k")]
    notes = "\n".join(result.notes)
    assert "not supported" not in notes  # policies and topic permissions are stored
    assert core.runtime.policies["policy"][("/", "ttl")]["definition"] == {"message-ttl": 60000}
    assert core.runtime.topic_permissions[("app", "/", "amq.topic")] == {"write": "^a",
                                                                          "read": "^a"}
    assert "exchange 'transient.x' in vhost '/'" in notes
    assert "2 users, 4 permissions, 2 vhosts are not stored in the data dir" in notes
    again = import_definitions(EXPORT, str(tmp_path))  # idempotent
    assert again.created == {"vhosts": 0, "exchanges": 0, "queues": 0, "bindings": 0}


def test_export_then_import_round_trip(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    import_definitions(EXPORT, str(a))
    config = load_config(EXPORT)
    exported = export_definitions(load_stored(str(a)), config)
    assert exported["rabbit_version"] and exported["product_name"] == "amqpbroker"
    assert {u["name"] for u in exported["users"]} == {"guest", "app"}
    assert len(exported["permissions"]) == 4
    assert [v["name"] for v in exported["vhosts"]] == ["/", "staging"]
    for fmt in ("json", "yaml"):
        target = tmp_path / f"b-{fmt}"
        path = tmp_path / f"defs.{fmt}"
        path.write_text(dump(exported, fmt))
        reloaded = load_config(str(path))  # the loader accepts what export writes
        assert [u.password_hash for u in reloaded.users] == [
            u.password_hash for u in config.users]
        import_definitions(str(path), str(target))
        again = export_definitions(load_stored(str(target)), reloaded)
        assert topology(again) == topology(exported)
        assert again["users"] == exported["users"]
        assert again["permissions"] == exported["permissions"]
        # policies and topic permissions travel through the data dir and back
        assert again["policies"] == exported["policies"] == [
            {"vhost": "/", "name": "ttl", "pattern": "^ttl\\.", "apply-to": "all",
             "definition": {"message-ttl": 60000}, "priority": 0}]
        assert again["topic_permissions"] == exported["topic_permissions"]
    import_definitions(str(tmp_path / "defs.json"), str(b))
    assert topology(export_definitions(load_stored(str(b)))) == topology(exported)


async def test_a_broker_serves_an_imported_data_dir_with_the_export_as_config(tmp_path):
    import_definitions(EXPORT, str(tmp_path))
    async with Broker(config=EXPORT, data_dir=str(tmp_path)) as broker:
        url = f"amqp://app:s3cret@127.0.0.1:{broker.port}/"
        async with await aio_pika.connect(url) as conn:
            ch = await conn.channel()
            events = await ch.get_exchange("app.events")
            orders = await ch.get_queue("app.orders")
            await events.publish(aio_pika.Message(b"o"), routing_key="order.new")
            assert (await orders.get(no_ack=True, timeout=5)).body == b"o"


def test_import_conflict_changes_nothing(tmp_path):
    import_definitions(EXPORT, str(tmp_path))
    before = export_definitions(load_stored(str(tmp_path)))
    defs = json.loads(EXPORT.read_text())
    for q in defs["queues"]:
        if q["name"] == "app.orders":
            q["arguments"]["x-max-length"] = 5
    defs["queues"].append({"name": "new.q", "vhost": "/", "durable": True,
                           "auto_delete": False, "arguments": {}})
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(defs))
    with pytest.raises(ConfigError, match="inequivalent arg 'x-max-length' for queue "
                                          "'app.orders'"):
        import_definitions(str(changed), str(tmp_path))
    assert topology(export_definitions(load_stored(str(tmp_path)))) == topology(before)


def test_export_of_a_missing_data_dir_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such data directory"):
        load_stored(str(tmp_path / "nope"))


def test_cli_check_ok_and_errors(tmp_path):
    ok = cli("check", "config/broker.yaml")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: config/broker.yaml\n")
    assert "1 exchanges, 1 queues, 1 bindings" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("queues:\n  - name: q\n    durable: maybe\nbindings:\n"
                   "  - {source: nowhere, destination: q}\n")
    result = cli("check", str(bad))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "invalid configuration (2 problems):",
        f"  {bad}:3: queues[0].durable: expected true or false, got a string ('maybe')",
        f"  {bad}:5: bindings[0].source: exchange 'nowhere' is not declared in vhost '/' "
        "(nor predeclared)",
    ]


def test_cli_definitions_import_export_and_check_against_data_dir(tmp_path):
    data = tmp_path / "data"
    imported = cli("definitions", "import", str(EXPORT), "--data-dir", str(data))
    assert imported.returncode == 0, imported.stderr
    assert "created 3 exchanges, 3 queues, 5 bindings" in imported.stdout
    exported = cli("definitions", "export", "--data-dir", str(data), "--config", str(EXPORT),
                   "--format", "json")
    assert exported.returncode == 0, exported.stderr
    defs = json.loads(exported.stdout)
    assert {q["name"] for q in defs["queues"]} == {"app.orders", "app.audit", "stage.q"}
    as_yaml = cli("definitions", "export", "--data-dir", str(data), "-o",
                  str(tmp_path / "out.yaml"))
    assert as_yaml.returncode == 0 and as_yaml.stdout == ""
    assert load_config(str(tmp_path / "out.yaml")).queues
    conflicting = tmp_path / "c.yaml"
    conflicting.write_text("queues: [{name: app.orders, durable: false}]\n")
    checked = cli("check", str(conflicting), "--data-dir", str(data))
    assert checked.returncode == 1
    assert "conflicts with the stored topology" in checked.stderr
    assert "inequivalent arg 'durable' for queue 'app.orders'" in checked.stderr
    assert cli("check", str(tmp_path / "out.yaml"), "--data-dir", str(data)).returncode == 0


def test_cli_serve_reports_an_invalid_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners: [{port: huge}]\n")
    result = cli("serve", "--config", str(bad))
    assert result.returncode == 1
    assert "listeners[0].port: expected an integer" in result.stderr
