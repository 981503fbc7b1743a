"""SASL EXTERNAL (https://www.rabbitmq.com/docs/access-control#tls-based-authentication):
the verified client certificate names the user; no password is checked.

The name comes from `tls.cert_login_name` (RabbitMQ's `ssl_cert_login_from`). As in
RabbitMQ, the user must exist in the user store (its permissions apply); the loopback
restriction applies to it as to a password login.
"""

from __future__ import annotations

from typing import Any

from amqpbroker import errors


def external_login(core: Any, username: str, loopback: bool) -> Any:
    user = core.users.get(username)
    if user is None:
        raise errors.LoginRefused(
            f"EXTERNAL login refused: user '{username}' (from the client certificate) "
            "does not exist")
    if username in core.settings.loopback_users and not loopback:
        raise errors.LoginRefused(f"User '{username}' can only connect via localhost")
    return user
