"""rabbitmq-c (a C client) through Debian's amqp-tools, driven by
interop/amqp_tools.sh. FAILS (never skips) when the tools are missing: .ci/run
installs them (apt-get install amqp-tools)."""
from __future__ import annotations

import shutil
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest

from .ecosystem import Background, delete_entities, pika_params, unique
from .harness import INTEROP_DIR, WAIT

pytestmark = pytest.mark.interop

SCRIPT = INTEROP_DIR / "amqp_tools.sh"


def rabbitmq_c_url(url: str) -> str:
    """rabbitmq-c reads the path after the host as the vhost: "amqp://h:p/" is the
    vhost "", so the default vhost "/" is written without any path."""
    parts = urlsplit(url)
    path = "" if parts.path in ("", "/") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def test_amqp_tools(broker_url):
    for tool in ("amqp-publish", "amqp-consume", "amqp-get", "amqp-declare-queue",
                 "amqp-delete-queue"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: apt-get install amqp-tools "
                        "(.ci/run does this)", pytrace=False)
    prefix = unique("tools")
    from_pika, props_queue = f"{prefix}.from-pika", f"{prefix}.props"
    connection = pika.BlockingConnection(pika_params(broker_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for name in (from_pika, props_queue):
            channel.queue_declare(name, durable=True)
        channel.basic_publish("", from_pika, b"from pika")

        script = Background("amqp_tools.sh", ["bash", str(SCRIPT), prefix], env={
            "AMQP_TOOLS_URL": rabbitmq_c_url(broker_url),
            "FROM_PIKA": from_pika,
            "PROPS_QUEUE": props_queue,
        })
        try:
            status = script.wait_exit(WAIT + 30)
        finally:
            script.kill()
        assert status == 0 and "PASS amqp-tools" in script.text(), script.describe()

        # What rabbitmq-c published, as pika sees it.
        method, props, body = channel.basic_get(props_queue, auto_ack=True)
        assert method is not None, f"nothing in {props_queue}"
        assert body == b'{"from": "rabbitmq-c"}'
        assert props.delivery_mode == 2
        assert props.content_type == "application/json"
        assert props.content_encoding == "utf-8"
        assert props.reply_to == "reply.here"
        assert props.headers == {"x-tool": "amqp-publish", "x-n": "7"}
        assert channel.queue_declare(from_pika, passive=True).method.message_count == 0
    finally:
        connection.close()
        delete_entities(broker_url, queues=(from_pika, props_queue))
