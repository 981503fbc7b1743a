"""Who may do what: HTTP basic auth against the broker's users, and RabbitMQ's user tags
(https://www.rabbitmq.com/docs/management#permissions):

    management     the management API, for the vhosts the user has permissions in
    policymaker    + policies and parameters of those vhosts
    monitoring     + every vhost's connections, channels, queues, node data (read-only)
    administrator  everything: users, vhosts, permissions, definitions, other users'
                   connections

RabbitMQ answers 401 both for bad credentials (with a WWW-Authenticate challenge) and for
a user whose tags do not reach the endpoint ("Not management user", "Not administrator
user"); so do we (docs/management.md).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from amqpbroker.management.errors import HttpError, not_authorised

REALM = 'Basic realm="RabbitMQ Management"'
# The tags each level accepts.
LEVELS = {
    "management": {"management", "policymaker", "monitoring", "administrator"},
    "policymaker": {"policymaker", "administrator"},
    "monitoring": {"monitoring", "administrator"},
    "administrator": {"administrator"},
}
REFUSALS = {
    "management": "Not management user",
    "policymaker": "Not policymaker user",
    "monitoring": "Not monitor user",
    "administrator": "Not administrator user",
}


def credentials(header: str | None) -> tuple[str, str]:
    if not header or not header.lower().startswith("basic "):
        raise login_failed()
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise login_failed() from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise login_failed()
    return username, password


def login_failed() -> HttpError:
    return HttpError(401, "not_authorized", "Login failed", {"WWW-Authenticate": REALM})


def authenticate(admin: Any, header: str | None, loopback: bool = True) -> Any:
    username, password = credentials(header)
    user = admin.authenticate(username, password, loopback)
    if user is None:
        raise login_failed()
    return user


def require(user: Any, level: str) -> None:
    if not LEVELS[level] & set(user.tags):
        raise not_authorised(REFUSALS[level])


def has(user: Any, level: str) -> bool:
    return bool(LEVELS[level] & set(user.tags))


def sees_all_vhosts(user: Any) -> bool:
    return has(user, "monitoring")


def visible_vhosts(admin: Any, user: Any) -> list[str]:
    """The vhosts a user's lists include: all for monitoring and administrator users,
    those it has permissions in otherwise."""
    names = admin.vhost_names()
    if sees_all_vhosts(user):
        return names
    return [n for n in names if n in user.permissions]


def require_vhost(admin: Any, user: Any, vhost: str, write: bool) -> None:
    """Access to a vhost named in the path: 404 when it does not exist, 401 when the user
    may not use it (monitoring users may read every vhost)."""
    admin.vhost(vhost)  # NotFound -> 404
    if vhost in user.permissions:
        return
    if has(user, "administrator") or (not write and has(user, "monitoring")):
        return
    raise not_authorised("User not authorised to access virtual host")
