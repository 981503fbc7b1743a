"""GET /api/shovels and /api/shovels/{vhost}: the dynamic shovels' status in the shape of
RabbitMQ's shovel-management plugin (https://www.rabbitmq.com/docs/shovel-dynamic#status):
name, vhost, type, state (starting, running, terminated with a reason), src/dest URIs with
the password removed. Shovels are created and deleted as runtime parameters
(/api/parameters/shovel/{vhost}/{name}, management/parameters.py)."""

from __future__ import annotations

from typing import Any

from amqpbroker.management import auth, listing
from amqpbroker.management.router import Context, route


def _status(ctx: Context, vhost: str | None = None) -> list[dict[str, Any]]:
    shovels = ctx.admin.shovels
    return [] if shovels is None else shovels.status(vhost)


@route("GET", "/api/shovels", access="management")
def list_shovels(ctx: Context) -> Any:
    vhosts = set(auth.visible_vhosts(ctx.admin, ctx.user))
    return listing.apply([s for s in _status(ctx) if s["vhost"] in vhosts], ctx.query)


@route("GET", "/api/shovels/{vhost}", access="management", vhost=True)
def list_vhost_shovels(ctx: Context) -> Any:
    return listing.apply(_status(ctx, ctx.vhost), ctx.query)
