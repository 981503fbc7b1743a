"""RabbitMQ tutorials 1-7 written with pika (BlockingConnection), run against
the broker under test. Programs: interop/python_pika/."""
import pytest

from . import scenarios
from .harness import PIKA

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


def test_7_publisher_confirms(runner):
    scenarios.publisher_confirms(runner, PIKA)
