"""Group commit: which confirms (and transaction commits) wait for which fsync.

Syncs are numbered. Work that must be durable before it is acknowledged takes a ticket for
the next sync to start (`target`); while one fsync runs in a worker thread, new work
accumulates for the following one, so one fsync covers a whole batch (LavinMQ's Persister,
RabbitMQ's confirms page: "the broker confirms a persistent message once it is written to
disk"). The server starts a sync whenever `dirty` and none is running (`server.py`).

Waiters are protocol-neutral: anything with `release(generation, failed) -> bool` (the
core's `Publisher`: True while it still waits for a later sync) or a one-shot callback
(`after_sync`, used by tx.commit). The persister never holds a session or a channel.
"""

from __future__ import annotations

from typing import Callable, Protocol


class SyncWaiter(Protocol):
    def release(self, generation: int, failed: bool = False) -> bool:
        """Sync `generation` finished (or failed): release what waited for it; True if
        something still waits for a later sync."""


class Persister:
    def __init__(self) -> None:
        self.dirty = False
        self.running = False
        self.next_generation = 1
        self.completed = 0
        self.waiting: set[SyncWaiter] = set()
        self._callbacks: list[tuple[int, Callable[[bool], None]]] = []

    def target(self, waiter: SyncWaiter) -> int:
        """A ticket: the number of the sync that will cover work done now."""
        self.dirty = True
        self.waiting.add(waiter)
        return self.next_generation

    def after_sync(self, callback: Callable[[bool], None]) -> int:
        """Call `callback(failed)` once the next sync to start has finished."""
        self.dirty = True
        generation = self.next_generation
        self._callbacks.append((generation, callback))
        return generation

    def forget(self, waiter: SyncWaiter) -> None:
        """A waiter went away (its session closed)."""
        self.waiting.discard(waiter)

    def begin(self) -> int:
        generation = self.next_generation
        self.next_generation += 1
        self.dirty = False
        self.running = True
        return generation

    def complete(self, generation: int) -> None:
        self._finish(generation, False)

    def fail(self, generation: int, error: Exception) -> None:
        """The store could not sync: everything waiting on it is nacked."""
        self._finish(generation, True)

    def _finish(self, generation: int, failed: bool) -> None:
        self.running = False
        self.completed = generation
        waiting, self.waiting = self.waiting, set()
        for waiter in waiting:
            if waiter.release(generation, failed):
                self.waiting.add(waiter)
        if self._callbacks:
            due = [cb for gen, cb in self._callbacks if gen <= generation]
            self._callbacks = [(gen, cb) for gen, cb in self._callbacks if gen > generation]
            for callback in due:
                callback(failed)
