"""A shovel's definition: the value of a runtime parameter of component `shovel`, with the
keys of RabbitMQ's dynamic shovels (https://www.rabbitmq.com/docs/shovel-dynamic), checked
before anything connects. Only AMQP 0-9-1 (`amqp://`, `amqps://`) on either side.

    {"src-uri": "amqp://user:pw@rabbit:5672/%2F", "src-queue": "orders",
     "dest-uri": "amqp://", "dest-queue": "orders", "ack-mode": "on-confirm"}

`amqp://` without a host means this broker, in the shovel's own vhost (RabbitMQ: the
local node).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

ACK_MODES = ("on-confirm", "on-publish", "no-ack")
KNOWN_KEYS = {
    "src-uri", "src-protocol", "src-queue", "src-exchange", "src-exchange-key",
    "src-prefetch-count", "src-delete-after", "src-consumer-args", "src-queue-args",
    "dest-uri", "dest-protocol", "dest-queue", "dest-exchange", "dest-exchange-key",
    "dest-add-forward-headers", "add-forward-headers", "dest-add-timestamp-header",
    "dest-publish-properties", "dest-queue-args", "ack-mode", "reconnect-delay",
    # accepted from RabbitMQ's older / 4.x definitions, no effect here
    "prefetch-count", "delete-after", "src-predeclared", "dest-predeclared",
}


class ShovelSpecError(ValueError):
    """An invalid definition; `problems` lists every problem (RabbitMQ: 400 with reasons)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class ShovelSpec:
    src_uris: tuple[str, ...]
    dest_uris: tuple[str, ...]
    src_queue: str | None = None
    src_exchange: str | None = None
    src_exchange_key: str = ""
    dest_queue: str | None = None
    dest_exchange: str | None = None
    dest_exchange_key: str | None = None  # None: the message's own routing key
    prefetch: int = 1000
    delete_after: str | int = "never"  # "never", "queue-length" or a message count
    ack_mode: str = "on-confirm"
    add_forward_headers: bool = False
    add_timestamp_header: bool = False
    reconnect_delay: float = 5.0
    publish_properties: dict[str, Any] = field(default_factory=dict)
    value: dict[str, Any] = field(default_factory=dict)  # as given, for export

    @property
    def src_uri(self) -> str:
        return self.src_uris[0]

    @property
    def dest_uri(self) -> str:
        return self.dest_uris[0]


def parse_spec(value: Any) -> ShovelSpec:
    """Validate a definition; ShovelSpecError lists every problem."""
    problems: list[str] = []
    if not isinstance(value, Mapping):
        raise ShovelSpecError([f"a shovel definition is a JSON object, got {value!r}"])
    for key in value:
        if key not in KNOWN_KEYS:
            problems.append(f"unknown key '{key}'")
    src = _uris(value, "src-uri", problems)
    dest = _uris(value, "dest-uri", problems)
    for side in ("src", "dest"):
        proto = value.get(f"{side}-protocol", "amqp091")
        if proto != "amqp091":
            problems.append(f"{side}-protocol '{proto}' is not supported (only amqp091)")
    src_queue = _str(value, "src-queue", problems)
    src_exchange = _str(value, "src-exchange", problems)
    if (src_queue is None) == (src_exchange is None):
        problems.append("exactly one of src-queue and src-exchange must be set")
    if src_queue is not None and "src-exchange-key" in value:
        problems.append("src-exchange-key only goes with src-exchange")
    dest_queue = _str(value, "dest-queue", problems)
    dest_exchange = _str(value, "dest-exchange", problems)
    if dest_queue is not None and dest_exchange is not None:
        problems.append("dest-queue and dest-exchange are mutually exclusive")
    if dest_queue is not None and "dest-exchange-key" in value:
        problems.append("dest-exchange-key only goes with dest-exchange")
    ack_mode = value.get("ack-mode", "on-confirm")
    if ack_mode not in ACK_MODES:
        problems.append(f"ack-mode must be one of {', '.join(ACK_MODES)}, got {ack_mode!r}")
    prefetch = value.get("src-prefetch-count", value.get("prefetch-count", 1000))
    if not _is_int(prefetch) or not 0 < prefetch <= 65535:
        problems.append(f"src-prefetch-count must be an integer in 1..65535, got {prefetch!r}")
    delete_after = value.get("src-delete-after", value.get("delete-after", "never"))
    if delete_after not in ("never", "queue-length") and not (
            _is_int(delete_after) and delete_after >= 0):
        problems.append("src-delete-after must be 'never', 'queue-length' or a "
                        f"non-negative integer, got {delete_after!r}")
    if delete_after == "queue-length" and src_queue is None:
        problems.append("src-delete-after 'queue-length' needs src-queue")
    delay = value.get("reconnect-delay", 5)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
        problems.append(f"reconnect-delay must be a non-negative number, got {delay!r}")
    forward = value.get("dest-add-forward-headers", value.get("add-forward-headers", False))
    stamp = value.get("dest-add-timestamp-header", False)
    for key, flag in (("dest-add-forward-headers", forward),
                      ("dest-add-timestamp-header", stamp)):
        if not isinstance(flag, bool):
            problems.append(f"{key} must be true or false, got {flag!r}")
    props = value.get("dest-publish-properties", {})
    if not isinstance(props, Mapping):
        problems.append("dest-publish-properties must be an object")
    if problems:
        raise ShovelSpecError(problems)
    return ShovelSpec(
        src_uris=tuple(src), dest_uris=tuple(dest), src_queue=src_queue,
        src_exchange=src_exchange, src_exchange_key=str(value.get("src-exchange-key", "")),
        dest_queue=dest_queue, dest_exchange=dest_exchange,
        dest_exchange_key=_str(value, "dest-exchange-key", problems),
        prefetch=int(prefetch), delete_after=delete_after, ack_mode=ack_mode,
        add_forward_headers=forward, add_timestamp_header=stamp,
        reconnect_delay=float(delay), publish_properties=dict(props), value=dict(value))


def _uris(value: Mapping[str, Any], key: str, problems: list[str]) -> list[str]:
    raw = value.get(key)
    uris = raw if isinstance(raw, list) else [raw]
    if raw is None or not uris:
        problems.append(f"{key} is required")
        return []
    for uri in uris:
        if not isinstance(uri, str) or urlsplit(uri).scheme not in ("amqp", "amqps"):
            problems.append(f"{key}: {uri!r} is not an amqp:// or amqps:// URI")
    return list(uris)


def _str(value: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    v = value.get(key)
    if v is not None and not isinstance(v, str):
        problems.append(f"{key} must be a string, got {v!r}")
        return None
    return v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
