"""Broker(config=...): clients use the configured topology without declaring anything."""

import asyncio
import json

import aio_pika
import pika
import pika.exceptions
import pytest
from aio_pika.exceptions import ProbableAuthenticationError

from amqpbroker.config import ConfigError
from amqpbroker.embed import Broker, run_in_thread
from amqpbroker.settings import Settings
from amqpbroker.store.disk import DiskDefinitionStore

CONFIG = """\
listeners:
  - host: 127.0.0.1
    port: 0
data_dir: null
vhosts: [/, shop]
users:
  - {name: guest, password: guest, tags: [administrator]}
  - {name: app, password: "${APP_PASSWORD:-app-secret}"}
permissions:
  - {user: guest, vhost: /, configure: ".*", write: ".*", read: ".*"}
  - {user: guest, vhost: shop, configure: ".*", write: ".*", read: ".*"}
  - {user: app, vhost: shop, configure: "^$", write: "^orders$", read: "^orders\\\\.created$"}
exchanges:
  - {name: orders, vhost: shop, type: topic}
queues:
  - {name: orders.created, vhost: shop, arguments: {x-max-length: 100}}
bindings:
  - {source: orders, vhost: shop, destination: orders.created, routing_key: "order.created"}
"""


def url(broker: Broker, user: str, password: str, vhost: str = "shop") -> str:
    from urllib.parse import quote

    return f"amqp://{user}:{password}@127.0.0.1:{broker.port}/{quote(vhost, safe='')}"


async def test_clients_use_the_configured_topology_without_declaring():
    async with Broker(config=CONFIG) as broker:
        assert broker.settings.data_dir is None and broker.settings.host == "127.0.0.1"
        async with await aio_pika.connect(url(broker, "guest", "guest")) as conn:
            ch = await conn.channel()
            exchange = await ch.declare_exchange("orders", passive=True)
            queue = await ch.declare_queue("orders.created", passive=True)
            await exchange.publish(aio_pika.Message(b"order 1"), routing_key="order.created")
            await exchange.publish(aio_pika.Message(b"not routed"), routing_key="order.paid")
            msg = await queue.get(no_ack=True, timeout=5)
            assert msg.body == b"order 1"
            assert await queue.get(no_ack=True, fail=False, timeout=5) is None


async def test_a_restricted_user_logs_in_and_uses_what_it_may():
    async with Broker(config=CONFIG) as broker:
        async with await aio_pika.connect(url(broker, "app", "app-secret")) as conn:
            ch = await conn.channel()
            exchange = await ch.get_exchange("orders")  # passive declares need no permission
            queue = await ch.get_queue("orders.created")
            await exchange.publish(aio_pika.Message(b"hello"), routing_key="order.created")
            assert (await queue.get(no_ack=True, timeout=5)).body == b"hello"
        assert broker.core.users["app"].permissions["shop"].allows("configure", "x") is False


async def test_wrong_password_and_unknown_vhost_are_refused():
    """What the user sees, as pika reports it (code and text): a wrong password is 403
    at login, a vhost the user has no permissions on is 530 at connection.open."""

    def refused(user: str, password: str, vhost: str = "shop") -> str:
        with pytest.raises(pika.exceptions.AMQPConnectionError) as exc:
            pika.BlockingConnection(pika.URLParameters(url(broker, user, password, vhost)))
        return f"{type(exc.value).__name__}: {exc.value}"

    async with Broker(config=CONFIG) as broker:
        text = await asyncio.to_thread(refused, "app", "wrong")
        assert text.startswith("ProbableAuthenticationError")
        assert ("(403) 'ACCESS_REFUSED - Login was refused using authentication mechanism "
                "PLAIN. For details see the broker logfile.'") in text
        text = await asyncio.to_thread(refused, "app", "app-secret", "/")
        assert text.startswith("ProbableAccessDeniedError")
        assert "(530) \"NOT_ALLOWED - access to vhost '/' refused for user 'app'\"" in text


async def test_environment_supplies_the_secret(monkeypatch):
    monkeypatch.setenv("APP_PASSWORD", "from-the-environment")
    async with Broker(config=CONFIG) as broker:
        conn = await aio_pika.connect(url(broker, "app", "from-the-environment"))
        await conn.close()


async def test_config_as_a_path_and_as_a_dict(tmp_path):
    path = tmp_path / "broker.yaml"
    path.write_text(CONFIG)
    async with Broker(config=str(path)) as broker:
        assert "orders" in broker.core.vhosts["shop"].exchanges
    as_dict = {"queues": [{"name": "from-dict"}], "limits": {"heartbeat": 30}}
    async with Broker(config=as_dict) as broker:
        assert "from-dict" in broker.core.vhosts["/"].queues
        assert broker.settings.heartbeat == 30
        assert (broker.settings.host, broker.settings.data_dir) == ("127.0.0.1", None)
        async with await aio_pika.connect(broker.url) as conn:
            ch = await conn.channel()
            await ch.declare_queue("from-dict", passive=True)


async def test_keyword_overrides_win_over_the_file():
    async with Broker(config=CONFIG.replace("port: 0", "port: 5672"), port=0) as broker:
        assert broker.port != 5672


def test_an_invalid_file_fails_before_anything_starts():
    with pytest.raises(ConfigError) as info:
        Broker(config="queues: [{name: q, durable: maybe}]\nbindings: [{source: x, "
                      "destination: q}]\n")
    assert len(info.value.problems) == 2


async def test_restart_with_a_data_dir_and_a_conflicting_file(tmp_path):
    config = CONFIG.replace("data_dir: null", f"data_dir: {tmp_path}")
    for _ in range(2):
        async with Broker(config=config) as broker:
            assert "orders.created" in broker.core.vhosts["shop"].queues
    store = DiskDefinitionStore(tmp_path / "definitions")
    stored = [json.dumps(op, sort_keys=True) for op in store.load()]
    store.close()
    conflicting = config.replace("{name: orders.created, vhost: shop,",
                                 "{name: orders.created, vhost: shop, durable: false,")
    conflicting = conflicting.replace("queues:\n", "queues:\n  - {name: extra}\n")
    broker = Broker(config=conflicting)
    with pytest.raises(ConfigError, match="inequivalent arg 'durable' for queue "
                                          "'orders.created' in vhost 'shop'"):
        await broker.start()
    assert broker.core is None and broker.server is None
    store = DiskDefinitionStore(tmp_path / "definitions")
    assert sorted(json.dumps(op, sort_keys=True) for op in store.load()) == sorted(stored)
    store.close()


def test_run_in_thread_accepts_a_config():
    with run_in_thread(config=CONFIG) as broker:
        assert "orders" in broker.core.vhosts["shop"].exchanges


async def test_explicit_settings_win_over_the_files_settings():
    settings = Settings(data_dir=None, host="127.0.0.1", port=0, heartbeat=5)
    async with Broker(settings, config=CONFIG.replace("data_dir: null", "data_dir: /nope")) \
            as broker:
        assert broker.settings.data_dir is None and broker.settings.heartbeat == 5
        assert "shop" in broker.core.vhosts
    await asyncio.sleep(0)
