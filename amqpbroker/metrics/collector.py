"""A prometheus_client collector over one scrape's `Snapshot`, and the text it renders.

The exposition format is the official client library's (`generate_latest`); this module
only says which families a snapshot makes, in RabbitMQ's names, types and labels
(families.py). It reads nothing but the snapshot, so `render` can run in a worker
thread while the event loop serves clients.
"""

from __future__ import annotations

import gzip
from typing import Any, Iterator

import prometheus_client
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from amqpbroker.metrics.families import (
    GLOBAL_METRICS,
    NODE_GROUPS,
    OBJECT_GROUPS,
    OBJECT_LABELS,
    SIZE_LABELS,
)
from amqpbroker.metrics.snapshot import Snapshot

_FAMILIES = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily}


def _family(kind: str, name: str, doc: str, labels: list[str] | None = None) -> Metric:
    return _FAMILIES[kind](name, doc, labels=labels)


class SnapshotCollector:
    """Yields the metric families of one snapshot (prometheus_client's Collector)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: names come from families.py

    def collect(self) -> Iterator[Metric]:
        yield from self._node()
        yield from self._objects()
        if self.snap.totals is not None:
            yield from self._totals()
            yield from self._global()
            yield from self._sizes()
            yield from self._alarms()
        yield from self._identity()

    def _node(self) -> Iterator[Metric]:
        snap = self.snap
        for group, metrics in NODE_GROUPS.items():
            if group not in snap.groups:
                continue
            for name, kind, doc, key in metrics:
                if key in snap.node:  # churn needs the core's churn counters
                    family = _family(kind, snap.prefix + name, doc)
                    family.add_metric([], snap.node[key])
                    yield family

    def _objects(self) -> Iterator[Metric]:
        snap = self.snap
        for kind, groups in OBJECT_GROUPS.items():
            labels = list(OBJECT_LABELS[kind])
            rows = snap.rows.get(kind, [])
            sums = snap.sums.get(kind, {})
            for group, metrics in groups.items():
                if group not in snap.groups:
                    continue
                for name, mtype, doc, key in metrics:
                    if snap.per_object:
                        family = _family(mtype, snap.prefix + name, doc, labels)
                        for row in rows:
                            family.add_metric([str(row[label]) for label in labels],
                                              row.get(key, 0))
                    else:
                        family = _family(mtype, snap.prefix + name, doc)
                        family.add_metric([], sums.get(key, 0))
                    yield family
        if snap.per_object and "queue_coarse_metrics" in snap.groups:
            info = GaugeMetricFamily(
                snap.prefix + "queue_info", "A metric with a constant '1' value and labels "
                "that provide some queue details",
                labels=["vhost", "queue", "queue_type", "membership"])
            for row in rows_of(snap, "queue"):
                info.add_metric([row["vhost"], row["queue"], row["queue_type"], "leader"], 1)
            yield info

    def _totals(self) -> Iterator[Metric]:
        totals = self.snap.totals or {}
        for name, doc in (("connections", "Connections currently open"),
                          ("channels", "Channels currently open"),
                          ("consumers", "Consumers currently connected"),
                          ("queues", "Queues available")):
            yield GaugeMetricFamily("rabbitmq_" + name, doc, value=totals.get(name, 0))

    def _global(self) -> Iterator[Metric]:
        counters = self.snap.global_counters or {}
        for name, kind, doc in GLOBAL_METRICS:
            family = _family(kind, "rabbitmq_global_" + name, doc, ["protocol"])
            for protocol, values in sorted(counters.items()):
                family.add_metric([protocol], values.get(name, 0))
            yield family

    def _sizes(self) -> Iterator[Metric]:
        family = HistogramMetricFamily("rabbitmq_message_size_bytes",
                                       "Size of messages received from publishers",
                                       labels=["protocol"])
        for protocol, (counts, total) in sorted((self.snap.sizes or {}).items()):
            cumulative, buckets = 0, []
            for label, count in zip(SIZE_LABELS, counts):
                cumulative += count
                buckets.append((label, cumulative))
            family.add_metric([protocol], buckets, total)
        yield family

    def _alarms(self) -> Iterator[Metric]:
        alarms = self.snap.alarms or {}
        for name, doc, key in (
                ("free_disk_space_watermark",
                 "is 1 if free disk space watermark alarm is in effect", "disk"),
                ("memory_used_watermark", "is 1 if VM memory watermark alarm is in effect",
                 "memory")):
            yield UnknownMetricFamily("rabbitmq_alarms_" + name, doc, value=alarms.get(key, 0))

    def _identity(self) -> Iterator[Metric]:
        snap = self.snap
        build = UnknownMetricFamily(
            "rabbitmq_build_info", "RabbitMQ & Erlang/OTP version info",
            labels=["rabbitmq_version", "product_name", "product_version",
                    "prometheus_client_version", "python_version"])
        build.add_metric([snap.version, "amqpbroker", snap.version, _client_version(),
                          _python_version()], 1)
        yield build
        identity = UnknownMetricFamily(
            "rabbitmq_identity_info", "RabbitMQ node & cluster identity info",
            labels=["rabbitmq_node", "rabbitmq_cluster", "rabbitmq_endpoint"])
        identity.add_metric([snap.identity["rabbitmq_node"], snap.identity["rabbitmq_cluster"],
                             snap.endpoint], 1)
        yield identity


def rows_of(snap: Snapshot, kind: str) -> list[dict[str, Any]]:
    return snap.rows.get(kind, [])


def render(snap: Snapshot, gzipped: bool = False) -> bytes:
    """The text exposition of a snapshot (gzip-compressed if asked)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    body = generate_latest(registry)
    return gzip.compress(body, compresslevel=5) if gzipped else body


def _client_version() -> str:
    return getattr(prometheus_client, "__version__", "") or _dist_version()


def _dist_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prometheus-client")
    except PackageNotFoundError:
        return ""


def _python_version() -> str:
    import platform

    return platform.python_version()
