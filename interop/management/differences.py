"""Every allowed difference between amqpbroker's management API and RabbitMQ's recorded
one (fixtures/rabbitmq.json). docs/management.md lists each with its reason;
test_compat.py checks that the docs name every pattern here.

Key paths: `a.b` for nested objects, `a[].b` for the items of a list; fnmatch patterns
(`*` also matches dots). Each entry: pattern -> why.
"""

from __future__ import annotations

# Missing keys allowed in every response.
MISSING_EVERYWHERE: dict[str, str] = {
    "*garbage_collection": "Erlang process garbage-collection settings: no Erlang here",
    "*reductions": "Erlang reductions (scheduler work units): no Erlang here",
    "*reductions_details*": "rate of Erlang reductions",
    "*backing_queue_status": "internals of RabbitMQ's classic queue implementation",
    "*memory": "per-queue Erlang process memory: not measured per queue",
    "*recoverable_slaves": "classic mirrored queues, removed in RabbitMQ 4.x",
    "*pending_raft_commands": "Raft commands of quorum queues on other nodes: single node",
    "*idle_since": "shown by RabbitMQ only while an object is idle; not tracked",
    "*message_stats*": "RabbitMQ shows message_stats once traffic was sampled",
}
EXTRA_EVERYWHERE: dict[str, str] = {
    "*message_stats": "always shown (zeros before any traffic); connections carry the sum "
                      "of their channels' counters, which RabbitMQ does not show",
}

# Per call id: {"missing": {pattern: why}, "extra": {pattern: why}, "status": (n, why)}
PER_CALL: dict[str, dict[str, dict[str, str]]] = {
    "extensions": {"missing": {"[].javascript": "no management UI plugins are installed"}},
    "overview": {
        "missing": {"erlang_version": "no Erlang", "erlang_full_version": "no Erlang",
                    "release_series_support_status": "RabbitMQ's release support status"},
        "extra": {"python_version": "the Python version instead of Erlang's",
                  "node": "RabbitMQ 4.x has it; 3.10 (the recording) does not"}},
    "auth.management-user.overview": {
        "missing": {"erlang_version": "no Erlang", "erlang_full_version": "no Erlang",
                    "release_series_support_status": "RabbitMQ's release support status"},
        "extra": {"python_version": "the Python version instead of Erlang's"}},
    "nodes": {
        "missing": {
            "[].io_*": "Erlang file-handle IO statistics",
            "[].mnesia_*": "Mnesia (RabbitMQ's metadata database) transactions",
            "[].msg_store_*": "RabbitMQ's message store counters",
            "[].queue_index_*": "RabbitMQ's classic queue index counters",
            "[].gc_*": "Erlang garbage collection",
            "[].context_switches*": "Erlang scheduler context switches",
            "[].cluster_links": "inter-node links: single node",
            "[].metrics_gc_queue_length": "RabbitMQ's metrics GC",
            "[].ra_open_file_metrics": "Raft (quorum queue) file metrics",
            "[].mem_calculation_strategy": "Erlang memory accounting strategy",
            "[].*_details*": "rates of node figures (memory, fds, sockets, disk)",
        },
        "extra": {"[].being_drained": "RabbitMQ 4.x has it; 3.10 does not"}},
    "vhost.get": {"extra": {"messages*": "RabbitMQ shows these once the vhost had traffic"}},
    "vhosts": {"extra": {"[].messages*": "RabbitMQ shows these once the vhost had traffic"}},
    "global-parameters": {"missing": {
        "[].*": "RabbitMQ always has an internal_cluster_id global parameter"}},
    "definitions": {
        "missing": {"global_parameters[].*": "no internal_cluster_id (see global-parameters)",
                    "parameters[].*": "RabbitMQ keeps an emptied vhost-limits runtime "
                                      "parameter; vhost limits are not parameters here"},
        "extra": {"operator_policies": "exported as RabbitMQ 4.x does",
                  "vhosts[].*": "vhost metadata and limits, exported as RabbitMQ 4.x does"}},
    "definitions.vhost": {"missing": {
        "parameters[].*": "RabbitMQ keeps an emptied vhost-limits runtime parameter"}},
}
