"""The ready list of a priority queue (https://www.rabbitmq.com/docs/priority).

One FIFO per priority level 0..x-max-priority; a message's level is its `priority`
property capped at the maximum (no property = 0). The head is the head of the highest
non-empty level, so higher priorities go first and each priority stays FIFO; a requeued
message goes back to its original place in its own level (`put_back`).

It offers the parts of `collections.deque` the queue and the vhost use (len, truth,
append, popleft, [0], iteration in delivery order, clear), so code that does
not care which kind of ready list a queue has can stay unaware of it.
"""

from __future__ import annotations

import heapq
from collections import deque
from operator import itemgetter
from typing import Any, Iterator

_seq_of = itemgetter(-1)


def merge_returned(fifo: deque[Any], back: list[tuple]) -> None:
    """Put returned entries back at their original places in one FIFO.

    RabbitMQ: "when a message is requeued, it will be placed in its original position in
    its queue, if possible" (https://www.rabbitmq.com/docs/confirms). Every entry's last
    item is its queue sequence number: given when the message is first handed out (a FIFO
    hands messages out in enqueue order, so that order is the enqueue order), 0 for one
    never handed out. A FIFO is therefore a sorted run of returned entries (seq > 0)
    followed by entries never handed out, which all come after anything ever handed out.
    Only the returned entries that precede the last one coming back are touched."""
    back.sort(key=_seq_of)
    last = back[-1][-1]
    ahead = []
    while fifo and 0 < fifo[0][-1] < last:
        ahead.append(fifo.popleft())
    if ahead:
        back = list(heapq.merge(ahead, back, key=_seq_of))
    fifo.extendleft(reversed(back))


class PriorityReady:
    __slots__ = ("levels", "max", "top", "count")

    def __init__(self, max_priority: int) -> None:
        self.max = max_priority
        self.levels: list[deque[Any]] = [deque() for _ in range(max_priority + 1)]
        self.top = 0  # no level above this one holds anything
        self.count = 0

    def _level(self, entry: tuple) -> int:
        p = entry[0].priority
        return p if p <= self.max else self.max

    def append(self, entry: tuple) -> None:
        level = self._level(entry)
        self.levels[level].append(entry)
        self.count += 1
        if level > self.top:
            self.top = level

    def put_back(self, back: list[tuple]) -> None:
        """Returned entries, each to its original place in its own level."""
        by_level: dict[int, list[tuple]] = {}
        for entry in back:
            by_level.setdefault(self._level(entry), []).append(entry)
        for level, entries in by_level.items():
            merge_returned(self.levels[level], entries)
            if level > self.top:
                self.top = level
        self.count += len(back)

    def _head_level(self) -> deque[Any]:
        levels, top = self.levels, self.top
        while top > 0 and not levels[top]:
            top -= 1
        self.top = top
        return levels[top]

    def popleft(self) -> Any:
        if not self.count:
            raise IndexError("pop from an empty priority queue")
        entry = self._head_level().popleft()
        self.count -= 1
        return entry

    def __getitem__(self, index: int) -> Any:
        if index != 0 or not self.count:
            raise IndexError("only the head of a priority queue can be read")
        return self._head_level()[0]

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[Any]:
        for level in reversed(self.levels):
            yield from level

    def clear(self) -> None:
        for level in self.levels:
            level.clear()
        self.count = 0
        self.top = 0

    def heads(self) -> Iterator[deque[Any]]:
        """The non-empty levels (each is FIFO, each has its own head)."""
        levels = self.levels
        return (levels[i] for i in range(self.top + 1) if levels[i])
