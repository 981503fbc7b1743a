"""The Prometheus endpoint end to end: aio-pika drives a known workload, /metrics is
parsed with prometheus_client's parser and its counters must say exactly what happened."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aio_pika
import aiohttp
import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from amqpbroker.embed import Broker
from amqpbroker.tls import TLSOptions

DASHBOARD = Path(__file__).resolve().parents[1] / "data" / "rabbitmq_overview_dashboard_metrics.txt"


async def scrape(url: str, path: str = "/metrics", **kw) -> dict:
    async with aiohttp.ClientSession() as s, s.get(url + path, **kw) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict, name: str, **labels: str) -> float:
    family = families[name]
    found = [s.value for s in family.samples
             if all(s.labels.get(k) == v for k, v in labels.items())
             and s.name in (name, name + "_total")]
    assert len(found) == 1, (name, labels, family.samples)
    return found[0]


async def workload(broker: Broker) -> None:
    conn = await aio_pika.connect(broker.url)
    ch = await conn.channel(on_return_raises=False)  # publisher confirms on
    q = await ch.declare_queue("q")
    for _ in range(10):
        await ch.default_exchange.publish(aio_pika.Message(b"x" * 50), "q")
    await ch.default_exchange.publish(aio_pika.Message(b"r" * 500), "nowhere", mandatory=True)
    await ch.default_exchange.publish(aio_pika.Message(b"d" * 5000), "nowhere",
                                      mandatory=False)
    got = await q.get(no_ack=False)
    await got.ack()
    await q.get(no_ack=True)
    await ch.set_qos(prefetch_count=1)  # one at a time: the nacked one comes back next
    seen: list[aio_pika.abc.AbstractIncomingMessage] = []
    done = asyncio.Event()

    async def on_message(m: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.append(m)
        if len(seen) in (1, 2):
            await m.ack()
        elif len(seen) == 3:
            await m.nack(requeue=True)
        elif len(seen) == 4:
            done.set()  # acked once the consumer is cancelled: no 5th delivery

    tag = await q.consume(on_message)
    await asyncio.wait_for(done.wait(), 10)
    await q.cancel(tag)
    assert seen[3].redelivered and len(seen) == 4
    await seen[3].ack()
    auto: list[bytes] = []
    five = asyncio.Event()

    async def on_auto(m: aio_pika.abc.AbstractIncomingMessage) -> None:
        auto.append(m.body)
        if len(auto) == 5:
            five.set()

    tag = await q.consume(on_auto, no_ack=True)
    await asyncio.wait_for(five.wait(), 10)
    await q.cancel(tag)
    with pytest.raises(aio_pika.exceptions.QueueEmpty):
        await q.get(no_ack=False)
    await conn.close()


EXPECTED = {  # publish 12 (10 routed, 1 returned, 1 dropped), get 1+1, consume 4+5, 1 empty
    "rabbitmq_global_messages_received": 12, "rabbitmq_global_messages_received_confirm": 12,
    "rabbitmq_global_messages_routed": 10, "rabbitmq_global_messages_confirmed": 12,
    "rabbitmq_global_messages_unroutable_returned": 1,
    "rabbitmq_global_messages_unroutable_dropped": 1,
    "rabbitmq_global_messages_delivered_get_manual_ack": 1,
    "rabbitmq_global_messages_delivered_get_auto_ack": 1,
    "rabbitmq_global_messages_delivered_consume_manual_ack": 4,
    "rabbitmq_global_messages_delivered_consume_auto_ack": 5,
    "rabbitmq_global_messages_delivered": 11, "rabbitmq_global_messages_redelivered": 1,
    "rabbitmq_global_messages_acknowledged": 4, "rabbitmq_global_messages_get_empty": 1,
}


async def test_counters_match_a_known_workload() -> None:
    async with Broker(prometheus=True) as broker:
        await workload(broker)  # its connection is closed: the counters must stay
        m = await scrape(broker.prometheus_url)
        for name, expected in EXPECTED.items():
            assert value(m, name, protocol="amqp091") == expected, name
        hist = m["rabbitmq_message_size_bytes"].samples
        sizes = {s.labels["le"]: s.value for s in hist if s.name.endswith("_bucket")}
        assert sizes["100.0"] == 10 and sizes["1000.0"] == 11 and sizes["10000.0"] == 12
        assert sizes["+Inf"] == 12
        assert [s.value for s in hist if s.name.endswith("_sum")] == [6000]
        assert value(m, "rabbitmq_connections_opened") >= 1
        assert value(m, "rabbitmq_connections_closed") >= 1
        assert value(m, "rabbitmq_queues_created") == 1
        assert value(m, "rabbitmq_queues") == 1
        assert value(m, "rabbitmq_queue_messages_ready") == 0
        assert value(m, "rabbitmq_connections") == 0
        ident = m["rabbitmq_identity_info"].samples[0].labels
        assert ident["rabbitmq_endpoint"] == "aggregated" and ident["rabbitmq_cluster"]


async def test_open_objects_counted_and_per_object_labels() -> None:
    async with Broker(prometheus=True) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        q = await ch.declare_queue("depth")
        for _ in range(3):
            await ch.default_exchange.publish(aio_pika.Message(b"abc"), "depth")
        async def hold(m: aio_pika.abc.AbstractIncomingMessage) -> None:
            pass  # never acked: the three stay unacknowledged

        await q.consume(hold, no_ack=False)
        await asyncio.sleep(0.2)
        m = await scrape(broker.prometheus_url)
        assert value(m, "rabbitmq_global_publishers", protocol="amqp091") == 1
        assert value(m, "rabbitmq_global_consumers", protocol="amqp091") == 1
        assert value(m, "rabbitmq_connections") == 1 and value(m, "rabbitmq_channels") == 1
        assert value(m, "rabbitmq_queue_messages_unacked") == 3
        per = await scrape(broker.prometheus_url, "/metrics/per-object")
        assert value(per, "rabbitmq_queue_messages_unacked", vhost="/", queue="depth") == 3
        assert value(per, "rabbitmq_queue_info", vhost="/", queue="depth",
                     queue_type="rabbit_classic_queue") == 1
        det = await scrape(broker.prometheus_url,
                           "/metrics/detailed?family=queue_coarse_metrics&vhost=/")
        assert value(det, "rabbitmq_detailed_queue_messages", vhost="/", queue="depth") == 3
        assert "rabbitmq_detailed_channel_consumers" not in det
        await conn.close()


async def test_every_dashboard_metric_is_exported() -> None:
    async with Broker(prometheus=True) as broker:
        m = await scrape(broker.prometheus_url)
        missing = []
        for line in DASHBOARD.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            name, mtype, *labels = line.split()
            family = m.get(name.removesuffix("_total") if mtype == "counter" else name)
            if family is None or family.type.replace("unknown", "untyped") != mtype:
                missing.append((name, mtype, family and family.type))
                continue
            for label in labels:
                if label == "-":
                    continue
                key, _, want = label.partition("=")
                if not any(s.labels.get(key) == (want or s.labels.get(key)) and key in s.labels
                           for s in family.samples):
                    missing.append((name, label))
        assert not missing


async def test_bad_requests_and_listener_switches() -> None:
    async with Broker() as broker:
        assert broker.metrics is None
    async with Broker(prometheus=True) as broker, aiohttp.ClientSession() as s:
        base = broker.prometheus_url
        for path in ("/", "/metrics/nope", "/api/overview", "/metrics/per-object/x"):
            async with s.get(base + path) as r:
                assert r.status == 404, path
        async with s.post(base + "/metrics") as r:
            assert r.status == 405
        async with s.get(base + "/metrics/detailed?family=queue_coarse_metrics&queue=(") as r:
            assert r.status == 400 and "regex" in await r.text()
        async with s.get(base + "/metrics", headers={"Accept-Encoding": "gzip"}) as r:
            assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
            assert "rabbitmq_identity_info" in await r.text()


async def test_https_listener(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with Broker(prometheus_tls_port=0,
                      tls=TLSOptions(certfile=str(tmp_path / "server.pem"))) as broker:
        assert broker.metrics.port == 0  # only HTTPS was asked for
        m = await scrape(broker.prometheus_https_url, ssl=client)
        assert "rabbitmq_identity_info" in m


async def test_mqtt_publishes_count_under_their_protocol() -> None:
    import aiomqtt

    async with Broker(prometheus=True, mqtt_port=0) as broker:
        async with aiomqtt.Client("127.0.0.1", broker.mqtt_port, username="guest",
                                  password="guest") as client:
            await client.publish("a/b", b"hello", qos=1)
        m = await scrape(broker.prometheus_url)
        assert value(m, "rabbitmq_global_messages_received", protocol="mqtt311") == 1
        assert value(m, "rabbitmq_global_messages_received", protocol="amqp091") == 0
