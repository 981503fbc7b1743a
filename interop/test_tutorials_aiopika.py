"""RabbitMQ tutorials 1-7 written with aio-pika, run against
the broker under test. Programs: interop/python_aiopika/."""
import pytest

from . import scenarios
from .harness import AIOPIKA

pytestmark = pytest.mark.interop


def test_1_hello_world(runner):
    scenarios.hello_world(runner, AIOPIKA, AIOPIKA)


def test_2_work_queues_round_robin(runner):
    scenarios.work_queues_round_robin(runner, AIOPIKA, AIOPIKA)


def test_2_work_queues_fair_dispatch(runner):
    scenarios.work_queues_fair_dispatch(runner, AIOPIKA, AIOPIKA)


def test_2_work_queues_durable_backlog(runner):
    scenarios.work_queues_durable_backlog(runner, AIOPIKA, AIOPIKA)


def test_3_publish_subscribe(runner):
    scenarios.publish_subscribe(runner, AIOPIKA, AIOPIKA)


def test_4_routing(runner):
    scenarios.routing(runner, AIOPIKA, AIOPIKA)


def test_5_topics(runner):
    scenarios.topics(runner, AIOPIKA, AIOPIKA)


def test_6_rpc(runner):
    scenarios.rpc(runner, AIOPIKA, AIOPIKA)


def test_7_publisher_confirms(runner):
    scenarios.publisher_confirms(runner, AIOPIKA)
