"""More amqplib (Node) checks, in interop/node/more.js: publish() returning false
and 'drain' under backpressure, heartbeats, exchange-to-exchange and headers
routing, consumer cancel notifications, exclusive consumers, basic.recover,
basic.cancel, server capabilities, a refused login and close() right after a
burst of publishes. FAILS (never skips) without node and amqplib."""
import pytest

from .harness import AMQPLIB, WAIT, require_node

pytestmark = pytest.mark.interop

CHECKS = [
    "backpressure-drain",
    "close-after-burst",
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
