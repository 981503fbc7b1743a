"""Server-generated names, in RabbitMQ's shapes (`amq.gen-…`, `amq.ctag-…`)."""

from __future__ import annotations

import base64
import os


def _token() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def server_named() -> str:
    """A server-named queue (spec: queue.declare with an empty name)."""
    return f"amq.gen-{_token()}"


def consumer_tag() -> str:
    """A server-generated consumer tag (basic.consume with an empty tag)."""
    return f"amq.ctag-{_token()}"
