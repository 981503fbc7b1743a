"""How a `serve` process runs CPython's cyclic garbage collector.

CPython walks every tracked object on a full (generation 2) collection and runs one as soon
as the old generation has grown by a quarter. A broker's heap is mostly long-lived (its
code, the management app, the recovered topology), and a client that declares 100,000
queues grows it by more than a million objects in a few seconds: full collections then
come in the middle of that burst, each stopping the event loop for up to ~300 ms
(docs/security.md, "resource attacks"), and every one walks the code and topology again.
In a steady S1 run they were 5 % of the broker's CPU (docs/performance.md, "garbage
collection"). This policy keeps CPython's collector and its rule, and changes when it runs:

- What exists once the broker has started is frozen (`gc.freeze()`, the use its docs
  give): full collections never walk it again. A queue recovered at start and deleted
  later is still freed (queues hold no reference cycle, model/queue_features.py); frozen
  objects that die inside a cycle stay allocated, which bounds that cost by the heap at
  start.
- The young generation is larger (2,000 allocations instead of 700): fewer collections,
  each as cheap per object. The middle generation is never collected on its own either:
  in a burst every young survivor lives on (a queue being declared), and walking up to
  20,000 of them every ten young collections stopped the loop 2-6 ms every ~40 ms of a
  100,000-queue flood. Cycles that outlive one young collection wait for the next full one
  (at most a quarter of growth, or `max_defer`, away).
- Full collections are run from the event loop by this policy, not by the allocator:
  when the heap (pymalloc blocks) has grown by a quarter since the last one, at the next
  moment the process is not busy (under half a core over the last second), and at the
  latest `max_defer` seconds after it became due. A burst then runs without pauses and
  pays one collection after it.

The embedded `Broker` leaves the host process's collector alone: only `serve` applies this.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any, Callable

import structlog

log = structlog.get_logger("amqpbroker.collector")

YOUNG = 2000  # CPython: 700
NEVER = 1 << 30  # a generation-2 threshold the allocator never reaches


class CollectorPolicy:
    def __init__(self, *, young: int = YOUNG, growth: float = 0.25, max_defer: float = 30.0,
                 busy: float = 0.5, tick: float = 1.0,
                 blocks: Callable[[], int] = sys.getallocatedblocks,
                 cpu: Callable[[], float] = time.process_time,
                 now: Callable[[], float] = time.monotonic,
                 collect: Callable[[], Any] = lambda: gc.collect(2)) -> None:
        self.young = young
        self.growth = growth
        self.max_defer = max_defer
        self.busy = busy
        self.tick = tick
        self._blocks, self._cpu, self._now, self._collect = blocks, cpu, now, collect
        self._saved: tuple[int, int, int] | None = None
        self._timer: Any = None
        self.collections = 0  # full collections this policy ran
        self.deferred = 0  # ticks at which one was due but the process was busy
        self._baseline = 0
        self._due_since: float | None = None
        self._last_cpu = 0.0
        self._last_now = 0.0

    # -- the decision (no IO, no loop: tests drive it with their own clock) -------------
    def check(self) -> bool:
        """One tick: run a full collection if it is due and the moment is right."""
        now, cpu = self._now(), self._cpu()
        elapsed = now - self._last_now
        load = (cpu - self._last_cpu) / elapsed if elapsed > 0 else 0.0
        self._last_now, self._last_cpu = now, cpu
        if self._blocks() < self._baseline * (1 + self.growth):
            self._due_since = None
            return False
        if self._due_since is None:
            self._due_since = now
        if load >= self.busy and now - self._due_since < self.max_defer:
            self.deferred += 1
            return False
        started = time.perf_counter()
        self._collect()
        self.collections += 1
        self._baseline = self._blocks()
        self._due_since = None
        log.debug("gc.full_collection", ms=round((time.perf_counter() - started) * 1000, 1),
                  blocks=self._baseline, load=round(load, 2))
        return True

    # -- the process-wide part -------------------------------------------------------------
    def settle(self) -> None:
        """Once the broker has started: freeze what exists, take over full collections."""
        self._saved = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(self.young, NEVER, NEVER)
        self._baseline = self._blocks()
        self._last_now, self._last_cpu = self._now(), self._cpu()
        log.info("gc.settled", frozen=gc.get_freeze_count(), young=self.young,
                 blocks=self._baseline)

    def start(self, loop: Any) -> None:
        self.settle()

        def tick() -> None:
            self.check()
            self._timer = loop.call_later(self.tick, tick)

        self._timer = loop.call_later(self.tick, tick)

    def stop(self) -> None:
        """Give the process its collector back (serve() returning in a test process)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            gc.unfreeze()
            self._saved = None
