"""Endpoints for connections, channels and consumers. Management users see their own
connections; monitoring and administrator users see everyone's."""

from __future__ import annotations

from typing import Any

from amqpbroker.management import auth, listing
from amqpbroker.management.errors import not_authorised, not_found
from amqpbroker.management.router import NO_CONTENT, Context, route

DEFAULT_REASON = "Closed via management plugin"


def _mine(ctx: Context, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if auth.sees_all_vhosts(ctx.user):
        return items
    return [i for i in items if i.get("user") == ctx.user.name]


def _decorate(ctx: Context, kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if ctx.stats is not None and ctx.query.get("disable_stats", "").lower() != "true":
        for item in items:
            ctx.stats.decorate(kind, item)
    return items


@route("GET", "/api/connections")
def list_connections(ctx: Context) -> Any:
    return listing.apply(_decorate(ctx, "connection", _mine(ctx, ctx.admin.connections())),
                         ctx.query)


@route("GET", "/api/vhosts/{vhost}/connections", vhost=True)
def list_vhost_connections(ctx: Context) -> Any:
    return listing.apply(
        _decorate(ctx, "connection", _mine(ctx, ctx.admin.connections_of(ctx.vhost))),
        ctx.query)


def _own(ctx: Context, name: str) -> dict[str, Any]:
    info = ctx.admin.connection_info(name)
    if not auth.sees_all_vhosts(ctx.user) and info["user"] != ctx.user.name:
        raise not_found()
    return info


@route("GET", "/api/connections/{name}")
def get_connection(ctx: Context) -> Any:
    return listing.one(_decorate(ctx, "connection", [_own(ctx, ctx.params["name"])])[0],
                       ctx.query)


@route("DELETE", "/api/connections/{name}")
def delete_connection(ctx: Context) -> Any:
    """Close with 320 CONNECTION_FORCED; the reason is the X-Reason header, as RabbitMQ."""
    info = _own(ctx, ctx.params["name"])
    if info["user"] != ctx.user.name and not auth.has(ctx.user, "administrator"):
        raise not_authorised("Not administrator user")
    reason = (ctx.headers.get("X-Reason") if ctx.headers is not None else None) or DEFAULT_REASON
    ctx.admin.close_connection(ctx.params["name"], reason)
    return NO_CONTENT


@route("GET", "/api/connections/{name}/channels")
def get_connection_channels(ctx: Context) -> Any:
    info = _own(ctx, ctx.params["name"])
    return listing.apply(_decorate(ctx, "channel", [
        c for c in ctx.admin.channels() if c["connection_details"]["name"] == info["name"]]),
        ctx.query)


@route("GET", "/api/connections/username/{username}", access="administrator")
def get_user_connections(ctx: Context) -> Any:
    return listing.apply([c for c in ctx.admin.connections()
                          if c["user"] == ctx.params["username"]], ctx.query)


@route("DELETE", "/api/connections/username/{username}", access="administrator")
def delete_user_connections(ctx: Context) -> Any:
    reason = (ctx.headers.get("X-Reason") if ctx.headers is not None else None) or DEFAULT_REASON
    for c in ctx.admin.connections():
        if c["user"] == ctx.params["username"]:
            ctx.admin.close_connection(c["name"], reason)
    return NO_CONTENT


@route("GET", "/api/channels")
def list_channels(ctx: Context) -> Any:
    return listing.apply(_decorate(ctx, "channel", _mine(ctx, ctx.admin.channels())), ctx.query)


@route("GET", "/api/vhosts/{vhost}/channels", vhost=True)
def list_vhost_channels(ctx: Context) -> Any:
    return listing.apply(_decorate(ctx, "channel", _mine(ctx, [
        c for c in ctx.admin.channels() if c["vhost"] == ctx.vhost])), ctx.query)


@route("GET", "/api/channels/{name}")
def get_channel(ctx: Context) -> Any:
    info = ctx.admin.channel(ctx.params["name"])
    if not auth.sees_all_vhosts(ctx.user) and info["user"] != ctx.user.name:
        raise not_found()
    return listing.one(_decorate(ctx, "channel", [info])[0], ctx.query)


@route("GET", "/api/consumers")
def list_consumers(ctx: Context) -> Any:
    items = ctx.admin.consumers()
    if not auth.sees_all_vhosts(ctx.user):
        vhosts = set(auth.visible_vhosts(ctx.admin, ctx.user))
        items = [c for c in items if c["queue"]["vhost"] in vhosts]
    return listing.apply(items, ctx.query)


@route("GET", "/api/consumers/{vhost}", vhost=True)
def list_vhost_consumers(ctx: Context) -> Any:
    return listing.apply(ctx.admin.consumers(ctx.vhost), ctx.query)
