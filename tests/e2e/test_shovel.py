"""Dynamic shovels between two amqpbrokers, with aio-pika checking both ends."""

import asyncio
import dataclasses
import time

import aio_pika
import pytest

from amqpbroker.embed import Broker


async def _until(predicate, timeout=20.0, step=0.05):
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


async def _depth(url, queue):
    """Ready messages in `queue`; -1 while it does not exist."""
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        try:
            q = await ch.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return -1
        return q.declaration_result.message_count


async def _publish(url, n, queue=None, exchange=None, key="", start=0, **props):
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        if queue is not None:
            await ch.declare_queue(queue, durable=True)
        ex = ch.default_exchange if exchange is None else await ch.get_exchange(exchange)
        for i in range(start, start + n):
            await ex.publish(aio_pika.Message(b"%d" % i, delivery_mode=2, **props),
                             routing_key=queue if queue is not None else key)


async def _drain(url, queue):
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(queue, passive=True)
        out = []
        while (m := await q.get(fail=False, no_ack=True)) is not None:
            out.append(m)
        return out


def _shovel(b, name):
    return [s for s in b.shovels.status() if s["name"] == name]


@pytest.mark.parametrize("ack_mode,dest", [
    ("on-confirm", "local"), ("on-publish", "local"), ("no-ack", "local"),
    ("on-confirm", "url"), ("on-publish", "url")])
async def test_queue_to_queue_in_each_ack_mode(ack_mode, dest):
    """dest local: `amqp://`, publishes go into the broker's core (shovel/local.py);
    url: the same broker by its URL, over an AMQP connection (aiormq)."""
    async with Broker() as src, Broker() as dst:
        await _publish(src.url, 500, queue="jobs")
        dst.admin.put_parameter("shovel", "/", "move-jobs", {
            "src-uri": src.url, "src-queue": "jobs", "src-prefetch-count": 50,
            "dest-uri": "amqp://" if dest == "local" else dst.url, "dest-queue": "jobs-copy",
            "ack-mode": ack_mode})
        await _until(lambda: _shovel(dst, "move-jobs")[0]["state"] == "running")
        await _until(lambda: _depth_is(dst.url, "jobs-copy", 500), timeout=30)
        assert await _depth(src.url, "jobs") == 0
        got = await _drain(dst.url, "jobs-copy")
        assert [int(m.body) for m in got] == list(range(500))  # in order, once each
        assert got[0].delivery_mode == 2


async def _depth_is(url, queue, n):
    return await _depth(url, queue) == n


async def test_exchange_source_dest_exchange_key_and_forward_headers():
    async with Broker() as src, Broker() as dst:
        async with await aio_pika.connect(src.url) as conn:
            ch = await conn.channel()
            await ch.declare_exchange("events", "topic")
        async with await aio_pika.connect(dst.url) as conn:
            ch = await conn.channel()
            ex = await ch.declare_exchange("incoming", "direct")
            q = await ch.declare_queue("audit")
            await q.bind(ex, "audit")
        dst.admin.put_parameter("shovel", "/", "events", {
            "src-uri": [src.url], "src-exchange": "events", "src-exchange-key": "order.*",
            "dest-uri": "amqp://", "dest-exchange": "incoming", "dest-exchange-key": "audit",
            "dest-add-forward-headers": True, "dest-add-timestamp-header": True})
        await _until(lambda: _shovel(dst, "events")[0]["state"] == "running")
        async with await aio_pika.connect(src.url) as conn:
            ch = await conn.channel()
            ex = await ch.get_exchange("events")
            for key in ("order.new", "invoice.new", "order.paid"):
                await ex.publish(aio_pika.Message(key.encode(), headers={"k": key},
                                                  content_type="text/plain"), routing_key=key)
        await _until(lambda: _depth_is(dst.url, "audit", 2))
        got = await _drain(dst.url, "audit")
        assert [m.body for m in got] == [b"order.new", b"order.paid"]
        first = got[0]
        assert first.headers["k"] == "order.new" and first.content_type == "text/plain"
        info = first.headers["x-shovelled"][0]
        assert info["shovel-name"] == "events" and info["src-exchange"] == "events"
        assert info["dest-exchange"] == "incoming" and info["shovel-type"] == "dynamic"
        assert isinstance(first.headers["x-shovelled-timestamp"], int)
        status = _shovel(dst, "events")[0]
        assert status["src_exchange_key"] == "order.*" and status["vhost"] == "/"


async def test_src_delete_after_count_and_queue_length():
    async with Broker() as src, Broker() as dst:
        await _publish(src.url, 30, queue="a")
        await _publish(src.url, 12, queue="b")
        params = dst.core.runtime.parameters
        dst.admin.put_parameter("shovel", "/", "first-ten", {
            "src-uri": src.url, "src-queue": "a", "src-delete-after": 10,
            "dest-uri": "amqp://", "dest-queue": "a-out"})
        dst.admin.put_parameter("shovel", "/", "what-is-there", {
            "src-uri": src.url, "src-queue": "b", "src-delete-after": "queue-length",
            "dest-uri": "amqp://", "dest-queue": "b-out"})
        # Each deletes itself when done: parameter gone, worker gone.
        await _until(lambda: ("/", "shovel", "first-ten") not in params
                     and ("/", "shovel", "what-is-there") not in params, timeout=30)
        assert dst.shovels.status() == []
        assert [int(m.body) for m in await _drain(dst.url, "a-out")] == list(range(10))
        assert await _depth(src.url, "a") == 20
        assert len(await _drain(dst.url, "b-out")) == 12


async def test_reconnects_with_status_and_reason(tmp_path):
    src = Broker(data_dir=str(tmp_path / "src"))
    await src.start()
    port = src.port
    try:
        await _reconnect_scenario(src, port, tmp_path)
    finally:
        await src.stop()


async def _reconnect_scenario(src, port, tmp_path):
    async with Broker() as dst:
        await _publish(src.url, 100, queue="work")
        dst.admin.put_parameter("shovel", "/", "w", {
            "src-uri": src.url, "src-queue": "work", "dest-uri": "amqp://",
            "dest-queue": "work", "reconnect-delay": 0.2})
        await _until(lambda: _depth_is(dst.url, "work", 100))
        await src.stop()
        status = await _until(lambda: [s for s in _shovel(dst, "w")
                                       if s["state"] == "terminated"])
        assert "reason" in status[0]
        src.settings = dataclasses.replace(src.settings, port=port)
        await src.start()  # same data dir, same port
        await _publish(src.url, 50, queue="work", start=100)
        await _until(lambda: _depth_is(dst.url, "work", 150), timeout=30)
        assert _shovel(dst, "w")[0]["state"] == "running"
        assert sorted(int(m.body) for m in await _drain(dst.url, "work")) == list(range(150))


async def test_declared_in_yaml_persisted_and_exported(tmp_path):
    from amqpbroker.definitions import export_definitions

    async with Broker() as src:
        await _publish(src.url, 20, queue="from-yaml")
        config = {"parameters": [{"vhost": "/", "component": "shovel", "name": "yaml-shovel",
                                  "value": {"src-uri": src.url, "src-queue": "from-yaml",
                                            "dest-uri": "amqp://", "dest-queue": "landed"}}]}
        dst = Broker(config=config, data_dir=str(tmp_path / "dst"))
        await dst.start()
        try:
            await _until(lambda: _depth_is(dst.url, "landed", 20))
            exported = export_definitions(dst.core)
            assert exported["parameters"][0]["name"] == "yaml-shovel"
            # Set at runtime (the HTTP API's call): durable, back after a restart.
            dst.admin.put_parameter("shovel", "/", "runtime", {
                "src-uri": src.url, "src-queue": "later", "dest-uri": "amqp://",
                "dest-queue": "landed-later"})
        finally:
            await dst.stop()
        dst = Broker(data_dir=str(tmp_path / "dst"))  # no config this time
        await dst.start()
        try:
            names = sorted(s["name"] for s in dst.shovels.status())
            assert names == ["runtime", "yaml-shovel"]
            await _publish(src.url, 5, queue="later")
            await _until(lambda: _depth_is(dst.url, "landed-later", 5))
        finally:
            await dst.stop()


async def test_bad_definitions_are_refused_with_every_problem():
    from amqpbroker.broker.admin_shapes import BadRequest
    from amqpbroker.config import ConfigError, load_config

    async with Broker() as b:
        with pytest.raises(BadRequest) as err:
            b.admin.put_parameter("shovel", "/", "bad", {
                "src-uri": "http://x", "src-queue": "q", "src-exchange": "e",
                "dest-uri": "amqp://", "ack-mode": "sometimes", "src-delete-after": "soon"})
        assert ("/", "shovel", "bad") not in b.core.runtime.parameters
        assert b.shovels.status() == []
    text = str(err.value)
    for part in ("Validation failed", "src-uri", "exactly one of src-queue and src-exchange",
                 "ack-mode", "src-delete-after"):
        assert part in text
    with pytest.raises(ConfigError) as err:
        load_config({"parameters": [{"component": "shovel", "name": "s",
                                     "value": {"src-queue": "q", "dest-uri": "amqp://"}}]})
    assert "src-uri is required" in str(err.value)
    # other components are stored (and exported), nothing runs them
    cfg = load_config({"parameters": [{"component": "federation-upstream", "name": "u",
                                       "value": {}}]})
    assert [p[1:3] for p in cfg.runtime.parameters] == [("federation-upstream", "u")]


async def test_local_destination_missing_exchange_ends_the_session_until_declared():
    """`amqp://` destination (the broker's core, shovel/local.py): a publish to a missing
    exchange ends the session as a channel error would (status terminated, 404 text),
    nothing is lost, and the shovel runs once the exchange exists; properties unchanged."""
    async with Broker() as src, Broker() as dst:
        await _publish(src.url, 10, queue="in", content_type="text/plain",
                       headers={"h": 1}, priority=3)
        dst.admin.put_parameter("shovel", "/", "x", {
            "src-uri": src.url, "src-queue": "in", "dest-uri": "amqp://",
            "dest-exchange": "later", "dest-exchange-key": "k", "reconnect-delay": 0.2})
        status = await _until(lambda: [s for s in _shovel(dst, "x")
                                       if s["state"] == "terminated"])
        assert "no exchange 'later'" in status[0]["reason"]
        async with await aio_pika.connect(dst.url) as conn:
            ch = await conn.channel()
            ex = await ch.declare_exchange("later", "direct", durable=True)
            q = await ch.declare_queue("out", durable=True)
            await q.bind(ex, "k")
        await _until(lambda: _depth_is(dst.url, "out", 10), timeout=30)
        got = await _drain(dst.url, "out")
        assert [int(m.body) for m in got] == list(range(10))
        assert all((m.content_type, m.headers, m.priority, m.delivery_mode)
                   == ("text/plain", {"h": 1}, 3, 2) for m in got)
        assert await _depth(src.url, "in") == 0
