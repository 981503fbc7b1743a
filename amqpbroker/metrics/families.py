"""What the endpoint exports: rabbitmq_prometheus's metric groups, as data.

Names, types and help texts are RabbitMQ's (deps/rabbitmq_prometheus: the core metrics
collector's METRICS_RAW, metrics.md); each metric names the key of the facade's row it
is read from (`broker/admin_metrics.py`). The group names are RabbitMQ's too: they are
what `/metrics/detailed?family=...` selects. docs/metrics.md lists every metric.

    (metric name without the rabbitmq_ prefix, type, help, row key)
"""

from __future__ import annotations

Metric = tuple[str, str, str, str]

# Rows with `vhost` and `queue` labels (admin.queue_rows)
QUEUE_GROUPS: dict[str, list[Metric]] = {
    "queue_coarse_metrics": [
        ("queue_messages_ready", "gauge", "Messages ready to be delivered to consumers",
         "messages_ready"),
        ("queue_messages_unacked", "gauge",
         "Messages delivered to consumers but not yet acknowledged", "messages_unacknowledged"),
        ("queue_messages", "gauge", "Sum of ready and unacknowledged messages - total queue "
         "depth", "messages"),
    ],
    "queue_metrics": [
        ("queue_consumers", "gauge", "Consumers on a queue", "consumers"),
        ("queue_messages_ram", "gauge", "Ready and unacknowledged messages stored in memory",
         "messages"),
        ("queue_messages_ram_bytes", "gauge",
         "Size of ready and unacknowledged messages stored in memory", "message_bytes"),
        ("queue_messages_ready_ram", "gauge", "Ready messages stored in memory",
         "messages_ready"),
        ("queue_messages_unacked_ram", "gauge", "Unacknowledged messages stored in memory",
         "messages_unacknowledged"),
        ("queue_messages_persistent", "gauge", "Persistent messages", "messages_persistent"),
        ("queue_messages_persistent_bytes", "gauge", "Size in bytes of persistent messages",
         "message_bytes_persistent"),
        ("queue_messages_bytes", "gauge", "Size in bytes of ready and unacknowledged messages",
         "message_bytes"),
        ("queue_messages_ready_bytes", "gauge", "Size in bytes of ready messages",
         "message_bytes_ready"),
        ("queue_messages_unacked_bytes", "gauge", "Size in bytes of all unacknowledged messages",
         "message_bytes_unacknowledged"),
    ],
    "queue_delivery_metrics": [
        ("queue_get_ack_total", "counter", "Total number of messages fetched from a queue with "
         "basic.get in manual acknowledgement mode", "get"),
        ("queue_get_total", "counter", "Total number of messages fetched from a queue with "
         "basic.get in automatic acknowledgement mode", "get_no_ack"),
        ("queue_messages_delivered_ack_total", "counter", "Total number of messages delivered "
         "from a queue to consumers in manual acknowledgement mode", "deliver"),
        ("queue_messages_delivered_total", "counter", "Total number of messages delivered from "
         "a queue to consumers in automatic acknowledgement mode", "deliver_no_ack"),
        ("queue_messages_redelivered_total", "counter",
         "Total number of messages redelivered from a queue to consumers", "redeliver"),
        ("queue_messages_acked_total", "counter",
         "Total number of messages acknowledged by consumers on a queue", "ack"),
        ("queue_get_empty_total", "counter", "Total number of times basic.get operations "
         "fetched no message on a queue", "get_empty"),
    ],
    # RabbitMQ labels this one by channel, queue and exchange; here by queue (docs/metrics.md)
    "channel_queue_exchange_metrics": [
        ("queue_messages_published_total", "counter",
         "Total number of messages published into a queue through an exchange on a channel",
         "publish"),
    ],
}

# Rows with a `channel` label (admin.channel_rows)
CHANNEL_GROUPS: dict[str, list[Metric]] = {
    "channel_metrics": [
        ("channel_consumers", "gauge", "Consumers on a channel", "consumer_count"),
        ("channel_messages_unacked", "gauge", "Delivered but not yet acknowledged messages",
         "messages_unacknowledged"),
        ("channel_messages_unconfirmed", "gauge", "Published but not yet confirmed messages",
         "messages_unconfirmed"),
        ("channel_messages_uncommitted", "gauge",
         "Messages received in a transaction but not yet committed", "messages_uncommitted"),
        ("channel_acks_uncommitted", "gauge",
         "Message acknowledgements in a transaction not yet committed", "acks_uncommitted"),
        ("consumer_prefetch", "gauge", "Limit of unacknowledged messages for each consumer",
         "prefetch_count"),
        ("channel_prefetch", "gauge", "Deprecated and will be removed in a future version",
         "global_prefetch_count"),
    ],
    "channel_exchange_metrics": [
        ("channel_messages_published_total", "counter",
         "Total number of messages published into an exchange on a channel", "publish"),
        ("channel_messages_confirmed_total", "counter", "Total number of messages published "
         "into an exchange and confirmed on the channel", "confirm"),
        ("channel_messages_unroutable_returned_total", "counter", "Total number of messages "
         "published as mandatory into an exchange and returned to the publisher as "
         "unroutable", "return_unroutable"),
        ("channel_messages_unroutable_dropped_total", "counter", "Total number of messages "
         "published as non-mandatory into an exchange and dropped as unroutable",
         "drop_unroutable"),
    ],
    "channel_queue_metrics": [
        ("channel_get_ack_total", "counter", "Total number of messages fetched with basic.get "
         "in manual acknowledgement mode", "get"),
        ("channel_get_total", "counter", "Total number of messages fetched with basic.get in "
         "automatic acknowledgement mode", "get_no_ack"),
        ("channel_messages_delivered_ack_total", "counter", "Total number of messages "
         "delivered to consumers in manual acknowledgement mode", "deliver"),
        ("channel_messages_delivered_total", "counter", "Total number of messages delivered "
         "to consumers in automatic acknowledgement mode", "deliver_no_ack"),
        ("channel_messages_redelivered_total", "counter",
         "Total number of messages redelivered to consumers", "redeliver"),
        ("channel_messages_acked_total", "counter",
         "Total number of messages acknowledged by consumers", "ack"),
        ("channel_get_empty_total", "counter",
         "Total number of times basic.get operations fetched no message", "get_empty"),
    ],
}

# Rows with a `connection` label (admin.connection_rows)
CONNECTION_GROUPS: dict[str, list[Metric]] = {
    "connection_coarse_metrics": [
        ("connection_incoming_bytes_total", "counter",
         "Total number of bytes received on a connection", "recv_oct"),
        ("connection_outgoing_bytes_total", "counter",
         "Total number of bytes sent on a connection", "send_oct"),
    ],
    "connection_metrics": [
        ("connection_incoming_packets_total", "counter",
         "Total number of packets received on a connection", "recv_cnt"),
        ("connection_outgoing_packets_total", "counter",
         "Total number of packets sent on a connection", "send_cnt"),
        ("connection_pending_packets", "gauge",
         "Number of packets waiting to be sent on a connection", "send_pend"),
        ("connection_channels", "gauge", "Channels on a connection", "channels"),
    ],
}

# Rows with `vhost` and `exchange` labels (admin.exchange_rows)
EXCHANGE_GROUPS: dict[str, list[Metric]] = {
    "exchange_metrics": [
        ("exchange_messages_published_total", "counter",
         "Total number of messages published into an exchange", "publish_in"),
    ],
}

# The node, one sample each (admin.node_resources, auth_attempts, churn)
NODE_GROUPS: dict[str, list[Metric]] = {
    "connection_churn_metrics": [
        ("connections_opened_total", "counter", "Total number of connections opened",
         "connection_created"),
        ("connections_closed_total", "counter",
         "Total number of connections closed or terminated", "connection_closed"),
        ("channels_opened_total", "counter", "Total number of channels opened",
         "channel_created"),
        ("channels_closed_total", "counter", "Total number of channels closed",
         "channel_closed"),
        ("queues_declared_total", "counter", "Total number of queues declared",
         "queue_declared"),
        ("queues_created_total", "counter", "Total number of queues created", "queue_created"),
        ("queues_deleted_total", "counter", "Total number of queues deleted", "queue_deleted"),
    ],
    "node_coarse_metrics": [
        ("process_open_fds", "gauge", "Open file descriptors", "fd_used"),
        ("process_resident_memory_bytes", "gauge", "Memory used in bytes", "rss"),
        ("disk_space_available_bytes", "gauge", "Disk space available in bytes", "disk_free"),
    ],
    "node_metrics": [
        ("process_max_fds", "gauge", "Open file descriptors limit", "fd_total"),
        ("resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes",
         "memory_limit"),
        ("disk_space_available_limit_bytes", "gauge", "Free disk space low watermark in bytes",
         "disk_free_limit"),
        ("erlang_uptime_seconds", "gauge", "Node uptime", "uptime"),
    ],
    "auth_attempt_metrics": [
        ("auth_attempts_total", "counter", "Total number of authentication attempts",
         "attempts"),
        ("auth_attempts_succeeded_total", "counter",
         "Total number of successful authentication attempts", "succeeded"),
        ("auth_attempts_failed_total", "counter",
         "Total number of failed authentication attempts", "failed"),
    ],
}

# rabbit_global_counters: (name after rabbitmq_global_, type, help), labelled by protocol
GLOBAL_METRICS: list[tuple[str, str, str]] = [
    ("messages_received_total", "counter", "Total number of messages received from publishers"),
    ("messages_received_confirm_total", "counter",
     "Total number of messages received from publishers expecting confirmations"),
    ("messages_routed_total", "counter", "Total number of messages routed to queues or streams"),
    ("messages_unroutable_dropped_total", "counter", "Total number of messages published as "
     "non-mandatory into an exchange and dropped as unroutable"),
    ("messages_unroutable_returned_total", "counter", "Total number of messages published as "
     "mandatory into an exchange and returned to the publisher as unroutable"),
    ("messages_confirmed_total", "counter", "Total number of messages confirmed to publishers"),
    ("messages_delivered_total", "counter", "Total number of messages delivered to consumers"),
    ("messages_delivered_consume_manual_ack_total", "counter", "Total number of messages "
     "delivered to consumers using basic.consume with manual acknowledgment"),
    ("messages_delivered_consume_auto_ack_total", "counter", "Total number of messages "
     "delivered to consumers using basic.consume with automatic acknowledgment"),
    ("messages_delivered_get_manual_ack_total", "counter", "Total number of messages "
     "delivered to consumers using basic.get with manual acknowledgment"),
    ("messages_delivered_get_auto_ack_total", "counter", "Total number of messages delivered "
     "to consumers using basic.get with automatic acknowledgment"),
    ("messages_get_empty_total", "counter",
     "Total number of times basic.get operations fetched no message"),
    ("messages_redelivered_total", "counter", "Total number of messages redelivered to consumers"),
    ("messages_acknowledged_total", "counter",
     "Total number of messages acknowledged by consumers"),
    ("publishers", "gauge", "Current number of publishers"),
    ("consumers", "gauge", "Current number of consumers"),
]

# rabbit_msg_size_metrics' bucket labels, as Prometheus normalises them (the dashboard's
# queries name these exact `le` values).
SIZE_LABELS = ("100.0", "1000.0", "10000.0", "100000.0", "1e+06", "1e+07", "5e+07", "1e+08",
               "+Inf")

OBJECT_GROUPS = {"queue": QUEUE_GROUPS, "channel": CHANNEL_GROUPS,
                 "connection": CONNECTION_GROUPS, "exchange": EXCHANGE_GROUPS}
# the labels of each kind's per-object rows
OBJECT_LABELS = {"queue": ("vhost", "queue"), "channel": ("channel",),
                 "connection": ("connection",), "exchange": ("vhost", "exchange")}
ALL_GROUPS = {name for groups in (*OBJECT_GROUPS.values(), NODE_GROUPS) for name in groups}
