"""`amqpbroker ctl` for policies, operator policies, limits and topic permissions, with
the effect checked through a real client (pika)."""

from __future__ import annotations

import json

import pika
import pytest

from test_ctl import broker, ctl  # type: ignore[import-not-found]  # noqa: F401


def test_ctl_policies_limits_and_topic_permissions(broker) -> None:  # noqa: F811
    ok = lambda *a: ctl(broker, *a)  # noqa: E731
    r = ok("set_policy", "--apply-to", "queues", "cap", "^capped", '{"max-length": 3}')
    assert r.returncode == 0, r.stderr
    r = ok("set_operator_policy", "--apply-to", "queues", "guard", ".*", '{"max-length": 2}')
    assert r.returncode == 0 and 'Setting operator policy override "guard"' in r.stdout
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("capped.q")
    for i in range(5):
        ch.basic_publish("", "capped.q", str(i).encode())
    assert ch.queue_declare("capped.q", passive=True).method.message_count == 2
    listed = json.loads(ok("list_policies", "--formatter", "json").stdout)
    assert [p["name"] for p in listed] == ["cap"]
    listed = json.loads(ok("list_operator_policies", "--formatter", "json").stdout)
    assert listed[0]["definition"] == {"max-length": 2}
    queues = ok("list_queues", "name", "policy", "operator_policy", "-q").stdout
    assert "capped.q\tcap\tguard" in queues.splitlines()
    bad = ok("set_operator_policy", "x", ".*", '{"dead-letter-exchange": "d"}')
    assert bad.returncode == 65 and "not recognised" in bad.stderr
    assert ok("clear_operator_policy", "guard").returncode == 0
    assert ok("clear_policy", "cap").returncode == 0
    for i in range(3):
        ch.basic_publish("", "capped.q", b"more")
    assert ch.queue_declare("capped.q", passive=True).method.message_count == 5
    conn.close()

    assert ok("set_vhost_limits", '{"max-queues": 1}').returncode == 0
    assert json.loads(ok("list_vhost_limits", "--formatter", "json").stdout)[0]["value"] == {
        "max-queues": 1}
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        conn.channel().queue_declare("another")
    assert exc.value.reply_code == 406
    assert ok("clear_vhost_limits").returncode == 0
    conn.channel().queue_declare("another")
    conn.close()

    assert ok("add_user", "carol", "pw").returncode == 0
    assert ok("set_permissions", "carol", ".*", ".*", ".*").returncode == 0
    assert ok("set_user_limits", "carol", '{"max-channels": 1}').returncode == 0
    out = ok("list_user_limits", "--user", "carol", "-q").stdout
    assert '{"max-channels":1}' in out
    url = broker.url.replace("guest:guest", "carol:pw")
    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as exc2:
        conn.channel()
    assert exc2.value.reply_code == 530
    assert ok("clear_user_limits", "carol", "all").returncode == 0

    r = ok("set_topic_permissions", "carol", "amq.topic", "^carol\\.", ".*")
    assert r.returncode == 0, r.stderr
    out = ok("list_topic_permissions", "-q").stdout
    assert "carol\tamq.topic\t^carol\\.\t.*" in out.splitlines()
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_publish("amq.topic", "carol.ok", b"x")
    ch.basic_publish("amq.topic", "dave.no", b"x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc3:
        ch.queue_declare("", exclusive=True)
    assert exc3.value.reply_code == 403
    assert ok("clear_topic_permissions", "carol").returncode == 0
    ch = conn.channel()
    ch.basic_publish("amq.topic", "dave.no", b"x")  # allowed again, live
    ch.queue_declare("", exclusive=True)
    conn.close()
