"""The replication protocol's bytes (sans-IO): frames, change encoding, member proof.

A frame is `length:u32 seq:u64 crc32:u32` then `length` payload bytes; the CRC covers the
payload, so a corrupted frame is detected and the link dropped (the follower then
resyncs). The payload's first byte says what it is:

    A add(queue, id, message)   R remove(queue, id)   M mark_delivered(queue, id)
    X delete_queue(queue)       F definition(op JSON)
    S stream_append(stream, offset, timestamp, record)   O stream_offset(stream, name, offset)
    T stream_truncate(stream, first offset)               D stream_delete(stream)
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
STREAM_REC = struct.Struct(">QQB")  # offset, timestamp ms, has filter value
FIELD = struct.Struct(">I")
F_PERSISTENT, F_EXPIRATION = 1, 2
MAX_FRAME = 1 << 30
_UTF8, _SP = "utf-8", "surrogatepass"  # stream fields: any str the log holds


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


def encode_stream_append(queue_key: str, offset: int, timestamp_ms: int, exchange: str,
                         routing_key: str, properties: bytes, body: bytes,
                         filter_value: str | None) -> bytes:
    return b"S" + STREAM_REC.pack(offset, timestamp_ms, filter_value is not None) + _fields(
        queue_key.encode(_UTF8, _SP), exchange.encode(_UTF8, _SP),
        routing_key.encode(_UTF8, _SP), properties, body,
        (filter_value or "").encode(_UTF8, _SP))


def encode_stream_offset(queue_key: str, name: str, offset: int) -> bytes:
    return b"O" + ID.pack(offset) + _fields(queue_key.encode(_UTF8, _SP),
                                            name.encode(_UTF8, _SP))


def encode_stream_truncate(queue_key: str, first_offset: int) -> bytes:
    return b"T" + ID.pack(first_offset) + queue_key.encode(_UTF8, _SP)


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
        if kind == b"S":
            offset, ts, has_filter = STREAM_REC.unpack_from(payload, 1)
            qk, ex, rk, props, body, fv = _read_fields(payload, 1 + STREAM_REC.size, 6)
            return "stream_append", (qk.decode(_UTF8, _SP), offset, ts, ex.decode(_UTF8, _SP), rk.decode(_UTF8, _SP),
                                     bytes(props), bytes(body),
                                     fv.decode(_UTF8, _SP) if has_filter else None)
        if kind == b"O":
            (offset,) = ID.unpack_from(payload, 1)
            qk, name = _read_fields(payload, 1 + ID.size, 2)
            return "stream_offset", (qk.decode(_UTF8, _SP), name.decode(_UTF8, _SP), offset)
        if kind == b"T":
            (first,) = ID.unpack_from(payload, 1)
            return "stream_truncate", (payload[1 + ID.size:].decode(_UTF8, _SP), first)
        if kind == b"D":
            return "stream_delete", (payload[1:].decode(_UTF8, _SP),)
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
