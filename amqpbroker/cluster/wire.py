"""The replication protocol's bytes (sans-IO): frames, change encoding, member proof.

A frame is `length:u32 seq:u64 crc32:u32` then `length` payload bytes; the CRC covers the
payload, so a corrupted frame is detected and the link dropped (the follower then
resyncs). The payload's first byte says what it is:

    A add(queue, id, message)   R remove(queue, id)   M mark_delivered(queue, id)
    X delete_queue(queue)       F definition(op JSON)
    B snapshot begins (JSON)    E snapshot ends      H hello (JSON, follower -> leader)
    K ack (follower -> leader: everything up to `seq` is written and fsynced)

`id` is the leader store's `store_id` of the message: the follower maps it to its own.
Member proof: both sides send a random nonce and answer the other's with
HMAC-SHA256(cluster secret, role + nonce + node name), so only holders of the secret join.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
import zlib
from typing import Any

from amqpbroker.message import Message

HEADER = struct.Struct(">IQI")
ADD = struct.Struct(">BQBQ")  # flags, id, priority, enqueued_ms
ID = struct.Struct(">Q")
FIELD = struct.Struct(">I")
F_PERSISTENT, F_EXPIRATION = 1, 2
MAX_FRAME = 1 << 30


class WireError(Exception):
    """A frame that fails its checksum or cannot be decoded."""


def frame(seq: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), seq, zlib.crc32(payload)) + payload


def _fields(*parts: bytes) -> bytes:
    return b"".join(FIELD.pack(len(p)) + p for p in parts)


def _read_fields(data: bytes, pos: int, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        (size,) = FIELD.unpack_from(data, pos)
        pos += 4
        out.append(data[pos:pos + size])
        pos += size
    if pos != len(data):
        raise WireError("trailing bytes in a change")
    return out


def encode_add(queue_key: str, msg: Message, body: bytes, enqueued_ms: int) -> bytes:
    flags = (F_PERSISTENT if msg.persistent else 0) | (
        F_EXPIRATION if msg.expiration is not None else 0)
    return b"A" + ADD.pack(flags, msg.store_id, min(max(msg.priority or 0, 0), 255),
                           enqueued_ms) + _fields(
        queue_key.encode(), msg.exchange.encode(), msg.routing_key.encode(), msg.properties,
        body, (msg.expiration or "").encode())


def encode_ref(kind: bytes, queue_key: str, store_id: int) -> bytes:
    return kind + ID.pack(store_id) + queue_key.encode()


def encode_json(kind: bytes, value: Any) -> bytes:
    return kind + json.dumps(value, separators=(",", ":")).encode()


def decode(payload: bytes) -> tuple[str, tuple[Any, ...]]:
    """A payload -> (kind, arguments)."""
    try:
        kind = payload[:1]
        if kind == b"A":
            flags, sid, priority, enqueued_ms = ADD.unpack_from(payload, 1)
            qk, ex, rk, props, body, exp = _read_fields(payload, 1 + ADD.size, 6)
            msg = Message(ex.decode(), rk.decode(), bytes(props), bytes(body), len(body),
                          bool(flags & F_PERSISTENT), priority,
                          exp.decode() if flags & F_EXPIRATION else None)
            msg.enqueued_ms = enqueued_ms
            return "add", (qk.decode(), sid, msg)
        if kind in (b"R", b"M"):
            (sid,) = ID.unpack_from(payload, 1)
            name = "remove" if kind == b"R" else "mark_delivered"
            return name, (payload[1 + ID.size:].decode(), sid)
        if kind == b"X":
            return "delete_queue", (payload[1:].decode(),)
        if kind in (b"F", b"B", b"E", b"H"):
            name = {b"F": "definition", b"B": "snapshot_begin", b"E": "snapshot_end",
                    b"H": "hello"}[kind]
            return name, (json.loads(payload[1:]),)
        if kind == b"K":
            return "ack", ()
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"undecodable change: {exc}") from exc
    raise WireError(f"unknown change kind {kind!r}")


class FrameReader:
    """Cuts complete frames out of a byte stream, checking each one's CRC."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= HEADER.size:
            size, seq, crc = HEADER.unpack_from(buf, pos)
            if size > MAX_FRAME:
                raise WireError(f"frame of {size} bytes")
            end = pos + HEADER.size + size
            if len(buf) < end:
                break
            payload = bytes(buf[pos + HEADER.size:end])
            if zlib.crc32(payload) != crc:
                raise WireError(f"checksum mismatch in frame {seq}")
            out.append((seq, payload))
            pos = end
        del buf[:pos]
        return out


# -- member proof ---------------------------------------------------------------------------
def nonce() -> bytes:
    return os.urandom(16)


def proof(secret: str, role: bytes, challenge: bytes, node: str) -> bytes:
    return hmac.new(secret.encode(), role + challenge + node.encode(), hashlib.sha256).digest()


def check_proof(secret: str, role: bytes, challenge: bytes, node: str, answer: bytes) -> bool:
    return hmac.compare_digest(proof(secret, role, challenge, node), answer)
