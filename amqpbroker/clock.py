"""Time and timers for the synchronous model: one small interface, two implementations.

The model (queues: message TTL, `x-expires`) and the sessions (consumer timeout) never
touch asyncio. They ask the core's scheduler for the time and for callbacks:

    now = scheduler.now()                          # monotonic seconds
    timer = scheduler.call_at(now + 1.5, fn)       # fn() runs once, later
    timer.cancel()

`Scheduler` is what `BrokerCore` owns. Until the asyncio server attaches its event loop,
timers are only collected (recovery at startup may already arm some, e.g. queue leases);
`attach(loop)` hands them to `loop.call_at`, `detach()` makes every loop timer armed so
far a no-op (the server stopped; the loop may live on in an embedding program).

`ManualScheduler` is for tests: time stands still until `advance(seconds)` moves it and
runs, in order, every timer that fell due.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Any, Callable

import structlog

log = structlog.get_logger("amqpbroker")


def _cancelled() -> None:
    pass


class Timer:
    """A pending callback; `cancel()` is safe to call at any time, any number of times."""

    __slots__ = ("when", "fn", "cancelled", "handle", "generation")

    def __init__(self, when: float, fn: Callable[[], None], generation: int) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False
        self.handle: Any = None  # the event loop's TimerHandle once attached
        self.generation = generation

    def cancel(self) -> None:
        self.cancelled = True
        # As asyncio's Handle.cancel: a cancelled timer waiting in a heap must not keep its
        # callback's objects (a deleted queue) alive until its time comes.
        self.fn = _cancelled
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "pending"
        return f"<Timer at {self.when:.3f} {state} {getattr(self.fn, '__qualname__', self.fn)}>"


class Scheduler:
    """Monotonic time plus timers, backed by an asyncio loop once one is attached."""

    def __init__(self) -> None:
        self._loop: Any = None
        self._pending: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._generation = 0

    def now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else time.monotonic()

    @property
    def attached(self) -> bool:
        """Timers run on an event loop now (else they wait for `attach`)."""
        return self._loop is not None

    def wall(self) -> float:
        """Wall-clock seconds (for timestamps written into messages, e.g. `x-death`)."""
        return time.time()

    def call_at(self, when: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(when, fn, self._generation)
        if self._loop is not None:
            timer.handle = self._loop.call_at(when, self._fire, timer)
        else:
            heapq.heappush(self._pending, (when, next(self._seq), timer))
        return timer

    def attach(self, loop: Any) -> None:
        """Run timers on `loop` from now on, including those armed before (recovery)."""
        self._loop = loop
        pending, self._pending = self._pending, []
        for when, _, timer in sorted(pending):
            if not timer.cancelled:
                timer.generation = self._generation
                timer.handle = loop.call_at(when, self._fire, timer)

    def detach(self) -> None:
        """The server stopped: timers armed on the loop so far will do nothing."""
        self._generation += 1
        self._loop = None

    def _fire(self, timer: Timer) -> None:
        timer.handle = None
        if timer.cancelled or timer.generation != self._generation:
            return
        timer.cancelled = True  # fired: a later cancel() is a no-op
        try:
            timer.fn()
        except Exception:  # a bug in one timer must never stop the loop
            log.exception("timer.failed", callback=getattr(timer.fn, "__qualname__", None))


class ManualScheduler(Scheduler):
    """A clock that only moves when told to (model and session tests)."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        super().__init__()
        self.time = start
        self._wall_offset = wall_start - start

    def now(self) -> float:
        return self.time

    def wall(self) -> float:
        return self.time + self._wall_offset

    def call_at(self, when: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(when, fn, 0)
        heapq.heappush(self._pending, (when, next(self._seq), timer))
        return timer

    def attach(self, loop: Any) -> None:  # pragma: no cover - tests drive time themselves
        pass

    def detach(self) -> None:  # pragma: no cover
        pass

    def advance(self, seconds: float) -> None:
        """Move time forward, running each timer that falls due at its own time."""
        target = self.time + seconds
        pending = self._pending
        while pending and pending[0][0] <= target:
            when, _, timer = heapq.heappop(pending)
            if timer.cancelled:
                continue
            self.time = max(self.time, when)
            timer.cancelled = True
            timer.fn()  # exceptions propagate: a test should see them
        self.time = target

    def run_due(self) -> None:
        self.advance(0.0)

    @property
    def pending(self) -> list[Timer]:
        """Live timers, soonest first."""
        return [t for _, _, t in sorted(self._pending) if not t.cancelled]
