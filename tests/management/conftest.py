"""An embedded broker with the management API on a free port, and a small HTTP client."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import pytest

from amqpbroker.embed import Broker
from management_http import Api


@pytest.fixture
async def mgmt() -> AsyncIterator[Broker]:
    async with Broker(management=True, loopback_users=()) as b:
        yield b


@pytest.fixture
async def api(mgmt: Broker) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, mgmt.management_url)
