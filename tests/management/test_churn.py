"""Churn counters (RabbitMQ's overview `churn_rates` and node keys) driven by a real client
(aio-pika): connections, channels and queues opened and closed, for every reason."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import aiormq
import pytest

CHURN = ("connection_created", "connection_closed", "channel_created", "channel_closed",
         "queue_declared", "queue_created", "queue_deleted")


async def churn(api) -> dict[str, Any]:
    status, overview = await api.get("/api/overview")
    assert status == 200
    return overview["churn_rates"]


async def settled(api, before: dict[str, int], expected: dict[str, int]) -> dict[str, Any]:
    """The counters once the broker has handled the closes (bounded wait)."""
    for _ in range(100):
        now = await churn(api)
        if all(now[k] - before[k] == expected.get(k, 0) for k in CHURN):
            return now
        await asyncio.sleep(0.05)
    return await churn(api)


async def test_churn_totals_and_rates(mgmt, api) -> None:
    stats = mgmt.management.stats
    before = await churn(api)
    assert set(CHURN) <= set(before)
    assert all(before[k + "_details"] == {"rate": 0.0} or "rate" in before[k + "_details"]
               for k in CHURN)
    stats.sample()

    conn = await aio_pika.connect(mgmt.url)
    ch1 = await conn.channel()
    ch2 = await conn.channel()
    await ch1.declare_queue("churn-a")                      # declared, created
    await ch1.declare_queue("churn-a")                      # declared again
    await ch1.declare_queue("churn-a", passive=True)        # passive: not counted
    await ch1.declare_queue("", exclusive=True)             # declared, created
    await ch2.close()                                       # a channel closed by the client
    await ch1.queue_delete("churn-a")                       # deleted
    ch3 = await conn.channel()
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await ch3.declare_queue("churn-missing", passive=True)  # closed by the broker (404)
    await conn.close()  # ch1 closed with it, and its exclusive queue deleted

    expected = {"connection_created": 1, "connection_closed": 1, "channel_created": 3,
                "channel_closed": 3, "queue_declared": 3, "queue_created": 2,
                "queue_deleted": 2}
    after = await settled(api, before, expected)
    assert {k: after[k] - before[k] for k in CHURN} == expected

    stats.sample()
    rates = await churn(api)
    assert rates["connection_created_details"]["rate"] > 0
    assert rates["queue_created_details"]["rate"] > 0

    # the facade the metrics endpoint reads, and the node object, say the same
    assert mgmt.admin.churn() == {k: rates[k] for k in CHURN}
    status, nodes = await api.get("/api/nodes")
    assert status == 200
    assert {k: nodes[0][k] for k in CHURN} == {k: rates[k] for k in CHURN}
    assert "channel_closed_details" in nodes[0]


async def test_api_declared_queues_count_as_churn(mgmt, api) -> None:
    """Declares and deletes through the HTTP API go through the same core paths."""
    before = await churn(api)
    assert (await api.put("/api/queues/%2F/churn-http", {}))[0] == 201
    assert (await api.call("DELETE", "/api/queues/%2F/churn-http"))[0] == 204
    after = await churn(api)
    assert after["queue_created"] - before["queue_created"] == 1
    assert after["queue_deleted"] - before["queue_deleted"] == 1
    assert after["connection_created"] == before["connection_created"]  # no client session
