"""A small etcd v3 client over etcd's HTTP/JSON gateway (aiohttp).

Why the gateway and not `aetcd` (gRPC): etcd serves the same v3 API as JSON on its client
port (https://etcd.io/docs/v3.4/dev-guide/api_grpc_gateway/), so the broker needs only
aiohttp -- no grpcio wheel, no generated stubs -- and the few calls the cluster makes (range,
put, txn, lease grant / keep-alive / revoke) are one POST each. Keys and values travel
base64-encoded; int64 fields come back as strings, and zero / false fields are omitted.

Several endpoints may be given (a 3-member etcd): a request that cannot reach one tries the
next; etcd itself forwards writes to its Raft leader.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp

REQUEST_TIMEOUT = 2.0


class EtcdError(Exception):
    """etcd could not be reached or refused a request."""


def _b64(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def parse_endpoints(url: str) -> list[str]:
    """`etcd://h1:2379,h2:2379` (or http:// / https://) -> ["http://h1:2379", ...]."""
    scheme = "http"
    for prefix, sch in (("etcd://", "http"), ("etcds://", "https"), ("http://", "http"),
                        ("https://", "https")):
        if url.startswith(prefix):
            url, scheme = url[len(prefix):], sch
            break
    hosts = [h.strip().rstrip("/") for h in url.split(",") if h.strip()]
    if not hosts:
        raise ValueError("no etcd endpoint given")
    return [f"{scheme}://{h if ':' in h else h + ':2379'}" for h in hosts]


class KeyValue:
    __slots__ = ("key", "value", "create_revision", "mod_revision", "lease")

    def __init__(self, kv: dict[str, Any]) -> None:
        self.key = _unb64(kv.get("key")).decode()
        self.value = _unb64(kv.get("value"))
        self.create_revision = int(kv.get("create_revision", 0))
        self.mod_revision = int(kv.get("mod_revision", 0))
        self.lease = int(kv.get("lease", 0))

    def json(self) -> Any:
        return json.loads(self.value) if self.value else None


class Etcd:
    def __init__(self, endpoints: list[str]) -> None:
        self.endpoints = list(endpoints)
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        last: Exception | None = None
        for i, endpoint in enumerate(list(self.endpoints)):
            try:
                async with self._session.post(endpoint + path, json=body) as resp:
                    data = await resp.json(content_type=None)
                    if resp.status != 200:
                        raise EtcdError(f"etcd {path}: {resp.status} {data}")
                    if i:  # remember the endpoint that answered
                        self.endpoints.insert(0, self.endpoints.pop(i))
                    return data or {}
            except EtcdError:
                raise
            except Exception as exc:  # connection refused, timeout: next endpoint
                last = exc
        raise EtcdError(f"etcd unreachable ({self.endpoints}): {last!r}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- key-value ------------------------------------------------------------------------
    async def get(self, key: str) -> KeyValue | None:
        data = await self._post("/v3/kv/range", {"key": _b64(key)})
        kvs = data.get("kvs") or []
        return KeyValue(kvs[0]) if kvs else None

    async def get_prefix(self, prefix: str) -> list[KeyValue]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        data = await self._post("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)})
        return [KeyValue(kv) for kv in data.get("kvs") or []]

    async def put(self, key: str, value: Any, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(json.dumps(value))}
        if lease:
            body["lease"] = str(lease)
        data = await self._post("/v3/kv/put", body)
        return int(data.get("header", {}).get("revision", 0))

    async def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
                  failure: list[dict[str, Any]] | None = None) -> tuple[bool, int]:
        """An atomic compare-and-swap; (succeeded, revision of the transaction)."""
        data = await self._post("/v3/kv/txn", {"compare": compare, "success": success,
                                               "failure": failure or []})
        return bool(data.get("succeeded", False)), int(data.get("header", {}).get("revision", 0))

    # -- leases ---------------------------------------------------------------------------
    async def grant(self, ttl: int) -> int:
        data = await self._post("/v3/lease/grant", {"TTL": str(ttl)})
        if "ID" not in data:
            raise EtcdError(f"lease grant refused: {data}")
        return int(data["ID"])

    async def keepalive(self, lease: int) -> int:
        """Refresh a lease; its remaining TTL in seconds (<= 0: the lease is gone)."""
        data = await self._post("/v3/lease/keepalive", {"ID": str(lease)})
        result = data.get("result", data)
        return int(result.get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        await self._post("/v3/lease/revoke", {"ID": str(lease)})


def keepalive_blocking(endpoints: list[str], lease: int) -> int:
    """`Etcd.keepalive` without an event loop (urllib), for a thread that keeps the lease
    while the event loop is busy recovering a data dir; the TTL left, <= 0 if gone."""
    import urllib.request

    body = json.dumps({"ID": str(lease)}).encode()
    last: Exception | None = None
    for endpoint in endpoints:
        req = urllib.request.Request(endpoint + "/v3/lease/keepalive", body,
                                     {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as resp:
                data = json.loads(resp.read() or b"{}")
            return int(data.get("result", data).get("TTL", 0))
        except Exception as exc:  # next endpoint
            last = exc
    raise EtcdError(f"etcd unreachable ({endpoints}): {last!r}")


# -- transaction helpers (etcd's Compare / RequestOp as JSON) -------------------------------
def created_at(key: str, revision: int) -> dict[str, Any]:
    """Compare: `key`'s create_revision equals `revision` (0: the key does not exist)."""
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL",
            "create_revision": str(revision)}


def modified_at(key: str, revision: int) -> dict[str, Any]:
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def put_op(key: str, value: Any, lease: int = 0) -> dict[str, Any]:
    op: dict[str, Any] = {"key": _b64(key), "value": _b64(json.dumps(value))}
    if lease:
        op["lease"] = str(lease)
    return {"requestPut": op}


def delete_op(key: str) -> dict[str, Any]:
    return {"requestDeleteRange": {"key": _b64(key)}}
