"""GET/POST /api/definitions (whole broker) and /api/definitions/{vhost}: RabbitMQ's
definitions format (https://www.rabbitmq.com/docs/definitions).

Import is live and all-or-nothing for the topology: the file is validated by the
configuration loader (the same rules as at startup), checked against what the broker holds
by a dry run, and only then applied through the facade: vhosts, users and permissions are
stored as live changes, exchanges, queues and bindings declared through the same code
paths as clients' declares.
"""

from __future__ import annotations

from typing import Any

import structlog

from amqpbroker import __version__
from amqpbroker.config import ConfigError, load_config
from amqpbroker.config.runtime_keys import normalize
from amqpbroker.management import listing  # noqa: F401
from amqpbroker.management.errors import bad_request
from amqpbroker.model import policy as policy_model
from amqpbroker.management.router import NO_CONTENT, Context, route

log = structlog.get_logger("amqpbroker.management")

TOPOLOGY_KEYS = ("vhosts", "users", "permissions", "exchanges", "queues", "bindings")
KNOWN_KEYS = TOPOLOGY_KEYS + ("rabbit_version", "rabbitmq_version", "product_name",
                              "product_version", "topic_permissions", "parameters",
                              "global_parameters", "policies", "operator_policies")


def _header() -> dict[str, Any]:
    return {"rabbit_version": __version__, "rabbitmq_version": __version__,
            "product_name": "amqpbroker", "product_version": __version__}


def _durable_topology(admin: Any, vhost: str | None, with_vhost: bool) -> dict[str, Any]:
    def strip(item: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        out = {k: item[k] for k in keys}
        if not with_vhost:
            out.pop("vhost", None)
        return out

    exchanges = [strip(e, ("name", "vhost", "type", "durable", "auto_delete", "internal",
                           "arguments"))
                 for e in admin.exchanges(vhost)
                 if e["durable"] and e["name"] and not e["name"].startswith("amq.")]
    queues = [strip(q, ("name", "vhost", "durable", "auto_delete", "arguments"))
              for q in admin.queues(vhost) if q["durable"] and not q["exclusive"]]
    durable_q = {(q["vhost"], q["name"]) for q in admin.queues(vhost) if q["durable"]}
    durable_x = {(e["vhost"], e["name"]) for e in admin.exchanges(vhost) if e["durable"]}
    bindings = [strip(b, ("source", "vhost", "destination", "destination_type", "routing_key",
                          "arguments"))
                for b in admin.bindings(vhost)
                if b["source"] and (b["vhost"], b["source"]) in durable_x
                and (b["vhost"], b["destination"]) in
                (durable_q if b["destination_type"] == "queue" else durable_x)]
    return {"queues": queues, "exchanges": exchanges, "bindings": bindings}


@route("GET", "/api/definitions", access="administrator")
def export_all(ctx: Context) -> Any:
    admin = ctx.admin
    limits = {v["vhost"]: v["value"] for v in admin.vhost_limits()}
    out = _header()
    out["users"] = [{k: u[k] for k in ("name", "password_hash", "hashing_algorithm", "tags",
                                       "limits")} for u in admin.users()]
    out["vhosts"] = []
    for name in admin.vhost_names():
        info = admin.vhost_info(name)
        out["vhosts"].append({"name": name, "description": info["description"],
                              "tags": info["tags"], "metadata": info["metadata"],
                              "default_queue_type": info["default_queue_type"],
                              "limits": limits.get(name, {})})
    out["permissions"] = admin.permissions()
    out["topic_permissions"] = admin.topic_permissions()
    out["parameters"] = admin.parameters()
    out["global_parameters"] = admin.global_parameters()
    out["policies"] = admin.policies("policy")
    out["operator_policies"] = admin.policies("operator_policy")
    out.update(_durable_topology(admin, None, True))
    return _download(ctx, out)


@route("GET", "/api/definitions/{vhost}", access="administrator", vhost=True)
def export_vhost(ctx: Context) -> Any:
    out = {"rabbit_version": __version__,
           "parameters": [{k: v for k, v in p.items() if k != "vhost"}
                          for p in ctx.admin.parameters(vhost=ctx.vhost)],
           "policies": [{k: v for k, v in p.items() if k != "vhost"}
                        for p in ctx.admin.policies("policy", ctx.vhost)]}
    out.update(_durable_topology(ctx.admin, ctx.vhost, False))
    return _download(ctx, out)


def _download(ctx: Context, doc: dict[str, Any]) -> Any:
    from amqpbroker.management.router import Reply

    if ctx.query.get("download"):
        return Reply(200, doc, {"Content-Disposition":
                                f'attachment; filename="{ctx.query["download"]}"'})
    return doc


@route("POST", "/api/definitions", access="administrator")
def import_all(ctx: Context) -> Any:
    _import(ctx, _document(ctx), None)
    return NO_CONTENT


@route("POST", "/api/definitions/{vhost}", access="administrator", vhost=True)
def import_vhost(ctx: Context) -> Any:
    doc = _document(ctx)
    for key in ("users", "vhosts", "permissions", "topic_permissions", "global_parameters"):
        if doc.get(key):
            raise bad_request(f"a vhost's definitions cannot contain '{key}'")
    for key in ("exchanges", "queues", "bindings", "parameters", "policies"):
        for item in doc.get(key) or []:
            if isinstance(item, dict):
                item["vhost"] = ctx.vhost
    _import(ctx, doc, ctx.vhost)
    return NO_CONTENT


def _document(ctx: Context) -> dict[str, Any]:
    doc = ctx.json()
    if isinstance(doc, dict) and "file" in doc and isinstance(doc["file"], str):
        import json  # the management UI's upload form wraps the file

        try:
            doc = json.loads(doc["file"])
        except ValueError:
            raise bad_request("not_json") from None
    if not isinstance(doc, dict):
        raise bad_request("definitions must be a JSON object")
    unknown = sorted(set(doc) - set(KNOWN_KEYS))
    if unknown:
        raise bad_request(f"unknown key(s) in definitions: {', '.join(unknown)}")
    for key in KNOWN_KEYS[:6] + ("topic_permissions", "parameters", "global_parameters",
                                 "policies", "operator_policies"):
        if key in doc and doc[key] is not None and not isinstance(doc[key], list):
            raise bad_request(f"'{key}' must be a list")
        for item in doc.get(key) or []:
            if not isinstance(item, dict):
                raise bad_request(f"every entry of '{key}' must be an object")
    return doc


def _import(ctx: Context, doc: dict[str, Any], only_vhost: str | None) -> None:
    admin = ctx.admin
    # RabbitMQ 3.x shapes (operator policies and vhost limits as parameters, [k, v] lists)
    # and ha-* keys, dropped with a warning (config/runtime_keys.py)
    doc, notes = normalize(doc)
    for note in notes:
        log.warning("definitions.import_skipped_keys", note=note)
    topology = {k: doc[k] for k in TOPOLOGY_KEYS if doc.get(k)}
    listed = {v.get("name") for v in topology.get("vhosts", [])}
    topology["vhosts"] = [*topology.get("vhosts", []),
                          *({"name": n} for n in admin.vhost_names() if n not in listed)]
    try:
        config = load_config(topology)
    except ConfigError as exc:
        raise bad_request(str(exc)) from None
    problems = admin.topology_conflicts(config)
    if problems:
        raise bad_request("; ".join(problems))
    policies = [(kind, p) for kind, key in (("policy", "policies"),
                                            ("operator_policy", "operator_policies"))
                for p in doc.get(key) or []]
    for kind, p in policies:  # refuse before changing anything
        if not isinstance(p.get("definition"), dict) or "pattern" not in p:
            raise bad_request(f"policy '{p.get('name')}' needs a pattern and a definition")
        if p["definition"]:
            try:
                policy_model.validate(kind, p["definition"])
            except policy_model.PolicyError as exc:
                raise bad_request(f"policy '{p.get('name')}': {exc}") from None
    raw_vhosts = {v.get("name"): v for v in doc.get("vhosts") or []}
    for v in config.vhosts:
        if v.name in listed:
            raw = raw_vhosts.get(v.name, {})
            meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
            admin.put_vhost(v.name, description=raw.get("description", meta.get("description")),
                            tags=raw.get("tags") if isinstance(raw.get("tags"), list) else None,
                            default_queue_type=raw.get("default_queue_type"))
            for name, value in (raw.get("limits") or {}).items():
                admin.set_vhost_limit(v.name, name, value)
    raw_users = {u.get("name"): u for u in doc.get("users") or []}
    for u in config.users or []:
        admin.put_user(u.name, password_hash=u.password_hash,
                       hashing_algorithm=u.hashing_algorithm, tags=u.tags)
        for name, value in (raw_users.get(u.name, {}).get("limits") or {}).items():
            admin.set_user_limit(u.name, name, value)
    for p in config.permissions:
        admin.set_permission(p.user, p.vhost, p.configure, p.write, p.read)
    for t in doc.get("topic_permissions") or []:
        admin.set_topic_permission(t["user"], t["vhost"], t["exchange"], t.get("write", ".*"),
                                   t.get("read", ".*"))
    for p in doc.get("parameters") or []:
        admin.put_parameter(p["component"], p["vhost"], p["name"], p["value"])
    for p in doc.get("global_parameters") or []:
        admin.put_global_parameter(p["name"], p["value"])
    for kind, p in policies:
        definition = p["definition"]
        if definition:
            admin.put_policy(kind, p.get("vhost", only_vhost or "/"), p["name"], p["pattern"],
                             definition, p.get("priority", 0), p.get("apply-to", "all"))
    for e in config.exchanges:
        admin.declare_exchange(None, e.vhost, e.name, e.type, durable=e.durable,
                               auto_delete=e.auto_delete, internal=e.internal,
                               arguments=e.arguments)
    for q in config.queues:
        admin.declare_queue(None, q.vhost, q.name, durable=q.durable,
                            auto_delete=q.auto_delete, arguments=q.arguments)
    for b in config.bindings:
        admin.bind(None, b.vhost, b.source, b.destination_type, b.destination, b.routing_key,
                   b.arguments)
    log.info("definitions.imported", vhost=only_vhost, exchanges=len(config.exchanges),
             queues=len(config.queues), bindings=len(config.bindings),
             users=len(config.users or []), vhosts=len(config.vhosts))
