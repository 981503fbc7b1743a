"""Resource permissions with RabbitMQ's semantics (https://www.rabbitmq.com/docs/access-control).

A user holds, per virtual host, three regular expressions (`users.Permission`): configure,
write and read. Opening a vhost needs any permission entry for it (`BrokerCore.open_vhost`);
after that each operation checks the resources it touches:

    operation                       configure        write                read
    ------------------------------  ---------------  -------------------  ----------------
    exchange.declare (passive)      -                -                    -
    exchange.declare                exchange         -                    -
      ... with alternate-exchange   exchange         the AE               exchange
    exchange.delete                 exchange         -                    -
    queue.declare (passive)         -                -                    -
    queue.declare                   queue            -                    -
      ... with x-dead-letter-exch.  queue            the DLX              queue
    queue.delete                    queue            -                    -
    queue.bind / queue.unbind       -                queue                exchange
    exchange.bind / exchange.unbind -                exchange (dest.)     exchange (source)
    basic.publish                   -                exchange             -
    basic.get / basic.consume       -                -                    queue
    queue.purge                     -                -                    queue

The default exchange ("") is checked under the name "amq.default", as RabbitMQ does
(rabbit_access_control), so `write: ^amq\\.default$` is what lets a user publish to queues
by name. A server-named queue is checked under its generated name (`amq.gen-...`).
Patterns match anywhere in the name (unanchored); the empty pattern allows nothing.

Refusals close the channel with 403 ACCESS_REFUSED and RabbitMQ's text, for instance
`access to queue 'q' in vhost '/' refused for user 'u'`. Topic permissions (routing-key
patterns per topic exchange) are in `model/topic_permissions.py`.

A connection may remember what it was granted: pass the same set as `cache` to skip the
regex next time. When an administrator changes the user's permissions (management API),
the admin facade clears those caches (`ClientConnection.permissions_changed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from amqpbroker import errors

if TYPE_CHECKING:
    from amqpbroker.model.users import User

Kind = Literal["configure", "write", "read"]
ResourceKind = Literal["exchange", "queue"]

DEFAULT_EXCHANGE_ALIAS = "amq.default"


def resource_name(resource_kind: str, name: str) -> str:
    """The name a permission pattern is matched against."""
    if resource_kind == "exchange" and name == "":
        return DEFAULT_EXCHANGE_ALIAS
    return name


def allowed(user: "User", vhost_name: str, kind: Kind, resource_kind: ResourceKind,
            name: str) -> bool:
    perm = user.permissions.get(vhost_name)
    return perm is not None and perm.allows(kind, resource_name(resource_kind, name))


def check(user: "User", vhost_name: str, kind: Kind, resource_kind: ResourceKind, name: str,
          cache: set[tuple[str, str, str]] | None = None) -> None:
    """Raise `errors.AccessRefused` unless `user` may `kind` the resource in `vhost_name`.

    `cache`, if given, is a set owned by one channel (one user, one vhost): grants are
    remembered there so the hot path (basic.publish) costs one set lookup.
    """
    if cache is not None:
        key = (kind, resource_kind, name)
        if key in cache:
            return
    if not allowed(user, vhost_name, kind, resource_kind, name):
        raise errors.AccessRefused(
            f"access to {resource_kind} '{resource_name(resource_kind, name)}' in vhost "
            f"'{vhost_name}' refused for user '{user.name}'")
    if cache is not None:
        cache.add(key)
