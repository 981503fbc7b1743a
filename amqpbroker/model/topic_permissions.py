"""Topic permissions (https://www.rabbitmq.com/docs/access-control#topic-authorisation).

Per user, vhost and topic exchange, two regular expressions matched against routing keys:
`write` on publish, `read` on queue.bind / queue.unbind (and exchange.bind / unbind) with
a topic exchange as source, and on MQTT SUBSCRIBE (the MQTT session calls `check` with the
topic filter turned into its AMQP routing key, and its client id). A user with no topic
permission for an exchange may use every routing key on it, as in RabbitMQ.

Variables in a pattern are expanded first, as RabbitMQ does (plain text substitution, not
escaped): `{username}`, `{vhost}` and, when the protocol has one (MQTT), `{client_id}`.
Patterns match anywhere in the key (unanchored, Erlang's re:run).

A miss is 403 ACCESS_REFUSED with RabbitMQ's text (rabbit_access_control):
`write access to topic 'a.b' in exchange 'amq.topic' in vhost '/' refused for user 'u'`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal, Mapping

from amqpbroker import errors

Table = Mapping[tuple[str, str, str], Mapping[str, str]]  # (user, vhost, exchange) -> perms


def applies(table: Table, user: str, vhost: str, exchange: str) -> bool:
    """True when routing keys on this exchange are restricted for this user."""
    return bool(table) and (user, vhost, exchange) in table


def allowed(table: Table, user: str, vhost: str, exchange: str,
            permission: Literal["write", "read"], routing_key: str,
            client_id: str | None = None) -> bool:
    entry = table.get((user, vhost, exchange)) if table else None
    if entry is None:
        return True
    pattern = entry.get(permission, ".*")
    pattern = pattern.replace("{username}", user).replace("{vhost}", vhost)
    if client_id is not None:
        pattern = pattern.replace("{client_id}", client_id)
    regex = _compile(pattern)
    return regex is not None and regex.search(routing_key) is not None


def check(table: Table, user: str, vhost: str, exchange: str,
          permission: Literal["write", "read"], routing_key: str,
          client_id: str | None = None) -> None:
    """Raise AccessRefused (403) unless `user` may `permission` `routing_key` on
    `exchange` (a topic exchange) in `vhost`."""
    if not allowed(table, user, vhost, exchange, permission, routing_key, client_id):
        raise errors.AccessRefused(
            f"{permission} access to topic '{routing_key}' in exchange '{exchange}' in "
            f"vhost '{vhost}' refused for user '{user}'")


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # an expansion made it invalid: nothing matches
        return None
