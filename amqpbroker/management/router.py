"""Routes of the API, matched on the raw (still percent-encoded) path.

RabbitMQ's paths put a vhost in one segment, so the default vhost `/` is written `%2F`:
matching the raw path segment by segment, then decoding each segment, keeps `/` and `%2F`
apart (a decoded path could not tell `/api/queues/%2F/q` from `/api/queues///q`).

    @route("GET", "/api/queues/{vhost}/{name}", access="management", vhost=True)
    def get_queue(ctx): ...

`access` is the least user tag the endpoint needs (see auth.py); `vhost=True` means the
user must be allowed into the vhost named in the path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote

from amqpbroker.management.errors import HttpError, bad_request


@dataclass
class Route:
    method: str
    parts: tuple[str, ...]
    handler: Callable[["Context"], Any]
    access: str
    vhost: bool


ROUTES: list[Route] = []


def route(method: str, path: str, access: str = "management", vhost: bool = False
          ) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        ROUTES.append(Route(method, tuple(path.strip("/").split("/")), fn, access, vhost))
        return fn
    return register


def match(method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
    """The route for a request, with its decoded path parameters. 404 for an unknown path,
    405 for a known path with another method."""
    raw_path = raw_path.split("?", 1)[0]
    segments = raw_path.strip("/").split("/") if raw_path.strip("/") else []
    allowed: list[str] = []
    for r in ROUTES:
        if len(r.parts) != len(segments):
            continue
        params: dict[str, str] = {}
        for part, seg in zip(r.parts, segments):
            if part.startswith("{"):
                params[part[1:-1]] = unquote(seg, errors="strict") if _decodable(seg) else seg
            elif part != seg:
                break
        else:
            if r.method == method or (method == "HEAD" and r.method == "GET"):
                return r, params
            allowed.append(r.method)
    if allowed:
        raise HttpError(405, "method_not_allowed", f"{method} is not allowed here",
                        {"Allow": ", ".join(sorted(set(allowed)))})
    raise HttpError(404, "Object Not Found", "Not Found")


def _decodable(seg: str) -> bool:
    try:
        unquote(seg, errors="strict")
        return True
    except UnicodeDecodeError:
        raise bad_request(f"path segment '{seg}' is not valid UTF-8") from None


@dataclass
class Context:
    """What a handler gets: the facade, who asks, path and query parameters, the body."""

    admin: Any
    user: Any
    params: dict[str, str]
    query: dict[str, str]
    raw_body: bytes
    method: str
    headers: Any = None
    stats: Any = None
    tags: set[str] = field(default_factory=set)

    def json(self, required: bool = True) -> Any:
        if not self.raw_body.strip():
            if required:
                raise bad_request("a JSON body is required")
            return {}
        try:
            return json.loads(self.raw_body)
        except (ValueError, RecursionError):
            raise bad_request("not_json") from None

    def object(self, allowed: tuple[str, ...] | None = None, required: bool = False
               ) -> dict[str, Any]:
        """The body as a JSON object; with `allowed`, any other key is a 400."""
        doc = self.json(required)
        if not isinstance(doc, dict):
            raise bad_request("the body must be a JSON object")
        if allowed is not None:
            # rabbitmqadmin sends the object's vhost and name in every body.
            unknown = sorted(set(doc) - set(allowed) - {"vhost", "name"})
            if unknown:
                raise bad_request(f"unknown field(s): {', '.join(unknown)}")
        return doc

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("true", "1", "yes")

    @property
    def vhost(self) -> str:
        return self.params["vhost"]


@dataclass
class Reply:
    """A non-default answer: a status without body (201, 204), headers, or a body."""

    status: int = 204
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


CREATED = Reply(201)
NO_CONTENT = Reply(204)


def created_or_updated(created: bool) -> Reply:
    return Reply(201) if created else Reply(204)
