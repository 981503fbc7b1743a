"""The management API end to end: an embedded broker, aiohttp as the HTTP client, and
aio-pika as the AMQP client whose connections, channels and consumers the API shows."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from amqpbroker.embed import Broker


def _closed_future(conn):
    closed = asyncio.get_running_loop().create_future()

    async def on_close(_conn, exc) -> None:
        if not closed.done():
            closed.set_result(exc)

    conn.close_callbacks.add(on_close)
    return closed


async def _ignore(message) -> None:
    pass


async def test_overview_whoami_nodes_extensions(api) -> None:
    status, overview = await api.get("/api/overview")
    assert status == 200
    assert overview["object_totals"]["queues"] == 0
    assert {"management_version", "rabbitmq_version", "listeners", "queue_totals"} <= set(overview)
    assert {lst["protocol"] for lst in overview["listeners"]} == {"amqp", "http"}
    assert await api.get("/api/whoami") == (200, {"name": "guest", "tags": ["administrator"]})
    status, nodes = await api.get("/api/nodes")
    assert status == 200 and nodes[0]["running"] is True and nodes[0]["mem_used"] > 0
    assert await api.get("/api/extensions") == (200, [])


async def test_queue_exchange_binding_publish_get(api) -> None:
    assert (await api.put("/api/queues/%2F/q1", {"durable": True}))[0] == 201
    assert (await api.put("/api/queues/%2F/q1", {"durable": True}))[0] == 204
    assert (await api.put("/api/exchanges/%2F/x1", {"type": "topic"}))[0] == 201
    status, _ = await api.post("/api/bindings/%2F/e/x1/q/q1", {"routing_key": "a.*"})
    assert status == 201
    assert api.last_headers["Location"] == quote("a.%2A", safe="")
    status, body = await api.post("/api/exchanges/%2F/x1/publish", {
        "properties": {"delivery_mode": 2, "headers": {"h": 1}}, "routing_key": "a.b",
        "payload": "hello", "payload_encoding": "string"})
    assert (status, body) == (200, {"routed": True})
    status, body = await api.post("/api/exchanges/%2F/x1/publish", {
        "properties": {}, "routing_key": "nope", "payload": "x", "payload_encoding": "string"})
    assert body == {"routed": False}
    status, q = await api.get("/api/queues/%2F/q1")
    assert q["messages_ready"] == 1 and q["messages"] == 1 and q["message_bytes"] == 5
    status, got = await api.post("/api/queues/%2F/q1/get",
                                  {"count": 5, "ackmode": "ack_requeue_true",
                                   "encoding": "auto"})
    assert status == 200 and len(got) == 1
    assert got[0]["payload"] == "hello" and got[0]["routing_key"] == "a.b"
    assert got[0]["properties"]["headers"] == {"h": 1}
    assert got[0]["properties"]["delivery_mode"] == 2
    status, got = await api.post("/api/queues/%2F/q1/get",
                                  {"count": 1, "ackmode": "ack_requeue_false",
                                   "encoding": "base64", "truncate": 2})
    assert got[0]["redelivered"] is True and got[0]["payload"] == "aGU="
    assert got[0]["payload_bytes"] == 5
    assert (await api.get("/api/queues/%2F/q1"))[1]["messages"] == 0
    status, bindings = await api.get("/api/queues/%2F/q1/bindings")
    assert [(b["source"], b["routing_key"]) for b in bindings] == [("", "q1"), ("x1", "a.*")]
    status, b = await api.get("/api/bindings/%2F/e/x1/q/q1/a.%252A")
    assert status == 200 and b["routing_key"] == "a.*"
    assert (await api.get("/api/exchanges/%2F/x1/bindings/source"))[1][0]["destination"] == "q1"
    assert (await api.delete("/api/bindings/%2F/e/x1/q/q1/a.%252A"))[0] == 204
    assert (await api.get("/api/bindings/%2F/e/x1/q/q1"))[1] == []
    assert (await api.delete("/api/exchanges/%2F/x1"))[0] == 204
    assert (await api.get("/api/exchanges/%2F/x1"))[0] == 404


async def test_exchange_to_exchange_binding_with_arguments(api) -> None:
    await api.put("/api/exchanges/%2F/src", {"type": "headers"})
    await api.put("/api/exchanges/%2F/dst", {"type": "fanout"})
    await api.put("/api/queues/%2F/q", {})
    await api.post("/api/bindings/%2F/e/dst/q/q", {})
    status, _ = await api.post("/api/bindings/%2F/e/src/e/dst",
                               {"routing_key": "", "arguments": {"x-match": "all", "k": "v"}})
    assert status == 201
    key = api.last_headers["Location"]
    status, found = await api.get("/api/bindings/%2F/e/src/e/dst")
    assert len(found) == 1 and found[0]["properties_key"].startswith("~")
    assert (await api.get("/api/exchanges/%2F/dst/bindings/destination"))[1][0]["source"] == "src"
    _, routed = await api.post("/api/exchanges/%2F/src/publish", {
        "properties": {"headers": {"k": "v"}}, "routing_key": "", "payload": "m",
        "payload_encoding": "string"})
    assert routed == {"routed": True}
    assert (await api.delete(f"/api/bindings/%2F/e/src/e/dst/{key}"))[0] == 204
    assert (await api.get("/api/bindings/%2F/e/src/e/dst"))[1] == []


async def test_delete_queue_if_empty_if_unused_and_purge(api) -> None:
    await api.put("/api/queues/%2F/q", {})
    await api.post("/api/exchanges/%2F/amq.default/publish", {
        "properties": {}, "routing_key": "q", "payload": "x", "payload_encoding": "string"})
    status, err = await api.delete("/api/queues/%2F/q?if-empty=true")
    assert status == 400 and "not empty" in err["reason"] and err["error"] == "bad_request"
    assert (await api.delete("/api/queues/%2F/q/contents"))[0] == 204
    assert (await api.get("/api/queues/%2F/q"))[1]["messages"] == 0
    assert (await api.delete("/api/queues/%2F/q?if-empty=true&if-unused=true"))[0] == 204
    assert (await api.get("/api/queues/%2F/q"))[0] == 404


async def test_connections_channels_consumers_and_forced_close(mgmt: Broker, api) -> None:
    conn = await aio_pika.connect(mgmt.url, client_properties={"connection_name": "app"})
    closed = _closed_future(conn)
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=7)
    q = await ch.declare_queue("work")
    await q.consume(_ignore, consumer_tag="ctag-1")
    status, conns = await api.get("/api/connections")
    assert status == 200 and len(conns) == 1
    c = conns[0]
    assert c["user"] == "guest" and c["vhost"] == "/" and c["channels"] == 1
    assert c["client_properties"]["connection_name"] == "app"
    assert " -> " in c["name"]
    status, chans = await api.get("/api/channels")
    assert chans[0]["consumer_count"] == 1 and chans[0]["prefetch_count"] == 7
    assert chans[0]["connection_details"]["name"] == c["name"]
    status, consumers = await api.get("/api/consumers/%2F")
    assert consumers[0]["consumer_tag"] == "ctag-1"
    assert consumers[0]["queue"] == {"name": "work", "vhost": "/"}
    assert (await api.get("/api/queues/%2F/work"))[1]["consumers"] == 1
    status, _ = await api.delete("/api/connections/" + quote(c["name"], safe=""),
                                 headers={"X-Reason": "maintenance window"})
    assert status == 204
    exc = await asyncio.wait_for(closed, 10)
    assert "320" in str(exc) and "maintenance window" in str(exc)
    assert (await api.get("/api/connections"))[1] == []


async def test_vhosts_users_permissions_live(mgmt: Broker, api) -> None:
    assert (await api.put("/api/vhosts/dev", {"description": "for devs", "tags": "a,b"}))[0] == 201
    status, v = await api.get("/api/vhosts/dev")
    assert v["description"] == "for devs" and v["tags"] == ["a", "b"]
    assert (await api.put("/api/users/alice", {"password": "pw", "tags": "management"}))[0] == 201
    status, users = await api.get("/api/users/without-permissions")
    assert [u["name"] for u in users] == ["alice"]
    assert (await api.put("/api/permissions/dev/alice",
                          {"configure": ".*", "write": ".*", "read": ".*"}))[0] == 201
    status, perms = await api.get("/api/users/alice/permissions")
    assert perms == [{"user": "alice", "vhost": "dev", "configure": ".*", "write": ".*",
                      "read": ".*"}]
    # alice logs in over AMQP at once
    conn = await aio_pika.connect(mgmt.url_for("dev").replace("guest:guest", "alice:pw"))
    ch = await conn.channel()
    await ch.declare_queue("mine")
    # revoking configure affects the next declare
    await api.put("/api/permissions/dev/alice", {"configure": "^$", "write": ".*", "read": ".*"})
    with pytest.raises(ChannelAccessRefused):
        await ch.declare_queue("other")
    # a management user sees only its vhost, and is refused admin endpoints with 401
    status, vhosts = await api.get("/api/vhosts", auth=("alice", "pw"))
    assert [v["name"] for v in vhosts] == ["dev"]
    status, err = await api.get("/api/users", auth=("alice", "pw"))
    assert (status, err) == (401, {"error": "not_authorised", "reason": "Not administrator user"})
    status, err = await api.get("/api/queues/%2F", auth=("alice", "pw"))
    assert status == 401
    # deleting the user closes its connection
    closed = _closed_future(conn)
    assert (await api.delete("/api/users/alice"))[0] == 204
    exc = await asyncio.wait_for(closed, 10)
    assert "320" in str(exc)
    # deleting the vhost removes its queues
    assert (await api.get("/api/queues/dev/mine"))[0] == 200
    assert (await api.delete("/api/vhosts/dev"))[0] == 204
    assert (await api.get("/api/queues/dev/mine"))[0] == 404
    assert (await api.get("/api/vhosts/dev"))[0] == 404


async def test_user_password_hash_and_bulk_delete(api) -> None:
    from amqpbroker.model.users import hash_password

    h = hash_password("secret")
    assert (await api.put("/api/users/bob", {"password_hash": h, "tags": ""}))[0] == 201
    assert (await api.get("/api/users/bob"))[1]["password_hash"] == h
    status, err = await api.put("/api/users/eve", {"password_hash": "zz", "tags": ""})
    assert status == 400 and "password_hash" in err["reason"]
    status, err = await api.put("/api/users/eve", {
        "password": "x", "tags": "", "hashing_algorithm": "rabbit_password_hashing_sha512"})
    assert status == 201
    assert (await api.get("/api/users/eve"))[1]["hashing_algorithm"].endswith("sha512")
    assert (await api.post("/api/users/bulk-delete", {"users": ["bob", "eve", "nobody"]}))[0] == 204
    assert [u["name"] for u in (await api.get("/api/users"))[1]] == ["guest"]


async def test_auth_rules(api) -> None:
    status, err = await api.get("/api/overview", auth=("guest", "wrong"))
    assert (status, err) == (401, {"error": "not_authorized", "reason": "Login failed"})
    assert "Basic" in api.last_headers["WWW-Authenticate"]
    await api.put("/api/users/plain", {"password": "p", "tags": ""})
    status, err = await api.get("/api/overview", auth=("plain", "p"))
    assert (status, err["reason"]) == (401, "Not management user")
    await api.put("/api/users/mon", {"password": "p", "tags": "monitoring"})
    assert (await api.get("/api/queues/%2F", auth=("mon", "p")))[0] == 200
    assert (await api.get("/api/nodes", auth=("mon", "p")))[0] == 200
    assert (await api.get("/api/definitions", auth=("mon", "p")))[0] == 401
    await api.put("/api/users/pm", {"password": "p", "tags": "policymaker"})
    await api.put("/api/permissions/%2F/pm", {"configure": ".*", "write": ".*", "read": ".*"})
    assert (await api.put("/api/policies/%2F/p1", {"pattern": "^q", "definition":
                                                   {"max-length": 1}}, auth=("pm", "p")))[0] == 201
    assert (await api.put("/api/policies/%2F/p2", {"pattern": "^q", "definition":
                                                   {"max-length": 1}}, auth=("mon", "p")))[0] == 401


async def test_policies_parameters_limits_stored(api) -> None:
    assert (await api.put("/api/policies/%2F/ttl", {
        "pattern": "^t\\.", "definition": {"message-ttl": 1000}, "priority": 3,
        "apply-to": "queues"}))[0] == 201
    assert (await api.get("/api/policies/%2F/ttl"))[1] == {
        "vhost": "/", "name": "ttl", "pattern": "^t\\.", "apply-to": "queues",
        "definition": {"message-ttl": 1000}, "priority": 3}
    status, err = await api.put("/api/policies/%2F/ha", {"pattern": ".", "definition":
                                                         {"ha-mode": "all"}})
    assert status == 400 and "mirroring" in err["reason"]
    assert (await api.put("/api/operator-policies/%2F/cap", {
        "pattern": ".*", "definition": {"max-length": 100}}))[0] == 201
    assert len((await api.get("/api/operator-policies"))[1]) == 1
    # a component nothing here runs: stored and returned as given
    assert (await api.put("/api/parameters/federation-upstream/%2F/u1",
                          {"value": {"uri": "amqp://"}}))[0] == 201
    assert (await api.get("/api/parameters/federation-upstream"))[1][0]["value"] == {
        "uri": "amqp://"}
    # a shovel's definition is checked (RabbitMQ: 400 "Validation failed" with the reasons)
    status, err = await api.put("/api/parameters/shovel/%2F/s1",
                                {"value": {"src-uri": "amqp://"}})
    assert status == 400 and "dest-uri is required" in err["reason"]
    assert (await api.get("/api/parameters/shovel"))[1] == []
    assert (await api.put("/api/global-parameters/cluster_tags", {"value": {"az": "1"}}))[0] == 201
    assert (await api.put("/api/vhost-limits/%2F/max-queues", {"value": 10}))[0] == 204
    assert (await api.get("/api/vhost-limits"))[1] == [{"vhost": "/", "value": {"max-queues": 10}}]
    assert (await api.put("/api/user-limits/guest/max-channels", {"value": 5}))[0] == 204
    assert (await api.get("/api/user-limits/guest"))[1] == [{"user": "guest",
                                                             "value": {"max-channels": 5}}]
    assert (await api.delete("/api/vhost-limits/%2F/max-queues"))[0] == 204
    assert (await api.get("/api/vhost-limits"))[1] == []
    assert (await api.put("/api/topic-permissions/%2F/guest", {
        "exchange": "amq.topic", "write": "^a", "read": ".*"}))[0] == 201
    assert (await api.get("/api/topic-permissions"))[1][0]["exchange"] == "amq.topic"
    assert (await api.delete("/api/policies/%2F/ttl"))[0] == 204
    assert (await api.get("/api/policies/%2F/ttl"))[0] == 404


async def test_listing_parameters(api) -> None:
    for name in ("b-q", "a-q", "c-x"):
        await api.put(f"/api/queues/%2F/{name}", {})
    await api.post("/api/exchanges/%2F/amq.default/publish", {
        "properties": {}, "routing_key": "c-x", "payload": "1", "payload_encoding": "string"})
    _, items = await api.get("/api/queues?columns=name,messages&sort=name")
    assert items == [{"name": "a-q", "messages": 0}, {"name": "b-q", "messages": 0},
                     {"name": "c-x", "messages": 1}]
    _, items = await api.get("/api/queues?columns=name&sort=messages&sort_reverse=true")
    assert items[0] == {"name": "c-x"}
    _, page = await api.get("/api/queues?page=2&page_size=2&sort=name&columns=name")
    assert page == {"filtered_count": 3, "item_count": 1, "items": [{"name": "c-x"}], "page": 2,
                    "page_count": 2, "page_size": 2, "total_count": 3}
    _, page = await api.get("/api/queues?page=1&name=%5E.-q%24&use_regex=true&columns=name")
    assert page["filtered_count"] == 2 and page["total_count"] == 3
    _, page = await api.get("/api/queues?page=1&name=x&columns=name")
    assert page["items"] == [{"name": "c-x"}]
    _, items = await api.get("/api/queues/%2F?disable_stats=true")
    assert all("messages_details" not in i for i in items)
    status, err = await api.get("/api/queues?page=0")
    assert status == 400 and "page" in err["reason"]


async def test_health_checks_and_aliveness(mgmt: Broker, api) -> None:
    assert await api.get("/api/health/checks/alarms") == (200, {"status": "ok"})
    assert await api.get("/api/health/checks/local-alarms") == (200, {"status": "ok"})
    assert await api.get("/api/health/checks/virtual-hosts") == (200, {"status": "ok"})
    status, body = await api.get(f"/api/health/checks/port-listener/{mgmt.port}")
    assert (status, body["status"]) == (200, "ok")
    status, body = await api.get("/api/health/checks/port-listener/1")
    assert (status, body["status"]) == (503, "failed")
    assert await api.get("/api/aliveness-test/%2F") == (200, {"status": "ok"})
    mgmt.core.set_alarm("memory", True)
    status, body = await api.get("/api/health/checks/alarms")
    assert status == 503 and body["alarms"][0]["resource"] == "memory"
    mgmt.core.set_alarm("memory", False)


async def test_definitions_export_import_live(mgmt: Broker, api) -> None:
    await api.put("/api/vhosts/v2", {})
    await api.put("/api/exchanges/v2/ex", {"type": "fanout", "durable": True})
    await api.put("/api/queues/v2/qd", {"durable": True, "arguments": {"x-max-length": 5}})
    await api.put("/api/queues/v2/transient", {"durable": False})
    await api.post("/api/bindings/v2/e/ex/q/qd", {"routing_key": "k"})
    await api.put("/api/users/u1", {"password": "p", "tags": "management"})
    await api.put("/api/permissions/v2/u1", {"configure": ".*", "write": ".*", "read": ".*"})
    await api.put("/api/policies/v2/p", {"pattern": "^q", "definition": {"max-length": 2}})
    status, defs = await api.get("/api/definitions")
    assert status == 200
    assert {"users", "vhosts", "permissions", "policies", "queues", "exchanges",
            "bindings"} <= set(defs)
    assert [q["name"] for q in defs["queues"]] == ["qd"]
    assert defs["bindings"] == [{"source": "ex", "vhost": "v2", "destination": "qd",
                                 "destination_type": "queue", "routing_key": "k",
                                 "arguments": {}}]
    status, vdefs = await api.get("/api/definitions/v2")
    assert [e["name"] for e in vdefs["exchanges"]] == ["ex"]
    # import the per-vhost file into a new vhost: declared live, through client code paths
    await api.put("/api/vhosts/v3", {})
    assert (await api.post("/api/definitions/v3", vdefs))[0] == 204
    assert (await api.get("/api/queues/v3/qd"))[1]["arguments"] == {"x-max-length": 5}
    assert (await api.get("/api/policies/v3/p"))[0] == 200
    _, routed = await api.post("/api/exchanges/v3/ex/publish", {
        "properties": {}, "routing_key": "", "payload": "m", "payload_encoding": "string"})
    assert routed == {"routed": True}
    # a conflicting import changes nothing
    bad = {"queues": [{"name": "qd", "vhost": "v2", "durable": False, "auto_delete": False,
                       "arguments": {}}],
           "exchanges": [{"name": "new-ex", "vhost": "v2", "type": "direct", "durable": True,
                          "auto_delete": False, "internal": False, "arguments": {}}]}
    status, err = await api.post("/api/definitions", bad)
    assert status == 400 and "inequivalent" in err["reason"]
    assert (await api.get("/api/exchanges/v2/new-ex"))[0] == 404
    # whole-broker import of the export into a fresh broker
    async with Broker(management=True) as other:
        import aiohttp

        from management_http import Api

        async with aiohttp.ClientSession() as s:
            api2 = Api(s, other.management_url)
            assert (await api2.post("/api/definitions", defs))[0] == 204
            assert (await api2.get("/api/queues/v2/qd"))[0] == 200
            assert (await api2.get("/api/users/u1"))[1]["tags"] == ["management"]
            assert (await api2.get("/api/permissions/v2/u1"))[0] == 200
            assert len((await api2.get("/api/bindings/v2"))[1]) == 2  # default + ex->qd
