"""Fast mutation of real captures (no hypothesis: a plain seeded PRNG, ~10x faster).

A capture is what a real client (aio-pika, pika, amqplib) sent after the handshake. A
mutant applies 1-4 edits: flip a bit, set a byte to an edge value (0x00, 0x7F, 0x80, 0xCE,
0xFF), rewrite a frame's size or type, cut, duplicate a slice, splice in another capture,
insert random bytes; then it is fed in chunks of a random size (frames split anywhere).
"""

from __future__ import annotations

import random
import struct

_EDGES = (0x00, 0x01, 0x7F, 0x80, 0xCE, 0xFE, 0xFF)
_SIZES = (0, 1, 4088, 4089, 131064, 131065, 2**31, 2**32 - 1)


def frame_starts(data: bytes) -> list[int]:
    starts, pos = [], 0
    while pos + 7 <= len(data):
        starts.append(pos)
        pos += 8 + struct.unpack_from(">I", data, pos + 3)[0]
    return starts or [0]


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(buf)
        if n == 0:
            buf += rng.randbytes(rng.randint(1, 16))
            continue
        i = rng.randrange(n)
        if op == 0:
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i] = rng.choice(_EDGES)
        elif op == 2:  # a frame's size field
            start = rng.choice(frame_starts(bytes(buf)))
            if start + 7 <= n:
                buf[start + 3:start + 7] = struct.pack(">I", rng.choice(_SIZES))
        elif op == 3:  # a frame's type or channel
            start = rng.choice(frame_starts(bytes(buf)))
            if start + 3 <= n:
                if rng.random() < 0.5:
                    buf[start] = rng.choice((0, 1, 2, 3, 4, 8, 9, 0xCE, 0xFF))
                else:
                    buf[start + 1:start + 3] = struct.pack(">H", rng.choice(
                        (0, 1, 2, 2047, 2048, 65535)))
        elif op == 4:
            del buf[rng.randrange(n):]
        elif op == 5:
            j = rng.randrange(i, n)
            buf[j:j] = buf[i:j + 1]
        elif op == 6 and others:
            other = rng.choice(others)
            k = rng.randrange(len(other) or 1)
            buf[i:] = other[k:]
        elif op == 7:
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        else:
            start = rng.choice(frame_starts(bytes(buf)))
            end = min(n, start + 8 + rng.randrange(64))
            buf[end:end] = buf[start:end]  # repeat a frame (or a piece of one)
    return bytes(buf)


def chunks(rng: random.Random, data: bytes) -> list[bytes]:
    # Mostly whole reads; sometimes frames split at small sizes (1 byte: every boundary).
    size = rng.choice((1, 2, 3, 7, 64, 512, 4096, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20))
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]
