"""The same tutorials with a different client on each side: what one client
library publishes, another must receive unchanged (bodies, routing keys,
correlation ids, reply-to). Needs node: FAILS (never skips) without it."""
import itertools

import pytest

from . import scenarios
from .harness import CLIENTS, require_node

pytestmark = pytest.mark.interop

PAIRS = [(a, b) for a, b in itertools.permutations(CLIENTS, 2)]
IDS = [f"{a.name}-to-{b.name}" for a, b in PAIRS]


@pytest.fixture(autouse=True)
def _node_is_required():
    require_node()


@pytest.mark.parametrize(("sender", "receiver"), PAIRS, ids=IDS)
def test_hello_world(runner, sender, receiver):
    scenarios.hello_world(runner, sender, receiver)


@pytest.mark.parametrize(("emitter", "receiver"), PAIRS, ids=IDS)
def test_routing(runner, emitter, receiver):
    scenarios.routing(runner, emitter, receiver)


@pytest.mark.parametrize(("client", "server"), PAIRS, ids=IDS)
def test_rpc(runner, client, server):
    scenarios.rpc(runner, client, server)
