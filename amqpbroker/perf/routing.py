"""Names, routing keys, bindings and each key's reach (pure, no I/O).

- default exchange: routing key = queue name, cycling over the K queues.
- direct: queue i is bound with key ``k<i>``.
- fanout: every queue is bound; one (empty) key.
- topic: B/4 keys ``a.b.c.N``; bindings in four families ``a.*.c.N``, ``#.N``,
  ``*.b.*.N``, ``N.#.z`` for N = 0..B/4-1; binding (N, family f) goes to queue
  (N + f) mod K.  Each key matches three families (never ``N.#.z``).

Producer p publishes its message s with key ``keys[(s + p) % len(keys)]``.
Consumer c consumes queue c mod K when M >= K, else every queue q with q mod M = c.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

TOPIC_FAMILIES = ("a.*.c.{n}", "#.{n}", "*.b.*.{n}", "{n}.#.z")


def topic_match(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words.

    An empty key or pattern has no words (as in RabbitMQ): ``#`` matches "", ``*`` does not.
    """
    return _match(tuple(pattern.split(".")) if pattern else (), tuple(key.split(".")) if key else ())


@functools.lru_cache(maxsize=4096)
def _match(p: tuple[str, ...], k: tuple[str, ...]) -> bool:
    if not p:
        return not k
    head = p[0]
    if head == "#":
        # '#' swallows 0..len(k) words
        return any(_match(p[1:], k[i:]) for i in range(len(k) + 1))
    if not k:
        return False
    if head != "*" and head != k[0]:
        return False
    return _match(p[1:], k[1:])


def binding_matches(exchange: str, pattern: str, key: str) -> bool:
    if exchange == "fanout":
        return True
    if exchange == "topic":
        return topic_match(pattern, key)
    return pattern == key


@dataclasses.dataclass
class Topology:
    exchange_type: str
    exchange: str                       # "" for the default exchange
    queues: list[str]
    keys: list[str]
    bindings: list[tuple[str, int]]     # (binding key, queue index)
    reach: list[int]                    # queues reached by each key

    def consumer_queues(self, consumer: int, consumers: int) -> list[str]:
        k = len(self.queues)
        if consumers >= k:
            return [self.queues[consumer % k]]
        return [q for i, q in enumerate(self.queues) if i % consumers == consumer]


def make_prefix(label: str) -> str:
    """Unique name prefix: perf-<label>-<pid>-<ms in hex>."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)[:32]
    return f"perf-{safe}-{os.getpid()}-{int(time.time() * 1000):x}"


def build(exchange_type: str, queues: int, bindings: int, prefix: str) -> Topology:
    qnames = [f"{prefix}-q{i}" for i in range(queues)]
    if exchange_type == "default":
        keys = list(qnames)
        binds: list[tuple[str, int]] = []
    elif exchange_type == "fanout":
        keys = [""]
        binds = [("", i) for i in range(queues)]
    elif exchange_type == "topic":
        n = max(1, bindings // 4)
        keys = [f"a.b.c.{i}" for i in range(n)]
        binds = [(TOPIC_FAMILIES[j % 4].format(n=j // 4), (j // 4 + j % 4) % queues) for j in range(4 * n)]
    elif exchange_type == "direct":
        keys = [f"k{i}" for i in range(queues)]
        binds = [(keys[i], i) for i in range(queues)]
    else:
        raise ValueError(f"unknown exchange type {exchange_type!r}")
    reach = [compute_reach(exchange_type, key, binds) for key in keys]
    xname = "" if exchange_type == "default" else f"{prefix}-x"
    return Topology(exchange_type, xname, qnames, keys, binds, reach)


def compute_reach(exchange_type: str, key: str, binds: list[tuple[str, int]]) -> int:
    """Number of distinct queues a message with this key lands in."""
    if exchange_type == "default":
        return 1
    return len({q for pattern, q in binds if binding_matches(exchange_type, pattern, key)})
