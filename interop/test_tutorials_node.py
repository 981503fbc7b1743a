"""RabbitMQ tutorials 1-7 written with amqplib (Node), run against the broker
under test, plus direct amqplib feature checks (interop/node/features.js).

These tests FAIL, never skip, when `node` or interop/node/node_modules/amqplib
is missing: a CI run that silently skipped interop is a failed run.
"""
import pytest

from . import scenarios
from .harness import AMQPLIB, WAIT, queue_type, require_node

pytestmark = pytest.mark.interop

FEATURE_CHECKS = [
    "check-queue-404",
    "confirm-channel",
    "alternate-exchange",
    "prefetch",
    "mandatory-return",
    "nack-requeue",
    "precondition-failed-406",
    "exclusive-locked-405",
    "get-purge-delete-counts",
    "properties-roundtrip",
]


@pytest.fixture(autouse=True)
def _node_is_required():
    require_node()


def test_1_hello_world(runner):
    scenarios.hello_world(runner, AMQPLIB, AMQPLIB)


def test_2_work_queues_round_robin(runner):
    scenarios.work_queues_round_robin(runner, AMQPLIB, AMQPLIB)


def test_2_work_queues_fair_dispatch(runner):
    scenarios.work_queues_fair_dispatch(runner, AMQPLIB, AMQPLIB)


def test_2_work_queues_durable_backlog(runner):
    scenarios.work_queues_durable_backlog(runner, AMQPLIB, AMQPLIB)


def test_3_publish_subscribe(runner):
    scenarios.publish_subscribe(runner, AMQPLIB, AMQPLIB)


def test_4_routing(runner):
    scenarios.routing(runner, AMQPLIB, AMQPLIB)


def test_5_topics(runner):
    scenarios.topics(runner, AMQPLIB, AMQPLIB)


def test_6_rpc(runner):
    scenarios.rpc(runner, AMQPLIB, AMQPLIB)


def test_6_rpc_direct_reply_to(runner):
    """RabbitMQ's current JavaScript RPC tutorial: replies via amq.rabbitmq.reply-to."""
    scenarios.rpc(runner, AMQPLIB, AMQPLIB, program="rpc_client_direct")



# Tutorials 1, 2 and 6 as RabbitMQ publishes them today: durable quorum queues.

def test_1_hello_world_quorum(quorum_runner):
    scenarios.hello_world(quorum_runner, AMQPLIB, AMQPLIB)
    assert queue_type(quorum_runner.url, "hello") == "quorum"


def test_2_work_queues_round_robin_quorum(quorum_runner):
    scenarios.work_queues_round_robin(quorum_runner, AMQPLIB, AMQPLIB)
    assert queue_type(quorum_runner.url, "task_queue") == "quorum"


def test_2_work_queues_fair_dispatch_quorum(quorum_runner):
    scenarios.work_queues_fair_dispatch(quorum_runner, AMQPLIB, AMQPLIB)


def test_2_work_queues_durable_backlog_quorum(quorum_runner):
    scenarios.work_queues_durable_backlog(quorum_runner, AMQPLIB, AMQPLIB)


def test_6_rpc_quorum(quorum_runner):
    scenarios.rpc(quorum_runner, AMQPLIB, AMQPLIB)
    assert queue_type(quorum_runner.url, "rpc_queue") == "quorum"


def test_7_publisher_confirms(runner):
    scenarios.publisher_confirms(runner, AMQPLIB)


def test_feature_checks_are_all_listed(runner):
    """features.js and FEATURE_CHECKS name the same checks."""
    listed = runner.run(AMQPLIB, "features").stdout
    assert sorted(listed) == sorted(FEATURE_CHECKS)


@pytest.mark.parametrize("check", FEATURE_CHECKS)
def test_amqplib_feature(runner, check):
    proc = runner.spawn(AMQPLIB, "features", check)
    status = proc.finish(WAIT)
    assert proc.matches(rf"^PASS {check}$") and status == 0, runner.dump()
