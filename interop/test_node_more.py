"""More amqplib (Node) checks, in interop/node/more.js: publish() returning false
and 'drain' under backpressure, heartbeats, exchange-to-exchange and headers
routing, consumer cancel notifications, exclusive consumers, basic.recover,
basic.cancel, server capabilities, a refused login and close() right after a
burst of publishes. FAILS (never skips) without node and amqplib."""
import pytest

from .ecosystem import broker_bug
from .harness import AMQPLIB, WAIT, require_node

pytestmark = pytest.mark.interop

CHECKS = [
    "backpressure-drain",
    pytest.param("close-after-burst", marks=broker_bug(
        "after answering a client's Connection.Close with Close-Ok the broker closes its "
        "socket at once (AMQPProtocol.flush calls transport.close() as soon as "
        "conn.closed), although the client may still be sending: amqplib sends Close "
        "ahead of the publish frames still in its channel buffer. Closing a socket with "
        "unread input makes the kernel send RST, so amqplib's writes fail with EPIPE and "
        "the Close-Ok is lost: close() never resolves. RabbitMQ keeps reading (and "
        "discarding) frames after Close-Ok until the client closes the socket")),
    "heartbeat",
    "exchange-to-exchange",
    "headers-exchange",
    "consumer-cancel-notify",
    "exclusive-consumer-403",
    "recover",
    "cancel-consumer",
    "server-capabilities",
    "auth-failure",
]


def _name(check) -> str:
    return check if isinstance(check, str) else check.values[0]


@pytest.fixture(autouse=True)
def _node_is_required():
    require_node()


def test_more_checks_are_all_listed(runner):
    """more.js and CHECKS name the same checks."""
    listed = runner.run(AMQPLIB, "more").stdout
    assert sorted(listed) == sorted(_name(c) for c in CHECKS)


@pytest.mark.parametrize("check", CHECKS)
def test_amqplib_more(runner, check):
    proc = runner.spawn(AMQPLIB, "more", check)
    status = proc.finish(WAIT)
    assert proc.matches(rf"^PASS {check}$") and status == 0, runner.dump()
