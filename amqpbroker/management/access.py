"""Endpoints for vhosts, users, permissions and topic permissions."""

from __future__ import annotations

from typing import Any

from amqpbroker.management import auth, listing
from amqpbroker.management.errors import bad_request, not_found
from amqpbroker.management.fields import as_bool, as_str, tags
from amqpbroker.management.router import NO_CONTENT, Context, created_or_updated, route


def _vhost_info(ctx: Context, name: str) -> dict[str, Any]:
    info = ctx.admin.vhost_info(name)
    if ctx.stats is not None:
        ctx.stats.decorate_vhost(info)
    return info


# -- vhosts ---------------------------------------------------------------------------------
@route("GET", "/api/vhosts")
def list_vhosts(ctx: Context) -> Any:
    return listing.apply([_vhost_info(ctx, n) for n in auth.visible_vhosts(ctx.admin, ctx.user)],
                         ctx.query)


@route("GET", "/api/vhosts/{vhost}", vhost=True)
def get_vhost(ctx: Context) -> Any:
    return listing.one(_vhost_info(ctx, ctx.vhost), ctx.query)


@route("PUT", "/api/vhosts/{vhost}", access="administrator")
def put_vhost(ctx: Context) -> Any:
    doc = ctx.object(("name", "description", "tags", "default_queue_type", "tracing",
                      "metadata", "protected_from_deletion"))
    tracing = as_bool(doc, "tracing", False) if "tracing" in doc else None
    created = ctx.admin.put_vhost(ctx.vhost, description=as_str(doc, "description"),
                                  tags=tags(doc["tags"]) if "tags" in doc else None,
                                  default_queue_type=as_str(doc, "default_queue_type"),
                                  tracing=tracing, grant_to=ctx.user.name)
    return created_or_updated(created)


@route("DELETE", "/api/vhosts/{vhost}", access="administrator")
def delete_vhost(ctx: Context) -> Any:
    ctx.admin.delete_vhost(ctx.vhost)
    return NO_CONTENT


@route("GET", "/api/vhosts/{vhost}/permissions", access="administrator", vhost=True)
def get_vhost_permissions(ctx: Context) -> Any:
    return listing.apply(ctx.admin.permissions(vhost=ctx.vhost), ctx.query)


@route("GET", "/api/vhosts/{vhost}/topic-permissions", access="administrator", vhost=True)
def get_vhost_topic_permissions(ctx: Context) -> Any:
    return listing.apply(ctx.admin.topic_permissions(vhost=ctx.vhost), ctx.query)


# -- users ----------------------------------------------------------------------------------
@route("GET", "/api/users", access="administrator")
def list_users(ctx: Context) -> Any:
    return listing.apply(ctx.admin.users(), ctx.query)


@route("GET", "/api/users/without-permissions", access="administrator")
def list_users_without_permissions(ctx: Context) -> Any:
    return listing.apply(ctx.admin.users_without_permissions(), ctx.query)


@route("POST", "/api/users/bulk-delete", access="administrator")
def bulk_delete_users(ctx: Context) -> Any:
    doc = ctx.object(("users",), required=True)
    names = doc.get("users")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad_request("users must be a list of user names")
    for name in names:
        if name in ctx.admin.core.users:
            ctx.admin.delete_user(name)
    return NO_CONTENT


@route("GET", "/api/users/{user}", access="administrator")
def get_user(ctx: Context) -> Any:
    return listing.one(ctx.admin.user_info(ctx.params["user"]), ctx.query)


@route("PUT", "/api/users/{user}", access="administrator")
def put_user(ctx: Context) -> Any:
    doc = ctx.object(("name", "password", "password_hash", "hashing_algorithm", "tags",
                      "limits"), required=True)
    if "tags" not in doc:
        raise bad_request("tags is required (it may be empty)")
    created = ctx.admin.put_user(
        ctx.params["user"], password=as_str(doc, "password"),
        password_hash=as_str(doc, "password_hash"),
        hashing_algorithm=as_str(doc, "hashing_algorithm"), tags=tags(doc["tags"]))
    return created_or_updated(created)


@route("DELETE", "/api/users/{user}", access="administrator")
def delete_user(ctx: Context) -> Any:
    ctx.admin.delete_user(ctx.params["user"])
    return NO_CONTENT


@route("GET", "/api/users/{user}/permissions", access="administrator")
def get_user_permissions(ctx: Context) -> Any:
    ctx.admin.user(ctx.params["user"])
    return listing.apply(ctx.admin.permissions(user=ctx.params["user"]), ctx.query)


@route("GET", "/api/users/{user}/topic-permissions", access="administrator")
def get_user_topic_permissions(ctx: Context) -> Any:
    ctx.admin.user(ctx.params["user"])
    return listing.apply(ctx.admin.topic_permissions(user=ctx.params["user"]), ctx.query)


# -- permissions ----------------------------------------------------------------------------
@route("GET", "/api/permissions", access="administrator")
def list_permissions(ctx: Context) -> Any:
    return listing.apply(ctx.admin.permissions(), ctx.query)


@route("GET", "/api/permissions/{vhost}/{user}", access="administrator")
def get_permission(ctx: Context) -> Any:
    found = ctx.admin.permissions(user=ctx.params["user"], vhost=ctx.vhost)
    if not found:
        raise not_found()
    return listing.one(found[0], ctx.query)


@route("PUT", "/api/permissions/{vhost}/{user}", access="administrator")
def put_permission(ctx: Context) -> Any:
    doc = ctx.object(("vhost", "user", "configure", "write", "read"), required=True)
    created = ctx.admin.set_permission(
        ctx.params["user"], ctx.vhost, as_str(doc, "configure", required=True),
        as_str(doc, "write", required=True), as_str(doc, "read", required=True))
    return created_or_updated(created)


@route("DELETE", "/api/permissions/{vhost}/{user}", access="administrator")
def delete_permission(ctx: Context) -> Any:
    ctx.admin.clear_permission(ctx.params["user"], ctx.vhost)
    return NO_CONTENT


@route("GET", "/api/topic-permissions", access="administrator")
def list_topic_permissions(ctx: Context) -> Any:
    return listing.apply(ctx.admin.topic_permissions(), ctx.query)


@route("GET", "/api/topic-permissions/{vhost}/{user}", access="administrator")
def get_topic_permission(ctx: Context) -> Any:
    found = ctx.admin.topic_permissions(user=ctx.params["user"], vhost=ctx.vhost)
    if not found:
        raise not_found()
    return listing.apply(found, ctx.query)


@route("PUT", "/api/topic-permissions/{vhost}/{user}", access="administrator")
def put_topic_permission(ctx: Context) -> Any:
    doc = ctx.object(("vhost", "user", "exchange", "write", "read"), required=True)
    ctx.admin.set_topic_permission(
        ctx.params["user"], ctx.vhost, as_str(doc, "exchange", required=True),
        as_str(doc, "write", required=True), as_str(doc, "read", required=True))
    return created_or_updated(True)


@route("DELETE", "/api/topic-permissions/{vhost}/{user}", access="administrator")
def delete_topic_permission(ctx: Context) -> Any:
    ctx.admin.clear_topic_permissions(ctx.params["user"], ctx.vhost,
                                      ctx.query.get("exchange"))
    return NO_CONTENT
