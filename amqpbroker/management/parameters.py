"""Endpoints for runtime parameters, policies, operator policies and limits. They are
stored (and survive restarts), returned, and policies and limits take effect at once
(docs/policies.md)."""

from __future__ import annotations

from typing import Any

from amqpbroker.management import auth, listing
from amqpbroker.management.errors import bad_request
from amqpbroker.management.fields import as_int, as_str
from amqpbroker.management.router import NO_CONTENT, Context, created_or_updated, route


def _visible(ctx: Context, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    vhosts = set(auth.visible_vhosts(ctx.admin, ctx.user))
    return [i for i in items if i.get("vhost") in vhosts]


# -- parameters -----------------------------------------------------------------------------
@route("GET", "/api/parameters", access="policymaker")
def list_parameters(ctx: Context) -> Any:
    return listing.apply(_visible(ctx, ctx.admin.parameters()), ctx.query)


@route("GET", "/api/parameters/{component}", access="policymaker")
def list_component_parameters(ctx: Context) -> Any:
    return listing.apply(_visible(ctx, ctx.admin.parameters(ctx.params["component"])),
                         ctx.query)


@route("GET", "/api/parameters/{component}/{vhost}", access="policymaker", vhost=True)
def list_vhost_parameters(ctx: Context) -> Any:
    return listing.apply(ctx.admin.parameters(ctx.params["component"], ctx.vhost), ctx.query)


@route("GET", "/api/parameters/{component}/{vhost}/{name}", access="policymaker", vhost=True)
def get_parameter(ctx: Context) -> Any:
    for p in ctx.admin.parameters(ctx.params["component"], ctx.vhost):
        if p["name"] == ctx.params["name"]:
            return listing.one(p, ctx.query)
    from amqpbroker.management.errors import not_found

    raise not_found()


@route("PUT", "/api/parameters/{component}/{vhost}/{name}", access="policymaker", vhost=True)
def put_parameter(ctx: Context) -> Any:
    doc = ctx.object(("component", "vhost", "name", "value"), required=True)
    if "value" not in doc:
        raise bad_request("value is required")
    return created_or_updated(ctx.admin.put_parameter(
        ctx.params["component"], ctx.vhost, ctx.params["name"], doc["value"]))


@route("DELETE", "/api/parameters/{component}/{vhost}/{name}", access="policymaker",
       vhost=True)
def delete_parameter(ctx: Context) -> Any:
    ctx.admin.delete_parameter(ctx.params["component"], ctx.vhost, ctx.params["name"])
    return NO_CONTENT


@route("GET", "/api/global-parameters", access="administrator")
def list_global_parameters(ctx: Context) -> Any:
    return listing.apply(ctx.admin.global_parameters(), ctx.query)


@route("GET", "/api/global-parameters/{name}", access="administrator")
def get_global_parameter(ctx: Context) -> Any:
    for p in ctx.admin.global_parameters():
        if p["name"] == ctx.params["name"]:
            return listing.one(p, ctx.query)
    from amqpbroker.management.errors import not_found

    raise not_found()


@route("PUT", "/api/global-parameters/{name}", access="administrator")
def put_global_parameter(ctx: Context) -> Any:
    doc = ctx.object(("name", "value"), required=True)
    if "value" not in doc:
        raise bad_request("value is required")
    return created_or_updated(ctx.admin.put_global_parameter(ctx.params["name"], doc["value"]))


@route("DELETE", "/api/global-parameters/{name}", access="administrator")
def delete_global_parameter(ctx: Context) -> Any:
    ctx.admin.delete_global_parameter(ctx.params["name"])
    return NO_CONTENT


# -- policies and operator policies ---------------------------------------------------------------
def _policy_routes(prefix: str, kind: str, write_access: str) -> None:
    read_access = "policymaker" if kind == "policy" else "administrator"

    @route("GET", f"/api/{prefix}", access=read_access)
    def list_all(ctx: Context) -> Any:
        return listing.apply(_visible(ctx, ctx.admin.policies(kind)), ctx.query)

    @route("GET", f"/api/{prefix}/{{vhost}}", access=read_access, vhost=True)
    def list_vhost(ctx: Context) -> Any:
        return listing.apply(ctx.admin.policies(kind, ctx.vhost), ctx.query)

    @route("GET", f"/api/{prefix}/{{vhost}}/{{name}}", access=read_access, vhost=True)
    def get_one(ctx: Context) -> Any:
        return listing.one(ctx.admin.policy(kind, ctx.vhost, ctx.params["name"]), ctx.query)

    @route("PUT", f"/api/{prefix}/{{vhost}}/{{name}}", access=write_access, vhost=True)
    def put_one(ctx: Context) -> Any:
        doc = ctx.object(("vhost", "name", "pattern", "definition", "priority", "apply-to"),
                         required=True)
        if "pattern" not in doc or "definition" not in doc:
            raise bad_request("pattern and definition are required")
        return created_or_updated(ctx.admin.put_policy(
            kind, ctx.vhost, ctx.params["name"], doc["pattern"], doc["definition"],
            as_int(doc, "priority", 0), as_str(doc, "apply-to", "all")))

    @route("DELETE", f"/api/{prefix}/{{vhost}}/{{name}}", access=write_access, vhost=True)
    def delete_one(ctx: Context) -> Any:
        ctx.admin.delete_policy(kind, ctx.vhost, ctx.params["name"])
        return NO_CONTENT


_policy_routes("policies", "policy", "policymaker")
_policy_routes("operator-policies", "operator_policy", "administrator")


# -- limits ---------------------------------------------------------------------------------
@route("GET", "/api/vhost-limits", access="administrator")
def list_vhost_limits(ctx: Context) -> Any:
    return listing.apply(ctx.admin.vhost_limits(), ctx.query)


@route("GET", "/api/vhost-limits/{vhost}", vhost=True)
def get_vhost_limits(ctx: Context) -> Any:
    return listing.apply(ctx.admin.vhost_limits(ctx.vhost), ctx.query)


@route("PUT", "/api/vhost-limits/{vhost}/{name}", access="administrator", vhost=True)
def put_vhost_limit(ctx: Context) -> Any:
    doc = ctx.object(("vhost", "name", "value"), required=True)
    if "value" not in doc:
        raise bad_request("value is required")
    ctx.admin.set_vhost_limit(ctx.vhost, ctx.params["name"], doc["value"])
    return NO_CONTENT


@route("DELETE", "/api/vhost-limits/{vhost}/{name}", access="administrator", vhost=True)
def delete_vhost_limit(ctx: Context) -> Any:
    ctx.admin.set_vhost_limit(ctx.vhost, ctx.params["name"], None)
    return NO_CONTENT


@route("GET", "/api/user-limits", access="administrator")
def list_user_limits(ctx: Context) -> Any:
    return listing.apply(ctx.admin.user_limits(), ctx.query)


@route("GET", "/api/user-limits/{user}", access="administrator")
def get_user_limits(ctx: Context) -> Any:
    return listing.apply(ctx.admin.user_limits(ctx.params["user"]), ctx.query)


@route("PUT", "/api/user-limits/{user}/{name}", access="administrator")
def put_user_limit(ctx: Context) -> Any:
    doc = ctx.object(("user", "name", "value"), required=True)
    if "value" not in doc:
        raise bad_request("value is required")
    ctx.admin.set_user_limit(ctx.params["user"], ctx.params["name"], doc["value"])
    return NO_CONTENT


@route("DELETE", "/api/user-limits/{user}/{name}", access="administrator")
def delete_user_limit(ctx: Context) -> Any:
    ctx.admin.set_user_limit(ctx.params["user"], ctx.params["name"], None)
    return NO_CONTENT
