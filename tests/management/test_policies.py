"""Policies, operator policies, limits and topic permissions with real clients (aio-pika)
and the management API (issue 17). Texts and codes are RabbitMQ's."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aio_pika
import pika
import pytest
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelPreconditionFailed,
)



@pytest.fixture
def broker(mgmt):
    return mgmt


async def next_message(queue, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        msg = await queue.get(no_ack=True, fail=False)
        if msg is not None:
            return msg
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no message in {queue.name} within {timeout} s")
        await asyncio.sleep(0.01)


def pika_refusal(url, channels=0):
    """Connect with pika (which reports the broker's Connection.Close code and text) and
    open `channels` channels; the (code, text) the broker closed the connection with."""
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        for _ in range(channels):
            conn.channel()
    except pika.exceptions.ConnectionClosedByBroker as exc:
        return exc.reply_code, exc.reply_text
    except pika.exceptions.ProbableAccessDeniedError as exc:  # refused during connection.open
        found = re.search(r'\((\d+)\) "(.*)"', str(exc))
        assert found, exc
        return int(found.group(1)), found.group(2)
    conn.close()
    return None


async def count(ch, name):
    return (await ch.declare_queue(name, passive=True)).declaration_result.message_count


async def test_policy_sets_dlx_and_ttl_on_an_existing_queue(broker, api):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        dlx = await ch.declare_exchange("dlx", aio_pika.ExchangeType.FANOUT)
        dead = await ch.declare_queue("dead")
        await dead.bind(dlx)
        await ch.declare_queue("work.jobs")
        await ch.default_exchange.publish(aio_pika.Message(b"before", headers={"k": "v"}),
                                          "work.jobs")
        status, _ = await api.put("/api/policies/%2F/dlx-ttl", {
            "pattern": r"^work\.", "apply-to": "queues", "priority": 1,
            "definition": {"dead-letter-exchange": "dlx", "message-ttl": 200}})
        assert status == 201
        await ch.default_exchange.publish(aio_pika.Message(b"after"), "work.jobs")
        got = [await next_message(dead), await next_message(dead)]
        assert [m.body for m in got] == [b"before", b"after"]
        death = got[0].headers["x-death"][0]
        assert {k: death[k] for k in ("count", "reason", "queue", "exchange",
                                      "routing-keys")} == {
            "count": 1, "reason": "expired", "queue": "work.jobs", "exchange": "",
            "routing-keys": ["work.jobs"]}
        assert got[0].headers["k"] == "v" and got[0].exchange == "dlx"
        assert await count(ch, "work.jobs") == 0
        info = (await api.get("/api/queues/%2F/work.jobs"))[1]
        assert info["policy"] == "dlx-ttl" and info["operator_policy"] is None
        assert info["effective_policy_definition"] == {"dead-letter-exchange": "dlx",
                                                       "message-ttl": 200}
        # clearing the policy: messages stay again
        assert (await api.delete("/api/policies/%2F/dlx-ttl"))[0] == 204
        await ch.default_exchange.publish(aio_pika.Message(b"kept"), "work.jobs")
        await asyncio.sleep(0.4)
        assert await count(ch, "work.jobs") == 1
        assert (await api.get("/api/queues/%2F/work.jobs"))[1]["policy"] is None


async def test_changing_max_length_trims_a_full_queue(broker, api):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("capped.log")
        for i in range(10):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), "capped.log")
        assert await count(ch, "capped.log") == 10
        await api.put("/api/policies/%2F/cap", {"pattern": "^capped", "definition":
                                                {"max-length": 5}})
        assert await count(ch, "capped.log") == 5
        await api.put("/api/policies/%2F/cap", {"pattern": "^capped", "definition":
                                                {"max-length": 2}})
        assert await count(ch, "capped.log") == 2
        q = await ch.declare_queue("capped.log", passive=True)
        assert [(await next_message(q)).body for _ in range(2)] == [b"8", b"9"]
        # reject-publish by policy: the publisher's confirm is a nack
        await api.put("/api/policies/%2F/cap", {"pattern": "^capped", "definition":
                                                {"max-length": 1, "overflow": "reject-publish"}})
        await ch.default_exchange.publish(aio_pika.Message(b"a"), "capped.log")
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await ch.default_exchange.publish(aio_pika.Message(b"b"), "capped.log")


async def test_operator_policy_caps_a_user_policy(broker, api):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("orders", arguments={"x-max-length": 100})
        await api.put("/api/policies/%2F/user", {"pattern": ".*", "definition":
                                                 {"max-length": 10}})
        status, body = await api.put("/api/operator-policies/%2F/guard", {
            "pattern": ".*", "apply-to": "queues", "definition": {"max-length": 3}})
        assert status == 201, body
        for i in range(6):
            await ch.default_exchange.publish(aio_pika.Message(b"x"), "orders")
        assert await count(ch, "orders") == 3
        info = (await api.get("/api/queues/%2F/orders"))[1]
        assert (info["policy"], info["operator_policy"]) == ("user", "guard")
        assert info["effective_policy_definition"] == {"max-length": 3}
        # an operator policy may not set what RabbitMQ keeps out of them
        status, body = await api.put("/api/operator-policies/%2F/bad", {
            "pattern": ".*", "definition": {"dead-letter-exchange": "x"}})
        assert status == 400 and "not recognised" in body["reason"]


async def test_mirroring_keys_are_refused(api):
    status, body = await api.put("/api/policies/%2F/ha", {"pattern": ".*", "definition":
                                                          {"ha-mode": "all"}})
    assert status == 400 and "mirroring" in body["reason"]


async def test_alternate_exchange_by_policy(broker, api):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        ae = await ch.declare_exchange("unrouted", aio_pika.ExchangeType.FANOUT)
        catch = await ch.declare_queue("catch")
        await catch.bind(ae)
        x = await ch.declare_exchange("in", aio_pika.ExchangeType.DIRECT)
        await api.put("/api/policies/%2F/ae", {"pattern": "^in$", "apply-to": "exchanges",
                                               "definition": {"alternate-exchange": "unrouted"}})
        await x.publish(aio_pika.Message(b"lost?"), "nobody")
        assert (await next_message(catch)).body == b"lost?"
        assert (await api.get("/api/exchanges/%2F/in"))[1]["policy"] == "ae"


async def test_vhost_connection_and_queue_limits(broker, api):
    await api.put("/api/vhost-limits/%2F/max-connections", {"value": 1})
    await api.put("/api/vhost-limits/%2F/max-queues", {"value": 1})
    async with await aio_pika.connect(broker.url) as conn:
        assert await asyncio.to_thread(pika_refusal, broker.url) == (
            530, "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection "
                 "limit (1) is reached")
        ch = await conn.channel()
        await ch.declare_queue("one")
        with pytest.raises(ChannelPreconditionFailed) as exc2:
            await ch.declare_queue("two")
        assert "cannot declare queue 'two': queue limit in vhost '/' (1) is reached" \
            in str(exc2.value)
    # raised live: the next one gets through
    await api.put("/api/vhost-limits/%2F/max-connections", {"value": 2})
    await api.delete("/api/vhost-limits/%2F/max-queues")
    async with await aio_pika.connect(broker.url) as c1, await aio_pika.connect(broker.url):
        await (await c1.channel()).declare_queue("two")


async def test_user_connection_and_channel_limits(broker, api):
    await api.put("/api/users/bob", {"password": "pw", "tags": []})
    await api.put("/api/permissions/%2F/bob", {"configure": ".*", "write": ".*", "read": ".*"})
    await api.put("/api/user-limits/bob/max-connections", {"value": 1})
    await api.put("/api/user-limits/bob/max-channels", {"value": 2})
    url = f"amqp://bob:pw@127.0.0.1:{broker.port}/"
    async with await aio_pika.connect(url) as conn:
        assert await asyncio.to_thread(pika_refusal, url) == (
            530, "NOT_ALLOWED - Connection refused for user 'bob': user connection limit (1) "
                 "is reached")
        await conn.channel()
    # channels count across the user's connections: one is open above... and closed now
    assert await asyncio.to_thread(pika_refusal, url, 3) == (
        530, "NOT_ALLOWED - number of channels opened for user 'bob' has reached the "
             "maximum allowed user limit of (2)")
    assert await asyncio.to_thread(pika_refusal, url, 2) is None


async def test_topic_permissions_refuse_publish_and_bind(broker, api):
    await api.put("/api/users/alice", {"password": "pw", "tags": []})
    await api.put("/api/permissions/%2F/alice", {"configure": ".*", "write": ".*",
                                                 "read": ".*"})
    status, _ = await api.put("/api/topic-permissions/%2F/alice", {
        "exchange": "amq.topic", "write": r"^{username}\.", "read": r"^{username}\.|^public\."})
    assert status in (201, 204)
    url = f"amqp://alice:pw@127.0.0.1:{broker.port}/"
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel(publisher_confirms=False)
        x = await ch.get_exchange("amq.topic")
        q = await ch.declare_queue("", exclusive=True)
        await q.bind(x, "alice.#")
        await q.bind(x, "public.news")
        await x.publish(aio_pika.Message(b"mine"), "alice.x")
        assert (await next_message(q)).body == b"mine"
        with pytest.raises(ChannelAccessRefused) as exc:
            await q.bind(x, "bob.#")
        assert "read access to topic 'bob.#' in exchange 'amq.topic' in vhost '/' refused " \
               "for user 'alice'" in str(exc.value)
        ch = await conn.channel(publisher_confirms=False)
        x = await ch.get_exchange("amq.topic")
        await x.publish(aio_pika.Message(b"theirs"), "bob.x")
        with pytest.raises(ChannelAccessRefused) as exc:
            await ch.declare_queue("", exclusive=True)  # the close arrives first
        assert "write access to topic 'bob.x' in exchange 'amq.topic' in vhost '/' refused " \
               "for user 'alice'" in str(exc.value)
        # other (non-topic) exchanges and other topic exchanges are not restricted
        ch = await conn.channel()
        await ch.default_exchange.publish(aio_pika.Message(b"d"), "nowhere")


RABBIT_EXPORT = Path(__file__).parent.parent / "data" / "rabbitmq-3.10-policies.json"


async def test_rabbitmq_export_imports_without_warning_and_behaves_the_same(broker, api):
    """tests/data/rabbitmq-3.10-policies.json: exported by RabbitMQ 3.10 (Debian's
    rabbitmq-server) after tests/data/make-rabbitmq-export.sh set policies, an operator
    policy, vhost and user limits and topic permissions."""
    import structlog

    doc = json.loads(RABBIT_EXPORT.read_text())
    with structlog.testing.capture_logs() as logs:
        status, body = await api.post("/api/definitions", doc)
    assert status == 204, body
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []
    # alice's password hash in the export is of "alicepw"
    url = f"amqp://alice:alicepw@127.0.0.1:{broker.port}/tenant-a"
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        # dlx-ttl: work.jobs dead-letters to "dead" after 200 ms
        await ch.default_exchange.publish(aio_pika.Message(b"job"), "work.jobs")
        dead = await ch.declare_queue("dead", passive=True)
        msg = await next_message(dead)
        assert msg.body == b"job" and msg.headers["x-death"][0]["reason"] == "expired"
        # cap (max-length 3) under op-cap (operator max-length 2)
        for i in range(5):
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), "capped.log")
        assert await count(ch, "capped.log") == 2
        # ae: unroutable messages to "in" go to "unrouted"
        x = await ch.get_exchange("in")
        await x.publish(aio_pika.Message(b"stray"), "no-such-key")
        assert (await next_message(await ch.declare_queue("unrouted.catch", passive=True))
                ).body == b"stray"
        # topic permissions with {username}
        t = await ch.get_exchange("amq.topic")
        q = await ch.declare_queue("", exclusive=True)
        await q.bind(t, "public.#")
        with pytest.raises(ChannelAccessRefused):
            await q.bind(t, "bob.#")
        # vhost max-queues 5: 4 declared + the exclusive one above
        ch = await conn.channel()
        with pytest.raises(ChannelPreconditionFailed) as exc:
            await ch.declare_queue("sixth")
        assert "queue limit in vhost 'tenant-a' (5) is reached" in str(exc.value)
    # user max-channels 2 (RabbitMQ's exact text)
    assert await asyncio.to_thread(pika_refusal, url, 3) == (
        530, "NOT_ALLOWED - number of channels opened for user 'alice' has reached the "
             "maximum allowed user limit of (2)")
    info = (await api.get("/api/queues/tenant-a/capped.log"))[1]
    assert (info["policy"], info["operator_policy"]) == ("cap", "op-cap")
    exported = (await api.get("/api/definitions"))[1]
    assert {p["name"] for p in exported["policies"]} == {"cap", "ae", "dlx-ttl"}
    assert [p["name"] for p in exported["operator_policies"]] == ["op-cap"]
    assert exported["topic_permissions"][0]["write"] == r"^{username}\."


YAML = r"""
vhosts: [/, tenant]
users:
  - {name: guest, password: guest, tags: [administrator]}
  - {name: app, password: apppw, limits: {max-channels: 1}}
permissions:
  - {user: guest, vhost: /, configure: .*, write: .*, read: .*}
  - {user: app, vhost: tenant, configure: .*, write: .*, read: .*}
policies:
  - {name: cap, vhost: tenant, pattern: ^jobs, apply-to: queues, priority: 1,
     definition: {max-length: 2}}
operator_policies:
  - {name: guard, vhost: tenant, pattern: .*, definition: {message-ttl: 60000}}
topic_permissions:
  - {user: app, vhost: tenant, exchange: amq.topic, write: ^app\., read: .*}
vhosts_limits_note: null
"""


async def test_yaml_declares_policies_limits_and_topic_permissions_and_they_survive_restart(
        tmp_path):
    import aiohttp
    import yaml

    from amqpbroker.embed import Broker
    from management_http import Api

    doc = yaml.safe_load(YAML)
    del doc["vhosts_limits_note"]
    doc["vhosts"] = ["/", {"name": "tenant", "limits": {"max-queues": 2}}]
    settings = {"data_dir": str(tmp_path), "management": True, "loopback_users": ()}
    async with Broker(config=doc, **settings) as broker:
        url = f"amqp://app:apppw@127.0.0.1:{broker.port}/tenant"
        async with await aio_pika.connect(url) as conn:
            ch = await conn.channel()
            await ch.declare_queue("jobs", durable=True)
            for i in range(4):
                await ch.default_exchange.publish(
                    aio_pika.Message(str(i).encode(), delivery_mode=2), "jobs")
            assert await count(ch, "jobs") == 2
            await ch.declare_queue("second", durable=True)
            with pytest.raises(ChannelPreconditionFailed):
                await ch.declare_queue("third")
        assert await asyncio.to_thread(pika_refusal, url, 2) == (
            530, "NOT_ALLOWED - number of channels opened for user 'app' has reached the "
                 "maximum allowed user limit of (1)")
    # the same limits and policies after a restart (stored in the data dir), and a policy
    # set through the API then survives too
    async with Broker(config=doc, **settings) as broker, aiohttp.ClientSession() as s:
        api = Api(s, broker.management_url)
        info = (await api.get("/api/queues/tenant/jobs"))[1]
        assert (info["policy"], info["operator_policy"], info["messages"]) == ("cap", "guard", 2)
        assert info["effective_policy_definition"] == {"max-length": 2, "message-ttl": 60000}
        assert (await api.put("/api/policies/tenant/cap", {
            "pattern": "^jobs", "apply-to": "queues", "priority": 1,
            "definition": {"max-length": 1}}))[0] == 204
    # (the file applies its policies at every start, as it does its users: without them
    # in the file, the one changed through the API is what was stored)
    without = {k: v for k, v in doc.items() if k != "policies"}
    async with Broker(config=without, **settings) as broker, aiohttp.ClientSession() as s:
        api = Api(s, broker.management_url)
        info = (await api.get("/api/queues/tenant/jobs"))[1]
        assert info["messages"] == 1 and info["effective_policy_definition"]["max-length"] == 1
        url = f"amqp://app:apppw@127.0.0.1:{broker.port}/tenant"
        async with await aio_pika.connect(url) as conn:
            ch = await conn.channel()
            with pytest.raises(ChannelPreconditionFailed):
                await ch.declare_queue("third")
            ch = await conn.channel(publisher_confirms=False)
            x = await ch.get_exchange("amq.topic")
            await x.publish(aio_pika.Message(b"no"), "other.key")
            with pytest.raises(ChannelAccessRefused):
                await ch.declare_queue("", exclusive=True)


async def test_more_keys_by_policy_with_a_client(broker, api):
    """expires, max-length-bytes, dead-letter-routing-key, delivery-limit (quorum),
    consumer-timeout, and stream retention (max-length-bytes, stream-max-segment-size-bytes)
    set by policies on queues a client declared without arguments."""
    async def policy(name, pattern, definition, apply_to="queues"):
        status, body = await api.put(f"/api/policies/%2F/{name}", {
            "pattern": pattern, "apply-to": apply_to, "definition": definition})
        assert status in (201, 204), body

    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        dlx = await ch.declare_exchange("dlx", aio_pika.ExchangeType.DIRECT)
        dead = await ch.declare_queue("dead")
        await dead.bind(dlx, "rerouted")
        # dead-letter-routing-key + max-length-bytes (drop-head dead-letters the head)
        await ch.declare_queue("bytes")
        await policy("bytes", "^bytes$", {"max-length-bytes": 10, "dead-letter-exchange": "dlx",
                                          "dead-letter-routing-key": "rerouted"})
        for body in (b"12345", b"67890", b"abcde"):
            await ch.default_exchange.publish(aio_pika.Message(body), "bytes")
        assert await count(ch, "bytes") == 2
        msg = await next_message(dead)
        assert msg.body == b"12345" and msg.routing_key == "rerouted"
        assert msg.headers["x-death"][0]["reason"] == "maxlen"
        # delivery-limit on a quorum queue: the third return dead-letters it
        await ch.declare_queue("qq", durable=True, arguments={"x-queue-type": "quorum"})
        await policy("dl", "^qq$", {"delivery-limit": 1, "dead-letter-exchange": "dlx",
                                    "dead-letter-routing-key": "rerouted"}, "quorum_queues")
        await ch.default_exchange.publish(aio_pika.Message(b"poison"), "qq")
        qq = await ch.declare_queue("qq", passive=True)
        for _ in range(2):
            m = await qq.get(timeout=5)
            await m.nack(requeue=True)
        msg = await next_message(dead)
        assert msg.body == b"poison" and msg.headers["x-death"][0]["reason"] == "delivery_limit"
        # expires: an unused queue goes
        await ch.declare_queue("idle")
        await policy("exp", "^idle$", {"expires": 200})
        await asyncio.sleep(0.6)
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await (await conn.channel()).declare_queue("idle", passive=True)
        # consumer-timeout
        ch = await conn.channel()
        await ch.declare_queue("slow")
        await policy("ct", "^slow$", {"consumer-timeout": 200})
        await ch.default_exchange.publish(aio_pika.Message(b"job"), "slow")
        got = asyncio.Event()

        async def never_acks(message):
            got.set()

        await (await ch.get_queue("slow")).consume(never_acks)
        await asyncio.wait_for(got.wait(), 5)
        closed = asyncio.get_running_loop().create_future()
        ch.close_callbacks.add(lambda _ch, exc: closed.done() or closed.set_result(exc))
        exc = await asyncio.wait_for(closed, 5)
        assert "Timeout value used: 200 ms" in str(exc)
        # stream retention by policy: small segments, a byte cap; old segments go
        ch = await conn.channel()
        await ch.declare_queue("events", durable=True, arguments={"x-queue-type": "stream"})
        await policy("ret", "^events$", {"max-length-bytes": 3000,
                                         "stream-max-segment-size-bytes": 1000}, "streams")
        for i in range(60):
            await ch.default_exchange.publish(aio_pika.Message(b"x" * 100), "events")
        info = (await api.get("/api/queues/%2F/events"))[1]
        assert info["policy"] == "ret"
        await ch.set_qos(prefetch_count=10)
        q = await ch.get_queue("events")
        first = asyncio.get_running_loop().create_future()

        async def on_message(message):
            if not first.done():
                first.set_result(message.headers["x-stream-offset"])
            await message.ack()

        await q.consume(on_message, arguments={"x-stream-offset": "first"})
        assert await asyncio.wait_for(first, 5) > 0  # the first segments were removed


async def test_an_older_export_with_mirroring_keys_imports_without_them(broker, api):
    import structlog

    from amqpbroker.config import load_config

    doc = {"policies": [{"vhost": "/", "name": "ha-ttl", "pattern": "^mirrored",
                         "apply-to": "queues", "priority": 0,
                         "definition": {"ha-mode": "all", "ha-sync-mode": "automatic",
                                        "message-ttl": 100}}]}
    with structlog.testing.capture_logs() as logs:
        status, body = await api.post("/api/definitions", doc)
    assert status == 204, body
    assert any("ha-mode, ha-sync-mode" in str(e.get("note")) for e in logs
               if e["log_level"] == "warning")
    stored = (await api.get("/api/policies/%2F/ha-ttl"))[1]
    assert stored["definition"] == {"message-ttl": 100}
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("mirrored.q")
        await ch.default_exchange.publish(aio_pika.Message(b"x"), "mirrored.q")
        await asyncio.sleep(0.4)
        assert await count(ch, "mirrored.q") == 0  # the TTL part applies
    # the same in a configuration file: a warning with the line, the rest applies
    config = load_config("policies:\n  - {name: p, pattern: x, definition: "
                         "{ha-mode: all, max-length: 1}}\n")
    assert "classic queue mirroring keys ha-mode skipped" in str(config.warnings[0])
    assert config.runtime.policies[0][3]["definition"] == {"max-length": 1}
