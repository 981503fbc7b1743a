"""Endpoints for exchanges, queues and bindings. Declares, deletes and publishes go through
the admin facade, i.e. the same VirtualHost methods and permission checks as clients."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

from amqpbroker import errors
from amqpbroker.management import auth, listing
from amqpbroker.management.errors import bad_request, not_found
from amqpbroker.management.fields import as_bool, as_dict, as_int, as_str
from amqpbroker.management.router import (
    NO_CONTENT,
    Context,
    Reply,
    created_or_updated,
    route,
)

DEFAULT_EXCHANGE = "amq.default"  # how the API names the default exchange ""


def _exchange_name(name: str) -> str:
    return "" if name == DEFAULT_EXCHANGE else name


def _visible(ctx: Context, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if auth.sees_all_vhosts(ctx.user):
        return items
    vhosts = set(auth.visible_vhosts(ctx.admin, ctx.user))
    return [i for i in items if i["vhost"] in vhosts]


def _decorate(ctx: Context, kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if ctx.stats is not None and ctx.query.get("disable_stats", "").lower() != "true":
        for item in items:
            ctx.stats.decorate(kind, item)
    return items


# -- exchanges ------------------------------------------------------------------------------
@route("GET", "/api/exchanges")
def list_exchanges(ctx: Context) -> Any:
    return listing.apply(_decorate(ctx, "exchange", _visible(ctx, ctx.admin.exchanges())),
                         ctx.query)


@route("GET", "/api/exchanges/{vhost}", vhost=True)
def list_vhost_exchanges(ctx: Context) -> Any:
    return listing.apply(_decorate(ctx, "exchange", ctx.admin.exchanges(ctx.vhost)), ctx.query)


@route("GET", "/api/exchanges/{vhost}/{name}", vhost=True)
def get_exchange(ctx: Context) -> Any:
    info = ctx.admin.exchange_info(ctx.vhost, _exchange_name(ctx.params["name"]))
    info["incoming"] = []  # per-publisher/per-queue rates: RabbitMQ's "detailed" rates mode
    info["outgoing"] = []
    return listing.one(_decorate(ctx, "exchange", [info])[0], ctx.query)


@route("PUT", "/api/exchanges/{vhost}/{name}", vhost=True)
def put_exchange(ctx: Context) -> Any:
    doc = ctx.object(("name", "vhost", "type", "durable", "auto_delete", "internal",
                      "arguments", "user_who_performed_action"))
    created = ctx.admin.declare_exchange(
        ctx.user, ctx.vhost, ctx.params["name"], as_str(doc, "type", "direct") or "direct",
        durable=as_bool(doc, "durable", True), auto_delete=as_bool(doc, "auto_delete", False),
        internal=as_bool(doc, "internal", False), arguments=as_dict(doc, "arguments"))
    return created_or_updated(created)


@route("DELETE", "/api/exchanges/{vhost}/{name}", vhost=True)
def delete_exchange(ctx: Context) -> Any:
    ctx.admin.delete_exchange(ctx.user, ctx.vhost, ctx.params["name"],
                              if_unused=ctx.flag("if-unused"))
    return NO_CONTENT


@route("POST", "/api/exchanges/{vhost}/{name}/publish", vhost=True)
def publish(ctx: Context) -> Any:
    doc = ctx.object(("properties", "routing_key", "payload", "payload_encoding", "vhost",
                      "name", "exchange", "delivery_mode", "headers", "props"), required=True)
    routing_key = as_str(doc, "routing_key", required=True)
    payload = as_str(doc, "payload", required=True)
    encoding = as_str(doc, "payload_encoding", "string")
    if encoding == "string":
        body = payload.encode("utf-8")  # type: ignore[union-attr]
    elif encoding == "base64":
        try:
            body = base64.b64decode(payload or "", validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("payload is not valid base64") from None
    else:
        raise bad_request("payload_encoding must be string or base64")
    properties = doc.get("properties") or {}
    try:
        routed = ctx.admin.publish(ctx.user, ctx.vhost, _exchange_name(ctx.params["name"]),
                                   routing_key, properties, body)  # type: ignore[arg-type]
    except errors.NotFound as exc:  # RabbitMQ: 400 with the AMQP error, not 404
        raise bad_request(f"404 NOT_FOUND - {exc.text}") from None
    return {"routed": routed}


@route("GET", "/api/exchanges/{vhost}/{name}/bindings/source", vhost=True)
def exchange_bindings_source(ctx: Context) -> Any:
    name = _exchange_name(ctx.params["name"])
    ctx.admin.exchange_info(ctx.vhost, name)
    return listing.apply([b for b in ctx.admin.bindings(ctx.vhost) if b["source"] == name],
                         ctx.query)


@route("GET", "/api/exchanges/{vhost}/{name}/bindings/destination", vhost=True)
def exchange_bindings_destination(ctx: Context) -> Any:
    name = _exchange_name(ctx.params["name"])
    ctx.admin.exchange_info(ctx.vhost, name)
    return listing.apply([b for b in ctx.admin.bindings(ctx.vhost)
                          if b["destination"] == name and b["destination_type"] == "exchange"],
                         ctx.query)


# -- queues ---------------------------------------------------------------------------------
@route("GET", "/api/queues")
def list_queues(ctx: Context) -> Any:
    return listing.apply(_decorate(ctx, "queue", _visible(ctx, ctx.admin.queues())), ctx.query)


@route("GET", "/api/queues/{vhost}", vhost=True)
def list_vhost_queues(ctx: Context) -> Any:
    return listing.apply(_decorate(ctx, "queue", ctx.admin.queues(ctx.vhost)), ctx.query)


@route("GET", "/api/queues/{vhost}/{name}", vhost=True)
def get_queue(ctx: Context) -> Any:
    info = ctx.admin.queue_info(ctx.vhost, ctx.params["name"], details=True)
    return listing.one(_decorate(ctx, "queue", [info])[0], ctx.query)


@route("PUT", "/api/queues/{vhost}/{name}", vhost=True)
def put_queue(ctx: Context) -> Any:
    doc = ctx.object(("name", "vhost", "durable", "auto_delete", "exclusive", "arguments",
                      "node", "queue_type", "user_who_performed_action"))
    if as_bool(doc, "exclusive", False):
        raise bad_request("an exclusive queue belongs to a client connection; "
                          "it cannot be declared over HTTP")
    arguments = dict(as_dict(doc, "arguments"))
    queue_type = as_str(doc, "queue_type")
    if queue_type:
        arguments.setdefault("x-queue-type", queue_type)
    created = ctx.admin.declare_queue(
        ctx.user, ctx.vhost, ctx.params["name"], durable=as_bool(doc, "durable", True),
        auto_delete=as_bool(doc, "auto_delete", False), arguments=arguments)
    return created_or_updated(created)


@route("DELETE", "/api/queues/{vhost}/{name}", vhost=True)
def delete_queue(ctx: Context) -> Any:
    ctx.admin.delete_queue(ctx.user, ctx.vhost, ctx.params["name"],
                           if_empty=ctx.flag("if-empty"), if_unused=ctx.flag("if-unused"))
    return NO_CONTENT


@route("DELETE", "/api/queues/{vhost}/{name}/contents", vhost=True)
def purge_queue(ctx: Context) -> Any:
    ctx.admin.purge_queue(ctx.user, ctx.vhost, ctx.params["name"])
    return NO_CONTENT


@route("POST", "/api/queues/{vhost}/{name}/get", vhost=True)
def get_messages(ctx: Context) -> Any:
    doc = ctx.object(("count", "ackmode", "encoding", "truncate", "requeue", "vhost", "name",
                      "queue", "payload_file"), required=True)
    truncate = as_int(doc, "truncate", 0) if doc.get("truncate") not in (None, "") else None
    ackmode = as_str(doc, "ackmode")
    if ackmode is None:  # RabbitMQ before 3.7 took requeue=true|false
        ackmode = "ack_requeue_true" if as_bool(doc, "requeue", True) else "ack_requeue_false"
    count = as_int(doc, "count", 1)
    if count < 1:
        raise bad_request("count must be at least 1")
    return ctx.admin.get_messages(ctx.user, ctx.vhost, ctx.params["name"], count=count,
                                  ackmode=ackmode, encoding=as_str(doc, "encoding", "auto")
                                  or "auto", truncate=truncate)


@route("GET", "/api/queues/{vhost}/{name}/bindings", vhost=True)
def queue_bindings(ctx: Context) -> Any:
    name = ctx.params["name"]
    ctx.admin.queue_info(ctx.vhost, name)
    return listing.apply([b for b in ctx.admin.bindings(ctx.vhost)
                          if b["destination"] == name and b["destination_type"] == "queue"],
                         ctx.query)


# -- bindings -------------------------------------------------------------------------------
_KINDS = {"q": "queue", "e": "exchange"}


@route("GET", "/api/bindings")
def list_bindings(ctx: Context) -> Any:
    return listing.apply(_visible(ctx, ctx.admin.bindings()), ctx.query)


@route("GET", "/api/bindings/{vhost}", vhost=True)
def list_vhost_bindings(ctx: Context) -> Any:
    return listing.apply(ctx.admin.bindings(ctx.vhost), ctx.query)


def _between(ctx: Context, kind: str) -> list[dict[str, Any]]:
    source = _exchange_name(ctx.params["source"])
    ctx.admin.exchange_info(ctx.vhost, source)
    dest = ctx.params["destination"]
    if kind == "queue":
        ctx.admin.queue_info(ctx.vhost, dest)
    else:
        ctx.admin.exchange_info(ctx.vhost, dest)
    return [b for b in ctx.admin.bindings(ctx.vhost)
            if b["source"] == source and b["destination"] == dest
            and b["destination_type"] == kind]


def _post_binding(ctx: Context, kind: str) -> Any:
    doc = ctx.object(("routing_key", "arguments", "vhost", "source", "destination",
                      "destination_type"), required=False)
    source = _exchange_name(ctx.params["source"])
    if not source:
        raise errors.AccessRefused("operation not permitted on the default exchange")
    key = ctx.admin.bind(ctx.user, ctx.vhost, source, kind, ctx.params["destination"],
                         as_str(doc, "routing_key", "") or "", as_dict(doc, "arguments"))
    return Reply(201, headers={"Location": quote(key, safe="")})


def _get_binding(ctx: Context, kind: str) -> Any:
    for b in _between(ctx, kind):
        if b["properties_key"] == ctx.params["props"]:
            return listing.one(b, ctx.query)
    raise not_found()


def _delete_binding(ctx: Context, kind: str) -> Any:
    ctx.admin.unbind(ctx.user, ctx.vhost, _exchange_name(ctx.params["source"]), kind,
                     ctx.params["destination"], ctx.params["props"])
    return NO_CONTENT


for _char, _kind in _KINDS.items():
    def _make(kind: str) -> None:
        base = "/api/bindings/{vhost}/e/{source}/" + ("q" if kind == "queue" else "e") + \
            "/{destination}"
        route("GET", base, vhost=True)(
            lambda ctx: listing.apply(_between(ctx, kind), ctx.query))
        route("POST", base, vhost=True)(lambda ctx: _post_binding(ctx, kind))
        route("GET", base + "/{props}", vhost=True)(lambda ctx: _get_binding(ctx, kind))
        route("DELETE", base + "/{props}", vhost=True)(lambda ctx: _delete_binding(ctx, kind))
    _make(_kind)
