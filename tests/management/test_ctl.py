"""`amqpbroker ctl` as a process against a broker with the management API, and the
work-queues tutorial's forgotten ack, found with `ctl list_queues` as the tutorial says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pika
import pytest

from amqpbroker.embed import run_in_thread


@pytest.fixture
def broker():
    with run_in_thread(management=True, loopback_users=()) as b:
        yield b


def ctl(broker, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
        ) -> subprocess.CompletedProcess:
    environ = {**os.environ, "AMQPBROKER_URL": broker.management_url if broker else
               "http://127.0.0.1:1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "amqpbroker", "ctl", *args],
                          capture_output=True, text=True, timeout=60, env=environ,
                          input=stdin)


def test_work_queues_forgotten_ack_shows_in_list_queues(broker) -> None:
    params = pika.URLParameters(broker.url)
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare("task_queue", durable=True)
    for i in range(3):
        ch.basic_publish("", "task_queue", f"task {i}".encode(),
                         pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
    worker = pika.BlockingConnection(params)
    wch = worker.channel()
    wch.basic_qos(prefetch_count=1)
    got: list[bytes] = []
    wch.basic_consume("task_queue", lambda c, m, p, body: got.append(body))  # forgets to ack
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        worker.process_data_events(0.1)
    assert got == [b"task 0"]
    out = ctl(broker, "list_queues", "name", "messages_ready", "messages_unacknowledged")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "Listing queues for vhost / ...",
        "name\tmessages_ready\tmessages_unacknowledged",
        "task_queue\t2\t1",
    ]
    out = ctl(broker, "list_consumers", "-q")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0].split("\t")[:3] == ["queue_name", "channel_pid", "consumer_tag"]
    assert lines[1].startswith("task_queue\t")
    worker.close()
    conn.close()


def test_ctl_commands_and_exit_codes(broker) -> None:
    assert ctl(broker, "await_startup").returncode == 0
    status = ctl(broker, "status")
    assert status.returncode == 0 and "Listeners:" in status.stdout
    assert ctl(broker, "add_vhost", "staging").returncode == 0
    assert ctl(broker, "add_user", "alice", "pw").returncode == 0
    dup = ctl(broker, "add_user", "alice", "pw")
    assert dup.returncode == 65 and "already exists" in dup.stderr
    assert ctl(broker, "set_user_tags", "alice", "management").returncode == 0
    assert ctl(broker, "change_password", "alice", "pw2").returncode == 0
    assert ctl(broker, "-p", "staging", "set_permissions", "alice", ".*", ".*", ".*"
               ).returncode == 0
    out = ctl(broker, "list_users", "--formatter", "json")
    users = {u["user"]: u["tags"] for u in json.loads(out.stdout)}
    assert users == {"alice": ["management"], "guest": ["administrator"]}
    out = ctl(broker, "list_permissions", "-p", "staging", "-q")
    assert "alice\t.*\t.*\t.*" in out.stdout.splitlines()
    # alice can log in with the new password
    pika.BlockingConnection(pika.URLParameters(
        broker.url_for("staging").replace("guest:guest", "alice:pw2"))).close()
    assert ctl(broker, "-p", "staging", "set_policy", "--apply-to", "queues", "lim", "^q",
               '{"max-length": 5}').returncode == 0
    out = ctl(broker, "list_policies", "-p", "staging", "--formatter", "json")
    assert json.loads(out.stdout)[0]["definition"] == {"max-length": 5}
    assert ctl(broker, "-p", "staging", "clear_policy", "lim").returncode == 0
    assert ctl(broker, "-p", "staging", "clear_policy", "lim").returncode == 65
    out = ctl(broker, "list_vhosts", "name", "description", "--formatter", "table")
    assert "| name" in out.stdout and "staging" in out.stdout
    # queues, bindings, exchanges, purge and delete
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("q1")
    ch.queue_bind("q1", "amq.direct", "rk")
    ch.basic_publish("", "q1", b"x")
    conn.close()
    out = ctl(broker, "list_bindings", "-q", "--no-table-headers")
    assert "amq.direct\texchange\tq1\tqueue\trk\t[]" in out.stdout.splitlines() or \
        "amq.direct\texchange\tq1\tqueue\trk\t{}" in out.stdout.splitlines()
    assert "amq.topic\ttopic" in ctl(broker, "list_exchanges").stdout
    bad = ctl(broker, "list_queues", "nonsense")
    assert bad.returncode == 64 and "nonsense" in bad.stderr
    assert ctl(broker, "purge_queue", "q1").returncode == 0
    assert "q1\t0" in ctl(broker, "list_queues").stdout
    assert ctl(broker, "delete_queue", "q1").returncode == 0
    assert ctl(broker, "delete_queue", "q1").returncode == 65
    assert ctl(broker, "clear_permissions", "-p", "staging", "alice").returncode == 0
    assert ctl(broker, "delete_user", "alice").returncode == 0
    assert ctl(broker, "delete_user", "alice").returncode == 67
    assert ctl(broker, "change_password", "nobody", "x").returncode == 67
    assert ctl(broker, "delete_vhost", "staging").returncode == 0
    assert ctl(broker, "no_such_command").returncode == 64
    wrong = ctl(broker, "list_queues", "--password", "wrong")
    assert wrong.returncode == 77


def test_connections_channels_close_connection(broker) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    conn.channel()
    out = ctl(broker, "list_connections", "name", "user", "channels", "-q",
              "--no-table-headers")
    name, user, channels = out.stdout.strip().split("\t")
    assert (user, channels) == ("guest", "1")
    out = ctl(broker, "list_channels", "-q", "--no-table-headers")
    assert out.stdout.startswith(name + " (1)\tguest\t0\t0")
    assert ctl(broker, "close_connection", name, "go away").returncode == 0
    with pytest.raises(pika.exceptions.ConnectionClosed) as exc:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            conn.process_data_events(0.1)
    assert exc.value.reply_code == 320 and "go away" in exc.value.reply_text


def test_definitions_round_trip_and_unavailable(broker, tmp_path) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    conn.channel().queue_declare("kept", durable=True)
    conn.close()
    path = tmp_path / "defs.json"
    assert ctl(broker, "export_definitions", str(path)).returncode == 0
    doc = json.loads(path.read_text())
    assert [q["name"] for q in doc["queues"]] == ["kept"]
    with run_in_thread(management=True) as other:
        assert ctl(other, "import_definitions", str(path)).returncode == 0
        assert "kept" in ctl(other, "list_queues").stdout
    down = ctl(None, "list_queues")
    assert down.returncode == 69 and "cannot reach" in down.stderr
