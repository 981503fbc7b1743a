"""An embedded broker with the management API on a free port, and an HTTP client for it
(mgmt_http.Api)."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import pytest
from mgmt_http import Api, basic  # noqa: F401  (re-exported)

from amqpbroker.embed import Broker


@pytest.fixture
async def mgmt() -> AsyncIterator[Broker]:
    async with Broker(management=True, loopback_users=()) as b:
        yield b


@pytest.fixture
async def api(mgmt: Broker) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, mgmt.management_url)
