"""The management API answers the calls of scenario.py as RabbitMQ does: the same status
codes and the same JSON key sets at every level as the fixtures recorded from Debian's
RabbitMQ (record_rabbitmq.py), except for the differences listed in differences.py, each
of which docs/management.md explains."""

from __future__ import annotations

from pathlib import Path

import pytest

from amqpbroker.embed import run_in_thread
from interop.management import compare, scenario

pytestmark = pytest.mark.interop
DOCS = Path(__file__).resolve().parents[2] / "docs" / "management.md"


def test_same_statuses_and_keys_as_rabbitmq() -> None:
    fixtures = compare.load_fixtures()
    with run_in_thread(management=True, loopback_users=()) as broker:
        ours = scenario.run(broker.management_url, broker.url, broker.port)
    assert len(fixtures["calls"]) == len(ours) > 100
    assert compare.differences(ours, fixtures["calls"]) == []


def test_every_allowed_difference_is_documented() -> None:
    text = DOCS.read_text()
    undocumented = [p for p in compare.allowed_patterns() if f"`{p}`" not in text]
    assert undocumented == []
