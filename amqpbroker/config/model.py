"""What a configuration file says, once validated, and how problems with it are reported."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from amqpbroker.settings import Settings

Path = tuple  # ("queues", 0, "durable")


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(frozen=True)
class Problem:
    """One error or warning, located by file, line and key path."""

    source: str
    line: int | None
    path: str
    message: str = ""

    def with_message(self, message: str) -> "Problem":
        return dataclasses.replace(self, message=message)

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid or conflicts with the stored topology; `problems`
    lists every problem found (not only the first)."""

    def __init__(self, problems: list[Problem] | str, heading: str = "invalid configuration"):
        if isinstance(problems, str):
            problems = [Problem("config", None, "", problems)]
        self.problems = problems
        self.heading = heading
        n = len(problems)
        lines = [f"{heading} ({n} {'problem' if n == 1 else 'problems'}):"]
        lines += [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass
class VhostDef:
    name: str
    where: Problem


@dataclass
class UserDef:
    name: str
    password_hash: str
    hashing_algorithm: str
    tags: list[str]
    where: Problem


@dataclass
class PermissionDef:
    user: str
    vhost: str
    configure: str
    write: str
    read: str
    where: Problem


@dataclass
class ExchangeDef:
    vhost: str
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any]
    where: Problem


@dataclass
class QueueDef:
    vhost: str
    name: str
    durable: bool
    auto_delete: bool
    arguments: dict[str, Any]
    where: Problem


@dataclass
class BindingDef:
    vhost: str
    source: str
    destination: str
    destination_type: str  # "queue" or "exchange"
    routing_key: str
    arguments: dict[str, Any]
    where: Problem


@dataclass
class Config:
    source: str
    settings: Settings
    # Only the settings the file sets, by Settings field name (for layering on other bases).
    setting_values: dict[str, Any] = field(default_factory=dict)
    vhosts: list[VhostDef] = field(default_factory=list)
    users: list[UserDef] | None = None  # None: the file has no `users` key (keep guest)
    permissions: list[PermissionDef] = field(default_factory=list)
    exchanges: list[ExchangeDef] = field(default_factory=list)
    queues: list[QueueDef] = field(default_factory=list)
    bindings: list[BindingDef] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # Policies, limits, topic permissions, parameters (config/runtime_keys.py).
    runtime: Any = None

    def summary(self) -> str:
        s = self.settings
        listen = s.host if s.host else "every address"
        users = "default user only" if self.users is None else f"{len(self.users)} users"
        return (
            f"listening on {listen} port {s.port}; data dir: "
            f"{s.data_dir if s.data_dir is not None else 'none (in memory)'}\n"
            f"{len(self.vhosts)} vhosts, {users}, {len(self.permissions)} permissions, "
            f"{len(self.exchanges)} exchanges, {len(self.queues)} queues, "
            f"{len(self.bindings)} bindings"
        )
