"""Queue features (issue 6) with amqplib: TTL and expiry, dead lettering with x-death and a
retry loop, length limits and overflow, priorities, single active consumer, delivery
limit, consumer timeout, argument validation (interop/node/features_queue_*.js).

Like the other node tests these FAIL, never skip, when node or amqplib is missing. Against
another broker (AMQPBROKER_INTEROP_URL) note that RabbitMQ 4.x refuses x-delivery-limit on
classic queues and accepts quorum/stream queues, so `delivery-limit` and `queue-types`
describe this broker (see docs/compatibility.md).
"""
import pytest

from .harness import AMQPLIB, WAIT, require_node

pytestmark = pytest.mark.interop

SCRIPTS = {
    "features_queue_ttl": ["queue-ttl-dead-letters", "per-message-expiration",
                           "invalid-expiration-406", "x-expires"],
    "features_queue_dlx": ["reject-dead-letters", "retry-loop", "dead-letter-cycle-dropped"],
    "features_queue_maxlen": ["max-length-drop-head", "max-length-bytes",
                              "reject-publish-nack", "reject-publish-dlx"],
    "features_queue_priority": ["priority-order"],
    "features_queue_sac": ["single-active-consumer"],
    "features_queue_delivery_limit": ["delivery-limit"],
    "features_queue_consumer_timeout": ["consumer-timeout-406"],
    "features_queue_args": ["invalid-argument-406", "queue-types"],
}
CASES = [(script, check) for script, checks in SCRIPTS.items() for check in checks]


@pytest.fixture(autouse=True)
def _node_is_required():
    require_node()


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scripts_list_the_expected_checks(runner, script):
    listed = runner.run(AMQPLIB, script).stdout
    assert listed == SCRIPTS[script]


@pytest.mark.parametrize("script, check", CASES, ids=[f"{s[15:]}:{c}" for s, c in CASES])
def test_amqplib_queue_feature(runner, script, check):
    proc = runner.spawn(AMQPLIB, script, check)
    status = proc.finish(WAIT)
    assert proc.matches(rf"^PASS {check}$") and status == 0, runner.dump()
