"""Vhost and user limits (https://www.rabbitmq.com/docs/vhosts#limits,
https://www.rabbitmq.com/docs/user-limits), checked where the resource is taken.

    limit                   checked at          refusal (as RabbitMQ 4.x)
    ----------------------  ------------------  -------------------------------------------
    vhost max-connections   connection.open     530 NOT_ALLOWED, connection closed
    user max-connections    connection.open     530 NOT_ALLOWED, connection closed
    user max-channels       channel.open        530 NOT_ALLOWED, connection closed
    vhost max-queues        queue.declare       406 PRECONDITION_FAILED (model/vhost.py)

A negative value means no limit; 0 refuses every new one. Limits are read from the
runtime state (`broker/runtime.py`) at each check, so changing one is live; what already
exists beyond a new limit stays, as in RabbitMQ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amqpbroker import errors

if TYPE_CHECKING:
    from amqpbroker.core import BrokerCore


def check_connection(core: "BrokerCore", user: Any, vhost: Any) -> None:
    """Before a client session (an AMQP connection, an MQTT connection) opens on `vhost`
    (rabbit_reader:is_over_*_connection_limit); every protocol's sessions count."""
    vlimit = vhost.limits.get("max-connections", -1)
    if vlimit >= 0 and sum(1 for c in core.sessions if c.vhost is vhost) >= vlimit:
        raise errors.NotAllowed(f"access to vhost '{vhost.name}' refused for user "
                                f"'{user.name}': connection limit ({vlimit}) is reached")
    ulimit = core.runtime.user_limits.get(user.name, {}).get("max-connections", -1)
    if ulimit >= 0 and sum(1 for c in core.sessions if c.user.name == user.name) >= ulimit:
        raise errors.NotAllowed(f"Connection refused for user '{user.name}': user connection "
                                f"limit ({ulimit}) is reached")


def check_channel(core: "BrokerCore", user: Any) -> None:
    """Before a channel opens (rabbit_reader: user channel limit)."""
    limits = core.runtime.user_limits
    if not limits:
        return
    limit = limits.get(user.name, {}).get("max-channels", -1)
    if limit >= 0 and sum(len(c.channels) for c in core.connections
                          if c.user is not None and c.user.name == user.name) >= limit:
        raise errors.NotAllowed(f"number of channels opened for user '{user.name}' has "
                                f"reached the maximum allowed user limit of ({limit})")
