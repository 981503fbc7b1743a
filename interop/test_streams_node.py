"""Stream queues (issue 11) and quorum queues (issue 10) with amqplib
(interop/node/streams.js): replay from first / numeric / last / next / an interval,
independent consumers, filters, LavinMQ-style server-side offset tracking, RabbitMQ's
refusals (basic.get, purge, no-ack, no prefetch), and a quorum queue's delivery limit
with x-delivery-count and its global-QoS refusal.

Like the other node tests these FAIL, never skip, when node or amqplib is missing. Against
another broker (AMQPBROKER_INTEROP_URL): `stream-tracking` is LavinMQ's extension,
`stream-filter` needs RabbitMQ 3.13+, and `stream-refusals` expects RabbitMQ 4.x's wording
(3.10 says "... not supported by stream queues queue '...'" for automatic acks). Checked
against RabbitMQ 3.10.8: the other checks pass there.
"""
import pytest

from .harness import AMQPLIB, WAIT, require_node

pytestmark = pytest.mark.interop

CHECKS = ["stream-replay-first", "stream-offsets", "stream-independent-consumers",
          "stream-filter", "stream-tracking", "stream-refusals", "quorum-queue"]


@pytest.fixture(autouse=True)
def _node_is_required():
    require_node()


def test_script_lists_the_expected_checks(runner):
    assert runner.run(AMQPLIB, "streams").stdout == CHECKS


@pytest.mark.parametrize("check", CHECKS)
def test_amqplib_streams(runner, check):
    proc = runner.spawn(AMQPLIB, "streams", check)
    status = proc.finish(WAIT)
    assert proc.matches(rf"^PASS {check}$") and status == 0, runner.dump()
