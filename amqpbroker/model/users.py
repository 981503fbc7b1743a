"""Users, password hashes and per-vhost permissions, with RabbitMQ's semantics.

Password hashes use RabbitMQ's default scheme (rabbit_password_hashing_sha256): base64 of a
4-byte random salt followed by SHA-256(salt + UTF-8 password), so a hash can be copied from
`rabbitmqctl hash_password` or a definitions export
(https://www.rabbitmq.com/docs/passwords#computing-password-hash).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = os.urandom(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except ValueError:
        return False
    if len(raw) != 36:
        return False
    salt, digest = raw[:4], raw[4:]
    candidate = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return hmac.compare_digest(candidate, digest)


@dataclass
class Permission:
    """configure / write / read regular expressions (https://www.rabbitmq.com/docs/access-control)."""

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"

    def __post_init__(self) -> None:
        self._compiled = {k: re.compile(getattr(self, k)) for k in ("configure", "write", "read")}

    def allows(self, kind: str, resource: str) -> bool:
        pattern = getattr(self, kind)
        # RabbitMQ: an empty pattern matches nothing; the match is anchored at the start
        # (Erlang re:run with ^-anchored user patterns is the convention; users write ^...$).
        if pattern == "":
            return False
        return self._compiled[kind].search(resource) is not None


@dataclass
class User:
    name: str
    password_hash: str
    tags: list[str] = field(default_factory=list)
    permissions: dict[str, Permission] = field(default_factory=dict)

    def check_password(self, password: str) -> bool:
        return check_password(password, self.password_hash)
