"""RabbitMQ's own management client, `rabbitmqadmin` (Debian's rabbitmq-server ships it as
/usr/bin/rabbitmqadmin), drives amqpbroker's management API unchanged.

.ci/run installs the package; without it these tests fail (they do not skip).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from urllib.parse import urlsplit

import pika
import pytest

from amqpbroker.embed import run_in_thread

pytestmark = pytest.mark.interop

RABBITMQADMIN = shutil.which("rabbitmqadmin") or "/usr/bin/rabbitmqadmin"


@pytest.fixture(scope="module")
def broker():
    with run_in_thread(management=True, loopback_users=()) as b:
        yield b


@pytest.fixture
def admin(broker):
    url = urlsplit(broker.management_url)

    def run(*args: str, user: str = "guest", password: str = "guest", ok: bool = True
            ) -> subprocess.CompletedProcess:
        out = subprocess.run([RABBITMQADMIN, "-H", url.hostname, "-P", str(url.port),
                              "-u", user, "-p", password, *args],
                             capture_output=True, text=True, timeout=60)
        if ok:
            assert out.returncode == 0, (args, out.stdout, out.stderr)
        return out
    return run


def rows(out: subprocess.CompletedProcess) -> list[dict]:
    return json.loads(out.stdout)


def test_rabbitmqadmin_is_installed() -> None:
    assert shutil.which("rabbitmqadmin"), "rabbitmqadmin missing: apt-get install rabbitmq-server"


def test_vhosts_users_permissions(admin, broker) -> None:
    admin("declare", "vhost", "name=ra-vhost")
    assert "ra-vhost" in [v["name"] for v in rows(admin("-f", "raw_json", "list", "vhosts"))]
    admin("declare", "user", "name=ra-user", "password=pw", "tags=management")
    users = {u["name"]: u for u in rows(admin("-f", "raw_json", "list", "users"))}
    assert users["ra-user"]["tags"] == ["management"]
    admin("declare", "permission", "vhost=ra-vhost", "user=ra-user", "configure=.*",
          "write=.*", "read=.*")
    perms = rows(admin("-f", "raw_json", "list", "permissions"))
    assert {"user": "ra-user", "vhost": "ra-vhost", "configure": ".*", "write": ".*",
            "read": ".*"} in perms
    # the new user logs in over AMQP and through rabbitmqadmin
    pika.BlockingConnection(pika.URLParameters(
        broker.url_for("ra-vhost").replace("guest:guest", "ra-user:pw"))).close()
    assert rows(admin("-f", "raw_json", "list", "vhosts", user="ra-user", password="pw"))
    admin("delete", "permission", "vhost=ra-vhost", "user=ra-user")
    admin("delete", "user", "name=ra-user")
    admin("delete", "vhost", "name=ra-vhost")
    assert "ra-vhost" not in [v["name"] for v in rows(admin("-f", "raw_json", "list",
                                                            "vhosts"))]


def test_exchanges_queues_bindings_publish_get(admin) -> None:
    admin("declare", "exchange", "name=ra-x", "type=topic", "durable=false")
    admin("declare", "queue", "name=ra-q", "durable=true", 'arguments={"x-max-length": 10}')
    admin("declare", "queue", "name=ra-quorum", "queue_type=quorum")
    admin("declare", "binding", "source=ra-x", "destination=ra-q", "routing_key=a.#")
    queues = {q["name"]: q for q in rows(admin("-f", "raw_json", "list", "queues"))}
    assert queues["ra-q"]["arguments"] == {"x-max-length": 10}
    assert queues["ra-quorum"]["type"] == "quorum"
    assert any(b["source"] == "ra-x" and b["destination"] == "ra-q"
               for b in rows(admin("-f", "raw_json", "list", "bindings")))
    assert "ra-x" in admin("list", "exchanges").stdout
    out = admin("publish", "exchange=ra-x", "routing_key=a.b", "payload=hello there")
    assert "Message published" in out.stdout
    got = rows(admin("-f", "raw_json", "get", "queue=ra-q", "ackmode=ack_requeue_false"))
    assert got[0]["payload"] == "hello there" and got[0]["routing_key"] == "a.b"
    admin("publish", "routing_key=ra-q", "payload=direct")  # the default exchange
    assert "direct" in admin("get", "queue=ra-q", "count=1").stdout
    admin("purge", "queue", "name=ra-q")
    assert [q["messages"] for q in rows(admin("-f", "raw_json", "list", "queues", "name",
                                              "messages")) if q["name"] == "ra-q"] == [0]
    admin("delete", "binding", "source=ra-x", "destination_type=queue", "destination=ra-q",
          "properties_key=a.%23")
    assert not any(b["source"] == "ra-x"
                   for b in rows(admin("-f", "raw_json", "list", "bindings")))
    for kind, name in (("queue", "ra-q"), ("queue", "ra-quorum"), ("exchange", "ra-x")):
        admin("delete", kind, f"name={name}")
    assert "ra-q" not in admin("list", "queues").stdout


def test_policies(admin) -> None:
    admin("declare", "policy", "name=ra-pol", "pattern=^ra-", 'definition={"max-length": 3}',
          "priority=2", "apply-to=queues")
    pols = rows(admin("-f", "raw_json", "list", "policies"))
    assert pols == [{"vhost": "/", "name": "ra-pol", "pattern": "^ra-", "apply-to": "queues",
                     "definition": {"max-length": 3}, "priority": 2}]
    admin("delete", "policy", "name=ra-pol")
    assert rows(admin("-f", "raw_json", "list", "policies")) == []


def test_export_import_definitions(admin, broker, tmp_path) -> None:
    admin("declare", "queue", "name=ra-kept", "durable=true")
    path = tmp_path / "defs.json"
    admin("export", str(path))
    doc = json.loads(path.read_text())
    assert "ra-kept" in [q["name"] for q in doc["queues"]]
    admin("delete", "queue", "name=ra-kept")
    admin("import", str(path))
    assert "ra-kept" in [q["name"] for q in rows(admin("-f", "raw_json", "list", "queues"))]
    admin("delete", "queue", "name=ra-kept")


def test_list_and_close_connections(admin, broker) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    conn.channel()
    conns = rows(admin("-f", "raw_json", "list", "connections"))
    assert len(conns) == 1 and conns[0]["user"] == "guest"
    assert rows(admin("-f", "raw_json", "list", "channels"))[0]["number"] == 1
    admin("close", "connection", f"name={conns[0]['name']}")
    with pytest.raises(pika.exceptions.ConnectionClosed):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            conn.process_data_events(0.1)
    assert rows(admin("-f", "raw_json", "list", "connections")) == []
    assert "name" in admin("show", "overview").stdout or admin("show", "overview").stdout
