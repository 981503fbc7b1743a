"""What clients saw during a failover run, and the checker over it (Jepsen-style, small).

The publisher records every id it tried to publish and every id whose publisher confirm it
received; the consumer records every delivery (id, redelivered flag); each node's log gives
the terms in which it confirmed as leader.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    attempted: set[int] = field(default_factory=set)
    confirmed: set[int] = field(default_factory=set)
    deliveries: list[tuple[int, bool]] = field(default_factory=list)
    # (node, term) for every "cluster.confirming" log line
    confirming: list[tuple[str, int]] = field(default_factory=list)


def check(h: History) -> list[str]:
    """Every violation found (empty: the run kept every promise)."""
    problems = []
    consumed = {i for i, _ in h.deliveries}
    lost = h.confirmed - consumed
    if lost:
        problems.append(f"{len(lost)} confirmed messages never consumed: {sorted(lost)[:20]}")
    phantom = consumed - h.attempted
    if phantom:
        problems.append(f"{len(phantom)} consumed messages never published: "
                        f"{sorted(phantom)[:20]}")
    seen: set[int] = set()
    unflagged = []
    for i, redelivered in h.deliveries:
        if i in seen and not redelivered:
            unflagged.append(i)
        seen.add(i)
    if unflagged:
        problems.append(f"{len(unflagged)} redeliveries without the redelivered flag: "
                        f"{unflagged[:20]}")
    leaders: dict[int, set[str]] = defaultdict(set)
    for node, term in h.confirming:
        leaders[term].add(node)
    split = {t: sorted(n) for t, n in leaders.items() if len(n) > 1}
    if split:
        problems.append(f"two nodes confirmed as leader in the same term: {split}")
    return problems


def confirming_from_logs(nodes: list[Any]) -> list[tuple[str, int]]:
    return [(n.name, e["term"]) for n in nodes for e in n.log_events()
            if e.get("event") == "cluster.confirming"]
