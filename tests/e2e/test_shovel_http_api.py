"""Shovels driven through the management HTTP API (RabbitMQ's paths): PUT/DELETE
/api/parameters/shovel/{vhost}/{name}, GET /api/shovels, a definitions import; and the
delayed-message count on the API's exchange objects. aiohttp is the HTTP client, aio-pika
checks the messages on both brokers."""

import asyncio
import base64
import time

import aio_pika
import aiohttp

from amqpbroker.embed import Broker

AUTH = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}


async def _until(predicate, timeout=30.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


async def _call(http, method, url, body=None):
    async with http.request(method, url, json=body, headers=AUTH) as r:
        text = await r.text()
        return r.status, (await r.json(content_type=None) if text else None)


async def _depth(url, queue):
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        try:
            q = await ch.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return -1
        return q.declaration_result.message_count


async def _publish(url, queue, n, start=0):
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        await ch.declare_queue(queue, durable=True)
        for i in range(start, start + n):
            await ch.default_exchange.publish(aio_pika.Message(b"%d" % i, delivery_mode=2),
                                              routing_key=queue)


async def test_shovel_created_listed_and_deleted_over_http():
    async with Broker() as src, Broker(management=True) as dst, \
            aiohttp.ClientSession() as http:
        api = dst.management_url + "/api"
        await _publish(src.url, "jobs", 200)
        value = {"src-uri": src.url, "src-queue": "jobs", "dest-uri": "amqp://",
                 "dest-queue": "jobs-copy", "ack-mode": "on-confirm"}
        status, _ = await _call(http, "PUT", api + "/parameters/shovel/%2F/move", {"value": value})
        assert status == 201

        async def running():
            _, shovels = await _call(http, "GET", api + "/shovels")
            return [s for s in shovels if s["name"] == "move" and s["state"] == "running"]

        entry = (await _until(running))[0]
        assert entry["vhost"] == "/" and entry["type"] == "dynamic"
        assert entry["src_queue"] == "jobs" and entry["dest_queue"] == "jobs-copy"
        assert "guest:guest" not in entry["src_uri"]  # password removed, as RabbitMQ
        await _until(lambda: _eq(_depth(dst.url, "jobs-copy"), 200))
        assert await _depth(src.url, "jobs") == 0
        _, per_vhost = await _call(http, "GET", api + "/shovels/%2F")
        assert [s["name"] for s in per_vhost] == ["move"]
        assert (await _call(http, "GET", api + "/shovels/nope"))[0] == 404
        _, param = await _call(http, "GET", api + "/parameters/shovel/%2F/move")
        assert param["value"] == value and param["component"] == "shovel"

        # A bad definition: 400 with every problem, nothing stored, nothing started.
        status, body = await _call(http, "PUT", api + "/parameters/shovel/%2F/bad", {
            "value": {"src-uri": "http://x", "src-queue": "q", "dest-uri": "amqp://",
                      "ack-mode": "sometimes"}})
        assert status == 400 and body["error"] == "bad_request"
        assert "src-uri" in body["reason"] and "ack-mode" in body["reason"]
        assert (await _call(http, "GET", api + "/parameters/shovel/%2F/bad"))[0] == 404

        # DELETE stops it at once: later messages stay on the source.
        assert (await _call(http, "DELETE", api + "/parameters/shovel/%2F/move"))[0] == 204
        assert (await _call(http, "GET", api + "/shovels"))[1] == []
        await _publish(src.url, "jobs", 10, start=200)
        await asyncio.sleep(0.5)
        assert await _depth(src.url, "jobs") == 10
        assert await _depth(dst.url, "jobs-copy") == 200

        # A definitions import starts the shovels it names.
        status, _ = await _call(http, "POST", api + "/definitions", {"parameters": [{
            "vhost": "/", "component": "shovel", "name": "imported",
            "value": {"src-uri": src.url, "src-queue": "jobs", "dest-uri": "amqp://",
                      "dest-queue": "imported"}}]})
        assert status in (200, 201, 204)
        await _until(lambda: _eq(_depth(dst.url, "imported"), 10))
        _, shovels = await _call(http, "GET", api + "/shovels")
        assert [(s["name"], s["state"]) for s in shovels] == [("imported", "running")]


async def _eq(coro, n):
    return await coro == n


async def test_delayed_count_on_the_exchange_object():
    async with Broker(management=True) as b, aiohttp.ClientSession() as http:
        async with await aio_pika.connect(b.url) as conn:
            ch = await conn.channel()
            ex = await ch.declare_exchange("later", "x-delayed-message",
                                           arguments={"x-delayed-type": "direct"})
            q = await ch.declare_queue("due")
            await q.bind(ex, "k")
            for delay in (60_000, 60_000, 50):
                await ex.publish(aio_pika.Message(b"x", headers={"x-delay": delay}),
                                 routing_key="k")
        url = b.management_url + "/api/exchanges/%2F/later"

        async def delayed_is(n):
            return (await _call(http, "GET", url))[1]["messages_delayed"] == n

        await _until(lambda: delayed_is(2))  # the 50 ms one was routed
        _, listed = await _call(http, "GET", b.management_url + "/api/exchanges/%2F")
        by_name = {e["name"]: e for e in listed}
        assert by_name["later"]["messages_delayed"] == 2
        assert "messages_delayed" not in by_name["amq.direct"]
