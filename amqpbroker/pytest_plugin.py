"""pytest plugin: a real AMQP 0-9-1 broker for your tests, instead of RabbitMQ in docker.

Installed with the package (entry point `pytest11`), so these fixtures are simply there:

- `amqp_broker`: a fresh in-memory broker for one test, on a free port, running in a
  background thread (so it serves async clients like aio-pika and blocking ones like pika
  or Celery alike); `amqp_broker.url` is its `amqp://` URL.
- `amqp_broker_session`: one broker for the whole test session.
- `amqp_url`: the URL of a vhost of its own on the session broker, created for this test
  and deleted after it, so tests sharing the broker do not see each other's queues.

Options: `--amqpbroker-config FILE` (topology and settings in the YAML format of
docs/configuration.md) and `--amqpbroker-log-level LEVEL` (default: warning).
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

import pytest

from amqpbroker.embed import Broker, run_in_thread

_vhost_ids = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("amqpbroker")
    group.addoption("--amqpbroker-config", default=None,
                    help="YAML config (topology, users) for the amqpbroker fixtures")
    group.addoption("--amqpbroker-log-level", default="warning",
                    help="log level of the embedded broker (default: warning)")


def _start(config: pytest.Config) -> Any:
    from amqpbroker import logs

    logs.configure(config.getoption("--amqpbroker-log-level"))
    overrides: dict[str, Any] = {}
    path = config.getoption("--amqpbroker-config")
    if path:
        overrides["config"] = path
    return run_in_thread(**overrides)


@pytest.fixture
def amqp_broker(pytestconfig: pytest.Config) -> Iterator[Broker]:
    with _start(pytestconfig) as broker:
        yield broker


@pytest.fixture(scope="session")
def amqp_broker_session(pytestconfig: pytest.Config) -> Iterator[Broker]:
    with _start(pytestconfig) as broker:
        yield broker


@pytest.fixture
def amqp_url(amqp_broker_session: Broker, request: pytest.FixtureRequest) -> Iterator[str]:
    broker = amqp_broker_session
    name = f"test-{next(_vhost_ids)}-{request.node.name}"[:200]
    url = broker.call_soon(broker.add_vhost, name)  # type: ignore[attr-defined]
    yield url
    broker.call_soon(broker.delete_vhost, name)  # type: ignore[attr-defined]
