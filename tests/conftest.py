"""Shared fixtures: a core for byte-level tests, and embedded brokers for end-to-end ones."""

from __future__ import annotations

from typing import Any, AsyncIterator

import pytest

from amqpbroker.core import BrokerCore
from amqpbroker.embed import Broker
from amqpbroker.settings import Settings
from wire import WireClient


@pytest.fixture
def core() -> BrokerCore:
    from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore

    return BrokerCore(Settings(data_dir=None), MemoryMessageStore(), MemoryDefinitionStore())


@pytest.fixture
def client(core: BrokerCore) -> WireClient:
    c = WireClient(core)
    c.handshake()
    return c


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with Broker() as b:
        yield b


@pytest.fixture
def methods_of():
    def pick(frames: list[tuple[int, Any]], cls: type | None = None) -> list[Any]:
        items = [f for _, f in frames]
        return [f for f in items if cls is None or isinstance(f, cls)]

    return pick
