"""RabbitMQ tutorials 1-7 written with pika (BlockingConnection), run against
the broker under test. Programs: interop/python_pika/."""
import pytest

from . import scenarios
from .harness import PIKA, queue_type

pytestmark = pytest.mark.interop


def test_1_hello_world(runner):
    scenarios.hello_world(runner, PIKA, PIKA)


def test_2_work_queues_round_robin(runner):
    scenarios.work_queues_round_robin(runner, PIKA, PIKA)


def test_2_work_queues_fair_dispatch(runner):
    scenarios.work_queues_fair_dispatch(runner, PIKA, PIKA)


def test_2_work_queues_durable_backlog(runner):
    scenarios.work_queues_durable_backlog(runner, PIKA, PIKA)


def test_3_publish_subscribe(runner):
    scenarios.publish_subscribe(runner, PIKA, PIKA)


def test_4_routing(runner):
    scenarios.routing(runner, PIKA, PIKA)


def test_5_topics(runner):
    scenarios.topics(runner, PIKA, PIKA)


def test_6_rpc(runner):
    scenarios.rpc(runner, PIKA, PIKA)



# Tutorials 1, 2 and 6 as RabbitMQ publishes them today: durable quorum queues.

def test_1_hello_world_quorum(quorum_runner):
    scenarios.hello_world(quorum_runner, PIKA, PIKA)
    assert queue_type(quorum_runner.url, "hello") == "quorum"


def test_2_work_queues_round_robin_quorum(quorum_runner):
    scenarios.work_queues_round_robin(quorum_runner, PIKA, PIKA)
    assert queue_type(quorum_runner.url, "task_queue") == "quorum"


def test_2_work_queues_fair_dispatch_quorum(quorum_runner):
    scenarios.work_queues_fair_dispatch(quorum_runner, PIKA, PIKA)


def test_2_work_queues_durable_backlog_quorum(quorum_runner):
    scenarios.work_queues_durable_backlog(quorum_runner, PIKA, PIKA)


def test_6_rpc_quorum(quorum_runner):
    scenarios.rpc(quorum_runner, PIKA, PIKA)
    assert queue_type(quorum_runner.url, "rpc_queue") == "quorum"


def test_7_publisher_confirms(runner):
    scenarios.publisher_confirms(runner, PIKA)
