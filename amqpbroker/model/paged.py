"""The ready list of a deep durable queue: a resident head, paged runs of store ids, a tail.

A plain durable queue keeps every ready message as a `(message, redelivered, seq)` entry in
a deque: with the store paging bodies out (store.disk), what stays in RAM per queued message
is the entry, the `Message` object and its strings, ~300 bytes. Past `PAGE_AFTER` ready
messages the queue swaps its deque for a `PagedReady` (`Queue.deep`), which keeps only the
store id and body size of messages that wait far from the head: 12 bytes each, in arrays.
This is RabbitMQ's classic-queue design since 3.12 (https://www.rabbitmq.com/docs/lazy-queues,
"classic queues ... keep only a small number of messages in memory"): messages are in
the store already, the queue's index of them is what must stay small.

Layout, in delivery order: `head` (a deque of resident entries), `runs` (a deque of paged
runs: `array('Q')` store ids with bit 63 = redelivered, and an `array('I')` of their body
sizes; or a list of resident entries that cannot be paged, a transient message in a
durable queue), `tail` (a deque of resident entries appended since the last run was
sealed). Every `CHUNK` appends, the tail is sealed into runs. When the head runs dry, the
next run comes back with one `load_messages` call (the store reads neighbours with one
read: the run was written together). Only entries never handed out are paged (seq 0): a
returned entry goes back to the head (model.ready.merge_returned), so paging never moves a
message out of its place.

It offers the parts of `collections.deque` the queue uses (as `model.ready.PriorityReady`):
append, popleft, extendleft, [0], len, truth, iteration in delivery order (loads every
run: for the rare whole-list walks, a queue switching to its featured path), clear.
"""

from __future__ import annotations

from array import array
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from amqpbroker.message import Message
from amqpbroker.model.report import log

if TYPE_CHECKING:
    from amqpbroker.model.changes import DurableChanges

PAGE_AFTER = 16384  # resident ready messages a plain durable queue keeps before paging
CHUNK = 4096  # entries per sealed tail
RUN_BYTES = 4 << 20  # body bytes per paged run: what one page-in brings back at most
REDELIVERED = 1 << 63
_ID = REDELIVERED - 1


class PagedReady:
    __slots__ = ("head", "runs", "tail", "count", "changes", "key", "paged")

    def __init__(self, entries: Iterable[tuple], changes: "DurableChanges", key: str) -> None:
        self.head: deque[tuple] = deque()
        self.runs: deque[Any] = deque()
        self.tail: deque[tuple] = deque()
        self.count = 0
        self.changes = changes
        self.key = key
        self.paged = 0  # messages in paged runs (ids only)
        for entries_part in _parts(entries, CHUNK):
            self.tail.extend(entries_part)  # a new deque after each seal
            self.count += len(entries_part)
            if len(self.tail) >= CHUNK:
                self._seal()

    @classmethod
    def from_refs(cls, ids: array, sizes: array, changes: "DurableChanges",
                  key: str) -> "PagedReady":
        """A recovered backlog that never became messages (the store's lean recovery):
        store ids (bit 63 = redelivered) and body sizes, all paged; the head is read back
        on first use."""
        ready = cls((), changes, key)
        runs = ready.runs
        start = run_bytes = 0
        for i, size in enumerate(sizes):
            if i - start >= CHUNK or (run_bytes + size > RUN_BYTES and i > start):
                runs.append((ids[start:i], sizes[start:i]))
                start, run_bytes = i, 0
            run_bytes += size
        if start < len(ids):
            runs.append((ids[start:], sizes[start:]))
        ready.count = ready.paged = len(ids)
        return ready

    # -- the deque interface ------------------------------------------------------------
    def append(self, entry: tuple) -> None:
        tail = self.tail
        tail.append(entry)
        self.count += 1
        if len(tail) >= CHUNK:
            self._seal()

    def popleft(self) -> tuple:
        head = self.head
        if not head:
            self._refill()
            head = self.head  # the tail may have become the head
        self.count -= 1
        return head.popleft()

    def extendleft(self, entries: Iterable[tuple]) -> None:
        before = len(self.head)
        self.head.extendleft(entries)
        self.count += len(self.head) - before

    def __getitem__(self, index: int) -> tuple:
        if index != 0:
            raise IndexError("only the head of a paged ready list can be read")
        if not self.head:
            self._refill()
        return self.head[0]

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[tuple]:
        yield from self.head
        for run in list(self.runs):
            yield from (run if isinstance(run, list) else read_back(self.changes, self.key, *run))
        yield from self.tail

    def clear(self) -> None:
        self.head.clear()
        self.runs.clear()
        self.tail.clear()
        self.count = self.paged = 0

    # -- what only a paged list has -----------------------------------------------------
    def messages(self) -> Iterator[Message]:
        """Every ready message without reading a paged one back: a paged message is a
        reference (store id, body size, persistent) enough for `changes.remove` (purge)."""
        for entry in self.head:
            yield entry[0]
        for run in self.runs:
            if isinstance(run, list):
                for entry in run:
                    yield entry[0]
            else:
                for sid, size in zip(*run):
                    yield _reference(sid & _ID, size)
        for entry in self.tail:
            yield entry[0]

    # -- paging -------------------------------------------------------------------------
    def _seal(self) -> None:
        """The tail becomes runs: ids of stored messages, resident lists of the others."""
        tail, self.tail = self.tail, deque()
        runs = self.runs
        if not runs and len(self.head) < PAGE_AFTER:
            self.head.extend(tail)  # nothing paged yet and room at the head: stay resident
            return
        run: Any = None  # the run being filled: (ids, sizes) or a list of entries
        run_bytes = paged = 0
        for entry in tail:
            msg = entry[0]
            if msg.store_id and msg.persistent and not entry[-1]:
                size = msg.body_size
                if run.__class__ is not tuple or run_bytes + size > RUN_BYTES:
                    run = (array("Q"), array("I"))
                    runs.append(run)
                    run_bytes = 0
                run[0].append(msg.store_id | REDELIVERED if entry[1] else msg.store_id)
                run[1].append(size)
                run_bytes += size
                paged += 1
            else:
                if run.__class__ is not list:
                    run = []
                    runs.append(run)
                run.append(entry)
        self.paged += paged

    def _refill(self) -> None:
        head = self.head
        while not head:
            if self.runs:
                run = self.runs.popleft()
                if isinstance(run, list):
                    head.extend(run)
                else:
                    self.paged -= len(run[0])
                    head.extend(read_back(self.changes, self.key, *run))
            elif self.tail:
                self.head, self.tail = self.tail, head
                head = self.head
            else:
                raise IndexError("pop from an empty ready list")


def read_back(changes: "DurableChanges", key: str, ids: array, sizes: array) -> list[tuple]:
    """Ready entries for store ids (bit 63 = redelivered) and body sizes, read with one
    `load_messages` call per CHUNK. A message the store cannot read comes back as a
    reference without its body, as a message whose body the store paged out does, and
    fails the same way when it is delivered."""
    entries = []
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        loaded = changes.load_messages([sid & _ID for sid in part])
        for sid, size, msg in zip(part, sizes[start:start + CHUNK], loaded):
            if not isinstance(msg, Message):
                log.error("queue.paged_message_unreadable", queue=key,
                          store_id=sid & _ID, error=str(msg))
                msg = _reference(sid & _ID, size)
            entries.append((msg, bool(sid & REDELIVERED), 0))
    return entries


def _reference(sid: int, size: int) -> Message:
    msg = Message("", "", b"\x00\x00", None, size, True)
    msg.store_id = sid
    return msg


def _parts(entries: Iterable[tuple], n: int) -> Iterator[list[tuple]]:
    part: list[tuple] = []
    for entry in entries:
        part.append(entry)
        if len(part) >= n:
            yield part
            part = []
    if part:
        yield part
