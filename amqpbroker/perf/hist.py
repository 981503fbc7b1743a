"""Log-linear latency histogram in microseconds (same layout as bench/amqpgen).

1 us buckets below 2048 us, then 1024 buckets per octave (about 0.1 % wide),
up to 2**54 us.  Buckets report their midpoint.  Workers keep a plain list and
ship a sparse {index: count} dict to the coordinator, which merges them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

SUB = 1024
LINEAR = 2 * SUB
OCTAVES = 44
LENGTH = LINEAR + OCTAVES * SUB


def index(us: int) -> int:
    """Bucket index for a latency in microseconds (negative counts as 0)."""
    if us < LINEAR:
        return us if us > 0 else 0
    e = us.bit_length() - 11          # us >> e lies in [1024, 2048)
    i = LINEAR + (e - 1) * SUB + ((us >> e) - SUB)
    return i if i < LENGTH else LENGTH - 1


def value(i: int) -> int:
    """Representative value (midpoint) of bucket i."""
    if i < LINEAR:
        return i
    e = (i - LINEAR) // SUB + 1
    m = (i - LINEAR) % SUB + SUB
    return (m << e) + ((1 << e) >> 1)


def new() -> list[int]:
    return [0] * LENGTH


def sparse(h: list[int]) -> dict[int, int]:
    return {i: n for i, n in enumerate(h) if n}


def merge(parts: Iterable[Mapping[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in parts:
        for i, n in part.items():
            out[int(i)] = out.get(int(i), 0) + n
    return out


def percentile(h: Mapping[int, int], q: float) -> int | None:
    """Smallest bucket value with at least ceil(q * n) samples at or below it."""
    n = sum(h.values())
    if n == 0:
        return None
    want = max(1, math.ceil(q * n))
    acc = 0
    for i in sorted(h):
        acc += h[i]
        if acc >= want:
            return value(i)
    return value(max(h))


def summary(h: Mapping[int, int], max_us: int | None = None) -> dict[str, int | None]:
    n = sum(h.values())
    out: dict[str, int | None] = {"n": n}
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
        out[name] = percentile(h, q)
    out["max"] = max_us if max_us is not None else (value(max(h)) if h else None)
    return out
