"""Users, password hashes and per-vhost permissions, with RabbitMQ's semantics.

Password hashes use RabbitMQ's scheme (rabbit_password): base64 of a 4-byte random salt
followed by HASH(salt + UTF-8 password), so a hash can be copied from
`rabbitmqctl hash_password` or a definitions export
(https://www.rabbitmq.com/docs/passwords#computing-password-hash). SHA-256 is RabbitMQ's
default (`rabbit_password_hashing_sha256`); the SHA-512 and legacy MD5 variants found in
older exports are checked too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field

SHA256 = "rabbit_password_hashing_sha256"
SHA512 = "rabbit_password_hashing_sha512"
MD5 = "rabbit_password_hashing_md5"
HASHING_ALGORITHMS = {SHA256: hashlib.sha256, SHA512: hashlib.sha512, MD5: hashlib.md5}
_SALT = 4


def hash_password(password: str, salt: bytes | None = None, algorithm: str = SHA256) -> str:
    salt = os.urandom(_SALT) if salt is None else salt
    digest = HASHING_ALGORITHMS[algorithm](salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def password_hash_problem(password_hash: str, algorithm: str = SHA256) -> str | None:
    """Why `password_hash` cannot be a hash of `algorithm` (None if it can).

    The empty string is valid: a user without a password, who cannot log in with PLAIN
    (RabbitMQ's `rabbitmqctl clear_password`).
    """
    fn = HASHING_ALGORITHMS.get(algorithm)
    if fn is None:
        return (f"unknown hashing algorithm '{algorithm}' "
                f"(expected one of: {', '.join(HASHING_ALGORITHMS)})")
    if password_hash == "":
        return None
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except (binascii.Error, ValueError):
        return "not valid base64"
    expected = _SALT + fn().digest_size
    if len(raw) != expected:
        return (f"decodes to {len(raw)} bytes, but a {algorithm} hash has {expected} "
                f"(4 bytes of salt + the digest)")
    return None


def check_password(password: str, password_hash: str, algorithm: str = SHA256) -> bool:
    if password_hash == "" or password_hash_problem(password_hash, algorithm) is not None:
        return False
    raw = base64.b64decode(password_hash, validate=True)
    salt, digest = raw[:_SALT], raw[_SALT:]
    candidate = HASHING_ALGORITHMS[algorithm](salt + password.encode("utf-8")).digest()
    return hmac.compare_digest(candidate, digest)


@dataclass
class Permission:
    """configure / write / read regular expressions (https://www.rabbitmq.com/docs/access-control).

    As in RabbitMQ (rabbit_auth_backend_internal): a resource name is allowed when the
    pattern matches anywhere in it (`re:run`, unanchored, so users write `^...$`), and the
    empty pattern is a synonym for `^$`, which no named resource matches. An invalid
    pattern raises `re.error` here, at construction.
    """

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"

    def __post_init__(self) -> None:
        self._compiled = {k: re.compile(getattr(self, k) or "^$")
                          for k in ("configure", "write", "read")}

    def allows(self, kind: str, resource: str) -> bool:
        return self._compiled[kind].search(resource) is not None


@dataclass
class User:
    name: str
    password_hash: str
    tags: list[str] = field(default_factory=list)
    permissions: dict[str, Permission] = field(default_factory=dict)
    hashing_algorithm: str = SHA256

    def check_password(self, password: str) -> bool:
        return check_password(password, self.password_hash, self.hashing_algorithm)
