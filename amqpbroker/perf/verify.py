"""What the consumers must have received, and the checks that make a run FAIL.

Message ids are ``producer << 40 | seq``; producer p sends seq 0..sent-1 with key
``(seq + p) % len(reach)``, so the expected delivery count and id checksum are
computed in closed form after the run, keeping the publish loop free of it.
"""

from __future__ import annotations

import dataclasses

ID_SHIFT = 40


def message_id(producer: int, seq: int) -> int:
    return (producer << ID_SHIFT) | seq


def expected_totals(sent: int, producer: int, reach: list[int]) -> tuple[int, int]:
    """(deliveries, sum of delivered ids) expected from one producer's ``sent`` publishes."""
    nk = len(reach)
    base = producer << ID_SHIFT
    deliveries = 0
    id_sum = 0
    for r0 in range(min(nk, sent)):        # seqs r0, r0 + nk, ... share a key
        c = (sent - 1 - r0) // nk + 1
        fan = reach[(r0 + producer) % nk]
        deliveries += c * fan
        id_sum += fan * (c * base + c * r0 + nk * c * (c - 1) // 2)
    return deliveries, id_sum


@dataclasses.dataclass
class Totals:
    """Everything the checks look at, summed over producers and consumers."""

    consumers: int
    published: int = 0
    expected: int = 0              # sum of reach over every publish
    expected_id_sum: int = 0
    delivered: int = 0
    delivered_id_sum: int = 0
    ids_checked: bool = True       # bodies of >= 16 bytes carry ids
    bad_body: int = 0
    redelivered: int = 0
    confirm: bool = False
    confirmed: int = 0
    nacked: int = 0
    residual: int | None = None    # messages left in the queues afterwards
    queued: int | None = None      # publish-only mode: final queue depth
    settled: bool = True           # delivered count stayed at expected for --settle


def problems(t: Totals) -> list[str]:
    """Reasons for FAIL; an empty list means the run verified."""
    why: list[str] = []
    if t.published == 0:
        why.append("nothing was published")
    if t.confirm:
        if t.nacked:
            why.append(f"{t.nacked} publishes were nacked")
        missing = t.published - t.confirmed - t.nacked
        if missing > 0:
            why.append(f"{missing} publishes were never confirmed")
    if t.consumers:
        if t.delivered < t.expected:
            why.append(f"delivered {t.delivered} of {t.expected} expected ({t.expected - t.delivered} missing)")
        elif t.delivered > t.expected:
            why.append(f"delivered {t.delivered}, more than the {t.expected} expected "
                       f"({t.delivered - t.expected} duplicates)")
        elif not t.settled:
            why.append("deliveries did not settle at the expected count")
        elif t.ids_checked and t.delivered_id_sum != t.expected_id_sum:
            why.append("id checksum mismatch: the right number of messages arrived, but not the ones published")
        if t.bad_body:
            why.append(f"{t.bad_body} bodies had the wrong size")
        if t.redelivered:
            why.append(f"{t.redelivered} deliveries were flagged redelivered")
        if t.residual:
            why.append(f"{t.residual} messages were left in the queues")
    elif t.queued is None:
        why.append("queue depth could not be read")
    elif t.queued != t.expected:
        why.append(f"queue depth {t.queued}, expected {t.expected}")
    return why
