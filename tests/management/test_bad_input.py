"""Bad input gets a 4xx with a reason, never a 500, never a crashed broker."""

from __future__ import annotations

import json
import random

import aio_pika

from amqpbroker.management import router


def _reason(body) -> str:
    assert isinstance(body, dict) and set(body) == {"error", "reason"}, body
    return str(body["reason"])


async def test_malformed_and_non_object_json(api) -> None:
    for path in ("/api/queues/%2F/q", "/api/users/u", "/api/vhosts/v",
                 "/api/permissions/%2F/guest", "/api/policies/%2F/p"):
        status, body = await api.call("PUT", path, raw=b'{"durable": tru')
        assert status == 400 and _reason(body) == "not_json", path
    status, body = await api.call("POST", "/api/definitions", raw=b"[1, 2")
    assert status == 400 and _reason(body) == "not_json"
    status, body = await api.call("PUT", "/api/queues/%2F/q", raw=b"[1, 2]")
    assert status == 400 and "object" in _reason(body)
    status, body = await api.call("POST", "/api/definitions", raw=b'"a string"')
    assert status == 400
    status, body = await api.call("POST", "/api/definitions", {"queues": {"not": "a list"}})
    assert status == 400 and "list" in _reason(body)
    status, body = await api.call("POST", "/api/definitions", {"bogus_key": []})
    assert status == 400 and "bogus_key" in _reason(body)
    deep = b"[" * 100000 + b"]" * 100000
    status, body = await api.call("PUT", "/api/queues/%2F/q", raw=deep)
    assert status == 400


async def test_unknown_fields_and_wrong_types(api) -> None:
    status, body = await api.put("/api/queues/%2F/q", {"durable": True, "colour": "red"})
    assert status == 400 and "colour" in _reason(body)
    cases = [
        ("PUT", "/api/queues/%2F/q", {"durable": "maybe"}, "durable"),
        ("PUT", "/api/queues/%2F/q", {"arguments": [1]}, "arguments"),
        ("PUT", "/api/queues/%2F/q", {"arguments": {"x-max-length": "ten"}}, "x-max-length"),
        ("PUT", "/api/exchanges/%2F/x", {"type": 7}, "type"),
        ("PUT", "/api/users/u", {"password": "p", "tags": 5}, "tags"),
        ("PUT", "/api/users/u", {"password": "p"}, "tags"),
        ("PUT", "/api/users/u", {"password": "p", "password_hash": "x", "tags": ""}, "either"),
        ("PUT", "/api/users/u", {"password": "p", "tags": "", "hashing_algorithm": "rot13"},
         "hashing_algorithm"),
        ("PUT", "/api/permissions/%2F/guest", {"configure": "(", "write": "", "read": ""},
         "pattern"),
        ("PUT", "/api/permissions/%2F/guest", {"configure": ".*"}, "write"),
        ("PUT", "/api/policies/%2F/p", {"pattern": "[", "definition": {"a": 1}}, "pattern"),
        ("PUT", "/api/policies/%2F/p", {"pattern": ".", "definition": {}}, "definition"),
        ("PUT", "/api/policies/%2F/p", {"pattern": ".", "definition": {"a": 1},
                                        "apply-to": "everything"}, "apply-to"),
        ("PUT", "/api/policies/%2F/p", {"pattern": ".", "definition": {"a": 1},
                                        "priority": "high"}, "priority"),
        ("PUT", "/api/vhost-limits/%2F/max-bananas", {"value": 1}, "max-bananas"),
        ("PUT", "/api/vhost-limits/%2F/max-queues", {"value": "many"}, "max-queues"),
        ("PUT", "/api/vhosts/v", {"default_queue_type": "fast"}, "default_queue_type"),
        ("POST", "/api/exchanges/%2F/amq.direct/publish", {"routing_key": "k"}, "payload"),
        ("POST", "/api/exchanges/%2F/amq.direct/publish",
         {"routing_key": "k", "payload": "!!", "payload_encoding": "base64"}, "base64"),
        ("POST", "/api/exchanges/%2F/amq.direct/publish",
         {"routing_key": "k", "payload": "x", "payload_encoding": "rot13"}, "payload_encoding"),
        ("POST", "/api/exchanges/%2F/amq.direct/publish",
         {"routing_key": "k", "payload": "x", "properties": {"delivery_mode": 300}},
         "delivery_mode"),
        ("POST", "/api/exchanges/%2F/amq.direct/publish",
         {"routing_key": "k", "payload": "x", "properties": {"colour": "red"}}, "colour"),
        ("POST", "/api/exchanges/%2F/amq.direct/publish",
         {"routing_key": "k", "payload": "x", "properties": "nope"}, "properties"),
        ("POST", "/api/users/bulk-delete", {"users": "guest"}, "users"),
        ("PUT", "/api/queues/%2F/" + "n" * 256, {}, "255"),
    ]
    await api.put("/api/queues/%2F/gq", {})
    cases += [
        ("POST", "/api/queues/%2F/gq/get", {"count": -1, "ackmode": "ack_requeue_true"},
         "count"),
        ("POST", "/api/queues/%2F/gq/get", {"count": 1, "ackmode": "keep"}, "ackmode"),
        ("POST", "/api/queues/%2F/gq/get", {"count": "x", "ackmode": "ack_requeue_true"},
         "count"),
        ("POST", "/api/queues/%2F/gq/get", {"count": 1, "ackmode": "ack_requeue_true",
                                            "encoding": "utf-16"}, "encoding"),
    ]
    for method, path, body, word in cases:
        status, reply = await api.call(method, path, body)
        assert status == 400, (method, path, body, status, reply)
        assert word in _reason(reply), (path, reply)


async def test_reserved_names_are_refused_as_rabbitmq_does(api) -> None:
    # RabbitMQ answers an AMQP access refusal over HTTP with 401 not_authorised.
    status, body = await api.put("/api/exchanges/%2F/amq.custom", {"type": "direct"})
    assert status == 401 and "amq." in _reason(body)
    status, body = await api.delete("/api/exchanges/%2F/amq.direct")
    assert status == 401


async def test_slashes_and_percent_encoding_in_names(api) -> None:
    assert (await api.put("/api/vhosts/a%2Fb", {}))[0] == 201
    assert (await api.get("/api/vhosts/a%2Fb"))[1]["name"] == "a/b"
    assert (await api.put("/api/queues/a%2Fb/q%2Fone", {}))[0] == 201
    status, q = await api.get("/api/queues/a%2Fb/q%2Fone")
    assert (status, q["name"], q["vhost"]) == (200, "q/one", "a/b")
    # a literal "%2F" in a name is sent as %252F
    assert (await api.put("/api/queues/%2F/x%252Fy", {}))[0] == 201
    assert (await api.get("/api/queues/%2F/x%252Fy"))[1]["name"] == "x%2Fy"
    assert (await api.get("/api/queues/%2F/x%2Fy"))[0] == 404
    # an unencoded slash splits the path: no such endpoint
    status, body = await api.get("/api/queues/%2F/q/one/extra/parts")
    assert status == 404 and _reason(body) == "Not Found"
    status, body = await api.get("/api/queues//q")
    assert status in (400, 404)
    status, body = await api.get("/api/queues/%FF/q")
    assert status == 400 and "UTF-8" in _reason(body)
    status, body = await api.call("PATCH", "/api/queues/%2F/q")
    assert status == 405 and "PUT" in api.last_headers["Allow"]


async def test_huge_body_and_wrong_content_type(mgmt, api) -> None:
    big = b'{"description": "' + b"x" * (21 * 1024 * 1024) + b'"}'
    status, body = await api.call("PUT", "/api/vhosts/big", raw=big)
    assert status == 413 and "larger" in _reason(body)
    status, body = await api.call("PUT", "/api/vhosts/v", raw=b"<vhost/>",
                                  headers={"Content-Type": "application/xml"})
    assert status == 415 and "application/json" in _reason(body)
    status, _ = await api.call("PUT", "/api/vhosts/v", raw=b"{}",
                               headers={"Content-Type": "text/plain"})
    assert status == 201
    # the broker is fine afterwards
    conn = await aio_pika.connect(mgmt.url)
    await conn.close()
    assert (await api.get("/api/overview"))[0] == 200


async def test_random_bodies_never_get_a_5xx(mgmt, api) -> None:
    """Every route with a bounded set of random bodies and path values: always < 500
    (except the health checks' documented 503)."""
    rnd = random.Random(1234)
    values = [None, True, 0, -1, 2**70, 1.5, "", "x", "/", "%2F", "\u0000", [], [1, {}],
              {}, {"a": {"b": []}}, "a" * 300]
    keys = ["durable", "type", "arguments", "tags", "password", "password_hash",
            "configure", "write", "read", "pattern", "definition", "priority", "apply-to",
            "value", "routing_key", "payload", "payload_encoding", "properties", "count",
            "ackmode", "encoding", "truncate", "users", "exchange", "queues", "vhosts",
            "description", "default_queue_type", "hashing_algorithm"]
    segments = ["%2F", "x", "%00", "amq.default", "guest", "a%2Fb", "max-queues", "1", "q"]
    await api.put("/api/queues/%2F/x", {})
    # The random calls may change or delete guest (its name is one of the segments): the
    # final check logs in as a user no random call names.
    assert (await api.put("/api/users/fuzz-checker", {"password": "pw",
                                                      "tags": "administrator"}))[0] == 201
    for _ in range(600):
        r = rnd.choice(router.ROUTES)
        path = "/" + "/".join(rnd.choice(segments) if p.startswith("{") else p
                              for p in r.parts)
        body = {rnd.choice(keys): rnd.choice(values) for _ in range(rnd.randint(0, 4))}
        raw = json.dumps(body).encode() if rnd.random() < 0.9 else bytes(
            rnd.getrandbits(8) for _ in range(20))
        status, reply = await api.call(r.method, path, raw=raw)
        assert status < 500 or (status == 503 and "/health/" in path) or \
            (status == 503 and "aliveness" in path), (r.method, path, raw, status, reply)
    api.auth = ("fuzz-checker", "pw")
    assert (await api.get("/api/overview"))[0] == 200
    # the random calls may have deleted guest or "/" (or changed guest's password):
    # recreate them, then connect
    await api.put("/api/vhosts/%2F", {})
    await api.put("/api/users/guest", {"password": "guest", "tags": "administrator"})
    await api.put("/api/permissions/%2F/guest", {"configure": ".*", "write": ".*",
                                                 "read": ".*"})
    conn = await aio_pika.connect(mgmt.url)
    await conn.close()
