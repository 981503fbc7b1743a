"""The `cluster` fixture: etcd and three broker processes on loopback (tests/cluster/harness.py),
stopped after the test whatever happened."""

from __future__ import annotations

import pytest

from .harness import Cluster


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(str(tmp_path))
    c.start()
    try:
        yield c
    finally:
        c.stop()
