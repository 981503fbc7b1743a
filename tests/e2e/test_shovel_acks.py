"""The shovel's acknowledgements to the source (shovel/worker.py `_SourceAcks`): one
`basic.ack multiple=True` per run of settled deliveries, never covering a delivery that is
still in flight or one that must be rejected (requeued)."""

import asyncio

from amqpbroker.shovel.worker import _SourceAcks


class FakeChannel:
    def __init__(self) -> None:
        self.frames: list[tuple[str, int, bool]] = []

    async def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> None:
        await asyncio.sleep(0)
        self.frames.append(("ack", tag, multiple))

    async def basic_reject(self, tag: int, requeue: bool = True, wait: bool = True) -> None:
        await asyncio.sleep(0)
        self.frames.append(("reject", tag, requeue))


def settled_tags(frames: list[tuple[str, int, bool]]) -> dict[int, str]:
    """What the source broker makes of the frames: tag -> acked / rejected."""
    out: dict[int, str] = {}
    for kind, tag, flag in frames:
        if kind == "ack" and flag:
            for t in range(1, tag + 1):
                out.setdefault(t, "acked")
        else:
            assert tag not in out, f"tag {tag} settled twice"
            out[tag] = "acked" if kind == "ack" else "rejected"
    return out


async def test_runs_are_acked_with_multiple_and_rejects_stay_exact():
    ch = FakeChannel()
    acks = _SourceAcks(ch)
    for tag in range(1, 1001):
        acks.add(tag)
    # confirms arrive out of order; tags 500 and 750 are nacked by the destination
    order = list(range(1000, 0, -1))
    for tag in order:
        acks.settle(tag, tag not in (500, 750))
    await acks.drain()
    assert settled_tags(ch.frames) == {t: "rejected" if t in (500, 750) else "acked"
                                       for t in range(1, 1001)}
    assert len(ch.frames) <= 5  # ack 499, reject 500, ack 749, reject 750, ack 1000


async def test_nothing_is_acked_past_a_delivery_in_flight():
    ch = FakeChannel()
    acks = _SourceAcks(ch)
    for tag in range(1, 11):
        acks.add(tag)
    for tag in range(1, 11):
        if tag != 4:
            acks.settle(tag, True)
    await acks.drain()
    await asyncio.sleep(0.01)
    assert settled_tags(ch.frames) == {1: "acked", 2: "acked", 3: "acked"}
    acks.settle(4, True)
    await acks.drain()
    assert settled_tags(ch.frames) == {t: "acked" for t in range(1, 11)}
    assert ch.frames[-1] == ("ack", 10, True)
