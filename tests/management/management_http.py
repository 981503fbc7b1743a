"""A small HTTP client of the management API for the tests (aiohttp)."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import aiohttp


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Api:
    """`await api.get("/api/queues")` -> (status, parsed JSON or None)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.auth = ("guest", "guest")

    async def call(self, method: str, path: str, body: Any = None, *,
                   auth: tuple[str, str] | None = None, raw: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        hdrs = {"Content-Type": "application/json"}
        user = auth or self.auth
        if user is not None:
            hdrs["Authorization"] = basic(*user)
        hdrs.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None and len(data) > 1 << 20:  # aiohttp wants big bodies as files
            data = io.BytesIO(data)  # type: ignore[assignment]
        async with self.session.request(method, self.base + path, data=data,
                                        headers=hdrs) as r:
            text = await r.text()
            self.last_headers = r.headers
            return r.status, (json.loads(text) if text else None)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, body if body is not None else {}, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body if body is not None else {}, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, **kw)
