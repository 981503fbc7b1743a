"""The ready list of a priority queue (https://www.rabbitmq.com/docs/priority).

One FIFO per priority level 0..x-max-priority; a message's level is its `priority`
property capped at the maximum (no property = 0). The head is the head of the highest
non-empty level, so higher priorities go first and each priority stays FIFO; a requeued
message goes back to the head of its own level.

It offers the parts of `collections.deque` the queue and the vhost use (len, truth,
append, appendleft, popleft, [0], iteration in delivery order, clear), so code that does
not care which kind of ready list a queue has can stay unaware of it.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterator


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

    def appendleft(self, entry: tuple) -> None:
        level = self._level(entry)
        self.levels[level].appendleft(entry)
        self.count += 1
        if level > self.top:
            self.top = level

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
