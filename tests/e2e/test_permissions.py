"""Permissions enforced on every operation, with RabbitMQ's 403 texts (issue 5)."""

import aio_pika
from aio_pika.exceptions import ProbableAuthenticationError
import pytest
from aiormq.exceptions import ChannelAccessRefused

from amqpbroker import Broker

CONFIG = {
    "users": [
        {"name": "guest", "password": "guest", "tags": ["administrator"]},
        {"name": "app", "password": "secret"},
    ],
    "permissions": [
        {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
        # app may configure and use only app.* resources, and publish via the default exchange.
        {"user": "app", "vhost": "/", "configure": "^app\\.", "write": "^(app\\.|amq\\.default$)",
         "read": "^app\\."},
    ],
    "exchanges": [{"name": "other.ex", "type": "fanout"}, {"name": "app.ex", "type": "fanout"}],
    "queues": [{"name": "other.q"}, {"name": "app.q"}],
    "bindings": [{"source": "app.ex", "destination": "app.q"}],
}


@pytest.fixture
async def app_url():
    async with Broker(config=CONFIG) as broker:
        yield f"amqp://app:secret@127.0.0.1:{broker.port}/"


async def raw(ch, call):
    """Run a method on aio-pika's underlying aiormq channel."""
    return await call(await ch.get_underlay_channel())


async def _refused(url, op):
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        with pytest.raises(ChannelAccessRefused) as exc:
            await op(ch)
        return str(exc.value)


async def test_allowed_operations_work(app_url):
    async with await aio_pika.connect(app_url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("app.work")
        ex = await ch.get_exchange("app.ex")
        await q.bind(ex)
        await ex.publish(aio_pika.Message(b"x"), "")
        await ch.default_exchange.publish(aio_pika.Message(b"y"), "app.work")
        assert (await q.get(no_ack=True, timeout=2)).body == b"x"
        await q.purge()
        await q.delete(if_unused=False, if_empty=False)


@pytest.mark.parametrize("op, text", [
    (lambda ch: ch.declare_queue("other.new"),
     "access to queue 'other.new' in vhost '/' refused for user 'app'"),
    (lambda ch: ch.declare_exchange("other.x", aio_pika.ExchangeType.FANOUT),
     "access to exchange 'other.x' in vhost '/' refused for user 'app'"),
    (lambda ch: raw(ch, lambda r: r.queue_delete("other.q")),
     "access to queue 'other.q' in vhost '/' refused for user 'app'"),
    (lambda ch: raw(ch, lambda r: r.exchange_delete("other.ex")),
     "access to exchange 'other.ex' in vhost '/' refused for user 'app'"),
    (lambda ch: raw(ch, lambda r: r.basic_get("other.q")),
     "access to queue 'other.q' in vhost '/' refused for user 'app'"),
    (lambda ch: raw(ch, lambda r: r.queue_purge("other.q")),
     "access to queue 'other.q' in vhost '/' refused for user 'app'"),
    (lambda ch: raw(ch, lambda r: r.queue_bind("other.q", "app.ex")),
     "access to queue 'other.q' in vhost '/' refused for user 'app'"),
    (lambda ch: raw(ch, lambda r: r.queue_bind("app.q", "other.ex")),
     "access to exchange 'other.ex' in vhost '/' refused for user 'app'"),
    (lambda ch: raw(ch, lambda r: r.exchange_bind("other.ex", "app.ex")),
     "access to exchange 'other.ex' in vhost '/' refused for user 'app'"),
])
async def test_refused_operations_close_the_channel_with_403(app_url, op, text):
    assert text in await _refused(app_url, op)


async def test_consume_needs_read(app_url):
    async def consume(ch):
        q = await ch.declare_queue("other.q", passive=True)
        async def nothing(m):
            pass

        await q.consume(nothing)

    assert "access to queue 'other.q'" in await _refused(app_url, consume)


async def test_publish_needs_write_on_the_exchange(app_url):
    async def publish(ch):
        ex = await ch.get_exchange("other.ex")
        await ex.publish(aio_pika.Message(b"x"), "")

    assert ("access to exchange 'other.ex' in vhost '/' refused for user 'app'"
            in await _refused(app_url, publish))


async def test_unknown_user_is_refused(app_url):
    with pytest.raises(ProbableAuthenticationError) as exc:
        await aio_pika.connect(app_url.replace("secret", "wrong"))
    assert "ACCESS_REFUSED - Login was refused" in str(exc.value)
