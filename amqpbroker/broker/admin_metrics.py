"""The admin facade's reads for the Prometheus endpoint (a part of `broker.admin.Admin`).

Plain numbers and rows, read from figures the broker already keeps (queue depths and
counters, channel and publisher counters, connection octets, the global counters of
`broker/global_counters.py`); nothing here changes the broker, and nothing scans
messages. `queue_rows` is a generator over a snapshot of the queue list, so the metrics
endpoint can read 100,000 queues a slice at a time between other work.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Iterator

from amqpbroker.broker.admin_shapes import (
    NODE,
    _persistent,
    _ready_bytes,
    channel_counters,
    connection_name,
    queue_counters,
)
from amqpbroker.broker.global_counters import (
    DELIVERY_COUNTERS,
    channel_figures,
)

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore

# RabbitMQ's queue_type label values (rabbit_queue_type modules)
QUEUE_TYPES = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue",
               "stream": "rabbit_stream_queue"}


class MetricsAdmin:
    core: "BrokerCore"

    # -- the node ---------------------------------------------------------------------------
    def node_resources(self) -> dict[str, float]:
        """RSS and its limit (the memory alarm's watermark), free disk space of the data
        directory and its limit, file descriptors open and allowed, uptime, alarms."""
        core = self.core
        used, limit = _fds()
        return {"rss": _rss(), "memory_limit": core.memory_limit(),
                "disk_free": _disk(core.settings.data_dir),
                "disk_free_limit": core.settings.disk_free_limit,
                "fd_used": used, "fd_total": limit,
                "uptime": time.time() - core.started_at,
                "memory_alarm": int("memory" in core.alarms),
                "disk_alarm": int("disk" in core.alarms)}

    def identity(self) -> dict[str, str]:
        """The labels dashboards join on (rabbitmq_identity_info)."""
        return {"rabbitmq_node": NODE, "rabbitmq_cluster": NODE}

    def client_counts(self) -> dict[str, int]:
        """Open client connections (every protocol) and AMQP channels."""
        core = self.core
        return {"connections": len(core.sessions),
                "channels": sum(1 for conn in list(core.connections)
                                for ch in list(conn.channels.values()) if not ch.closed)}

    def auth_attempts(self) -> dict[str, int]:
        s = self.core.security
        return {"attempts": s.auth_attempts_succeeded + s.auth_attempts_failed,
                "succeeded": s.auth_attempts_succeeded, "failed": s.auth_attempts_failed}

    # -- global counters ---------------------------------------------------------------------
    def global_counters(self) -> dict[str, dict[str, int]]:
        """Per protocol label: RabbitMQ's global counters (names without the
        `rabbitmq_global_` prefix), monotonic, and the publishers and consumers gauges."""
        out: dict[str, dict[str, int]] = {}
        for protocol, counters in list(self.core.global_counters.by_protocol.items()):
            item = counters.publish_totals()
            item.update(zip(DELIVERY_COUNTERS, counters.retired_delivery))
            item["publishers"] = counters.publishing()
            item["consumers"] = 0
            out[protocol] = item
        for session in list(self.core.sessions):
            item = out.get(session.counters.protocol)
            if item is not None:
                item["consumers"] += session.consumer_count
        for conn in list(self.core.connections):  # open channels' deliveries
            for ch in list(conn.channels.values()):
                item = out.get(ch.session.counters.protocol)
                if item is None or ch.closed:  # a released channel is retired already
                    continue
                for key, value in zip(DELIVERY_COUNTERS, channel_figures(ch)):
                    item[key] += value
        for item in out.values():
            item["messages_delivered_total"] = sum(item[k] for k in DELIVERY_COUNTERS[:4])
        return out

    def message_sizes(self) -> dict[str, tuple[list[int], int]]:
        """Per protocol label: received messages per size bucket (global_counters.SIZE_BOUNDS,
        then +Inf; not cumulative) and the sum of their sizes."""
        return {protocol: (list(c.sizes.counts), c.sizes.total)
                for protocol, c in list(self.core.global_counters.by_protocol.items())}

    # -- objects -----------------------------------------------------------------------------
    def queue_rows(self, vhost: str | None = None) -> Iterator[dict[str, Any]]:
        """One row per queue (of `vhost`, or all), in RabbitMQ's info item names."""
        core = self.core
        names = [vhost] if vhost is not None else sorted(core.vhosts)
        queues = [(v, q) for v in names if v in core.vhosts
                  for q in list(core.vhosts[v].queues.values())]
        for vname, q in queues:
            if q.deleted:
                continue
            ready, unacked = q.message_count, q.unacked
            ready_bytes = _ready_bytes(q)
            unacked_bytes = getattr(q, "unacked_bytes", 0)
            persistent = _persistent(q)
            counters = queue_counters(q)
            yield {"vhost": vname, "queue": q.name,
                   "queue_type": QUEUE_TYPES.get(q.arguments.get("x-queue-type") or "classic",
                                                 "rabbit_classic_queue"),
                   "messages_ready": ready, "messages_unacknowledged": unacked,
                   "messages": ready + unacked, "consumers": len(q.consumers),
                   "message_bytes_ready": ready_bytes,
                   "message_bytes_unacknowledged": unacked_bytes,
                   "message_bytes": ready_bytes + unacked_bytes,
                   "messages_persistent": persistent[0],
                   "message_bytes_persistent": persistent[1],
                   **counters}

    def channel_rows(self) -> list[dict[str, Any]]:
        return [{"channel": f"{connection_name(conn)} ({ch.id})",
                 "consumer_count": len(ch.consumers),
                 "messages_unacknowledged": ch.unacked_count,
                 "messages_unconfirmed": len(ch.publisher.pending),
                 "messages_uncommitted": len(ch.tx or ()), "acks_uncommitted": 0,
                 "prefetch_count": ch.prefetch, "global_prefetch_count": ch.global_prefetch,
                 **channel_counters(ch)}
                for conn in list(self.core.connections)
                for ch in list(conn.channels.values()) if not ch.closed]

    def connection_rows(self) -> list[dict[str, Any]]:
        return [{"connection": connection_name(conn), "recv_oct": conn.recv_oct,
                 "send_oct": conn.send_oct, "recv_cnt": conn.recv_cnt,
                 "send_cnt": conn.send_cnt, "send_pend": conn.out_bytes,
                 "channels": len(conn.channels)}
                for conn in list(self.core.connections)]

    def exchange_rows(self) -> list[dict[str, Any]]:
        return [{"vhost": vname, "exchange": ex.name, "publish_in": ex.published_in,
                 "publish_out": ex.published_out}
                for vname, v in sorted(self.core.vhosts.items())
                for ex in list(v.exchanges.values())]


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _disk(path: str | None) -> int:
    try:
        st = os.statvfs(path or ".")
        return st.f_bavail * st.f_frsize
    except OSError:
        return 0


def _fds() -> tuple[int, int]:
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = 0
    try:
        import resource

        total = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError):
        total = 0
    return used, total
