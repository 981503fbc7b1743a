"""Reading request bodies as RabbitMQ does: booleans may come as "true"/"false" strings
(rabbitmqadmin sends them so), tags as a comma-separated string or a list."""

from __future__ import annotations

from typing import Any

from amqpbroker.management.errors import bad_request


def as_bool(doc: dict[str, Any], key: str, default: bool) -> bool:
    value = doc.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad_request(f"{key} must be true or false, got {value!r}")


def as_str(doc: dict[str, Any], key: str, default: str | None = None,
           required: bool = False) -> str | None:
    if key not in doc:
        if required:
            raise bad_request(f"{key} is required")
        return default
    value = doc[key]
    if not isinstance(value, str):
        raise bad_request(f"{key} must be a string, got {value!r}")
    return value


def as_dict(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{key} must be an object, got {value!r}")
    return value


def as_int(doc: dict[str, Any], key: str, default: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f"{key} must be an integer, got {value!r}")
    return value


def tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return [t.strip() for t in value if t.strip()]
    raise bad_request("tags must be a comma-separated string or a list of strings")
