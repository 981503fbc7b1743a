"""RabbitMQ's list parameters (https://www.rabbitmq.com/docs/http-api-reference):

    columns=a,b.c        keep only these keys (dotted paths reach into nested objects)
    sort=key             sort by a key (dotted paths too); sort_reverse=true
    name=re, use_regex   filter on name (substring, or a regular expression)
    page, page_size      one page, in the pagination envelope:
                         {filtered_count, item_count, items, page, page_count, page_size,
                          total_count}
    disable_stats=true   leave out the statistics (message_stats, rates)
"""

from __future__ import annotations

import re
from typing import Any

from amqpbroker.management.errors import bad_request

MAX_PAGE_SIZE = 500  # RabbitMQ's limit
STATS_KEYS = ("message_stats",)


def apply(items: list[dict[str, Any]], query: dict[str, str]) -> Any:
    if query.get("disable_stats", "").lower() == "true":
        items = [strip_stats(i) for i in items]
    total = len(items)
    name = query.get("name")
    if name:
        if query.get("use_regex", "").lower() == "true":
            try:
                pattern = re.compile(name)
            except re.error as exc:
                raise bad_request(f"invalid regular expression '{name}': {exc}") from None
            items = [i for i in items if pattern.search(str(i.get("name", "")))]
        else:
            items = [i for i in items if name in str(i.get("name", ""))]
    sort = query.get("sort")
    reverse = query.get("sort_reverse", "").lower() == "true"
    if sort:
        items = sorted(items, key=lambda i: _sort_key(_dig(i, sort)), reverse=reverse)
    elif reverse:
        items = list(reversed(items))
    columns = query.get("columns")
    if columns:
        wanted = [c for c in columns.split(",") if c]
        items = [project(i, wanted) for i in items]
    if "page" not in query:
        return items
    page = _positive(query, "page", 1)
    size = _positive(query, "page_size", 100)
    if size > MAX_PAGE_SIZE:
        raise bad_request(f"page_size must be at most {MAX_PAGE_SIZE}")
    filtered = len(items)
    page_count = max(1, -(-filtered // size))
    if page > page_count:
        raise bad_request(f"page number {page} is larger than the page count {page_count}")
    chunk = items[(page - 1) * size: page * size]
    return {"filtered_count": filtered, "item_count": len(chunk), "items": chunk,
            "page": page, "page_count": page_count, "page_size": size,
            "total_count": total}


def one(item: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    if query.get("disable_stats", "").lower() == "true":
        item = strip_stats(item)
    columns = query.get("columns")
    if columns:
        item = project(item, [c for c in columns.split(",") if c])
    return item


def strip_stats(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items()
            if k not in STATS_KEYS and not k.endswith("_details")}


def project(item: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in columns:
        parts = column.split(".")
        value: Any = item
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            target = out
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = value
    return out


def _dig(item: dict[str, Any], path: str) -> Any:
    value: Any = item
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, 0, "")
    if isinstance(value, bool):
        return (1, int(value), "")
    if isinstance(value, (int, float)):
        return (1, value, "")
    return (2, 0, str(value))


def _positive(query: dict[str, str], key: str, default: int) -> int:
    raw = query.get(key)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise bad_request(f"{key} must be a positive integer, got '{raw}'")
    return int(raw)
