"""The leader's side of replication: ship the core's ordered durable changes, gate confirms.

`ReplicationSource.observe` is tapped on the core's `ChangeStream` (broker/changes.py), the
one seam every durable change passes through. Each change gets the next sequence number, is
encoded once (cluster/wire.py) and written to every connected follower in order; a bounded
backlog of recent frames lets a follower that reconnects within the same term resume from
its last position; otherwise (new term, restarted follower, backlog compacted past it) it
gets a snapshot: the live topology, every stored message, built from a shadow index of
the stream itself, and every stream queue's log read from the leader's stream store, in one
synchronous step so that nothing slips between snapshot and
stream.

Commit gate (the server calls `wait(position, done)` after its local fsync, and to hold
the reply to a declaration until the ISR has it): the group commit's confirms go out only
when every follower in the ISR has acknowledged (written and fsynced) the stream up to
`position`, and only while this node's etcd lease is certainly
still held (`lease_deadline`, monotonic). A follower that lags more than `lag_timeout`
seconds, or disconnects, is removed from the ISR in etcd (a transaction guarded by our
leader key) before anything is confirmed without it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

import structlog

from amqpbroker.cluster import wire

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore
    from amqpbroker.message import Message

log = structlog.get_logger("amqpbroker.cluster")


class Link:
    """One connected follower."""

    def __init__(self, name: str, writer: asyncio.StreamWriter) -> None:
        self.name = name
        self.writer = writer
        self.acked = 0  # highest seq it has written and fsynced
        self.joined_at = 0  # seq at which it was fully caught up (snapshot end / resume)
        self.closed = False

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.writer.write(data)

    def buffered(self) -> int:
        transport = self.writer.transport
        return transport.get_write_buffer_size() if transport is not None else 0


class ReplicationSource:
    def __init__(self, core: "BrokerCore", term: int, *,
                 set_isr: Callable[[set[str]], Awaitable[bool]],
                 lag_timeout: float = 3.0, backlog_bytes: int = 64 << 20,
                 max_buffered: int = 256 << 20) -> None:
        self.core = core
        self.term = term
        self.seq = 0
        self.set_isr = set_isr  # guarded etcd write of the ISR (followers only)
        self.lag_timeout = lag_timeout
        self.backlog_bytes = backlog_bytes
        self.max_buffered = max_buffered
        self.backlog: deque[tuple[int, bytes]] = deque()
        self._backlog_size = 0
        self.links: dict[str, Link] = {}
        self.isr: set[str] = set()  # followers in the ISR (the leader is implicit)
        self.lease_deadline = 0.0  # monotonic; no confirm at or after it
        self.waits: deque[tuple[int, Callable[[bool], None], float]] = deque()
        self.confirmed_upto = 0  # highest position released to the persister
        # seq of the last durable definition (declare, bind, user, vhost, policy ...): the
        # reply to the request that made it waits until the ISR has it (`hold_output`,
        # cluster/view.py `replicated`), as a publisher confirm waits.
        self.definition_seq = 0
        # shadow index of what the stores hold, for snapshots
        self.queues: dict[str, dict[int, bool]] = {}  # queue_key -> store_id -> delivered
        self.messages: dict[int, list[Any]] = {}  # store_id -> [Message, queues]
        self._isr_busy = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- recovery: the shadow starts as what the store recovered -----------------------------
    def recovered(self, result: dict[str, Any]) -> None:
        for key, entries in list(result.items()):
            if not isinstance(entries, list):  # store ids (lean recovery, store.records)
                # The shadow keeps each message for snapshots: read them back once, and
                # hand the core the messages too.
                entries = result[key] = self._messages_of(entries)
            q = self.queues.setdefault(key, {})
            for msg, redelivered in entries:
                q[msg.store_id] = redelivered
                entry = self.messages.setdefault(msg.store_id, [msg, 0])
                entry[1] += 1

    def _messages_of(self, refs: Any) -> list[tuple["Message", bool]]:
        out = []
        ids = refs.store_ids()
        for start in range(0, len(ids), 4096):
            loaded = self.core.changes.load_messages(ids[start:start + 4096])
            for i, msg in enumerate(loaded, start):
                if isinstance(msg, Exception):
                    log.error("cluster.recovered_message_unreadable", store_id=ids[i],
                              error=str(msg))
                    continue
                out.append((msg, bool(refs.ids[i] >> 63)))
        return out

    def drop_unknown_queues(self, keys: set[str]) -> None:
        """Recovery forgot queues missing from the definitions: so does the shadow."""
        for key in [k for k in self.queues if k not in keys]:
            self._delete_queue(key)

    # -- the tap -----------------------------------------------------------------------------
    def observe(self, name: str, *args: Any) -> None:
        """A durable change was applied locally: index it and ship it."""
        if name == "add":
            key, msg = args
            sid = msg.store_id
            q = self.queues.setdefault(key, {})
            entry = self.messages.get(sid)
            if entry is None:
                entry = self.messages[sid] = [msg, 0]
            if sid not in q:
                q[sid] = False
                entry[1] += 1
            body = msg.body if msg.body is not None else self.core.changes.load_body(msg)
            payload = wire.encode_add(key, msg, body,
                                      msg.enqueued_ms or int(time.time() * 1000))
        elif name == "remove":
            key, msg = args
            q = self.queues.get(key)
            if q is not None and q.pop(msg.store_id, None) is not None:
                self._unref(msg.store_id)
            payload = wire.encode_ref(b"R", key, msg.store_id)
        elif name == "mark_delivered":
            key, msg = args
            q = self.queues.get(key)
            if q is not None and msg.store_id in q:
                q[msg.store_id] = True
            payload = wire.encode_ref(b"M", key, msg.store_id)
        elif name == "delete_queue":
            (key,) = args
            self._delete_queue(key)
            payload = b"X" + key.encode()
        elif name == "definition":
            payload = wire.encode_json(b"F", args[0])
        elif name == "stream_append":
            payload = wire.encode_stream_append(*args)
        elif name == "stream_offset":
            payload = wire.encode_stream_offset(*args)
        elif name == "stream_truncate":
            payload = wire.encode_stream_truncate(*args)
        elif name == "stream_delete":
            payload = b"D" + args[0].encode("utf-8", "surrogatepass")
        else:
            return
        self.seq += 1
        if name == "definition":
            self.definition_seq = self.seq
        data = wire.frame(self.seq, payload)
        self.backlog.append((self.seq, data))
        self._backlog_size += len(data)
        while self._backlog_size > self.backlog_bytes and len(self.backlog) > 1:
            self._backlog_size -= len(self.backlog.popleft()[1])
        for link in list(self.links.values()):
            link.send(data)
            if link.buffered() > self.max_buffered:
                log.warning("cluster.follower_too_slow", node=link.name)
                self.disconnect(link)

    def _unref(self, sid: int) -> None:
        entry = self.messages.get(sid)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self.messages[sid]

    def _delete_queue(self, key: str) -> None:
        for sid in self.queues.pop(key, {}):
            self._unref(sid)

    # -- followers ---------------------------------------------------------------------------
    def attach(self, link: Link, hello: dict[str, Any]) -> str:
        """A follower said where it is: resume it from the backlog, or send a snapshot.
        Synchronous, so no change can fall between what it gets now and the live stream."""
        old = self.links.get(link.name)
        if old is not None:
            self.disconnect(old)
        last = int(hello.get("seq", 0))
        first = self.backlog[0][0] if self.backlog else self.seq + 1
        if int(hello.get("term", 0)) == self.term and first - 1 <= last <= self.seq:
            for seq, data in self.backlog:
                if seq > last:
                    link.send(data)
            mode = "incremental"
        else:
            self._send_snapshot(link)
            mode = "snapshot"
        link.joined_at = self.seq
        link.acked = min(last, self.seq) if mode == "incremental" else 0
        self.links[link.name] = link
        log.info("cluster.follower_attached", node=link.name, mode=mode, seq=self.seq,
                 resumed_from=last)
        return mode

    def _send_snapshot(self, link: Link) -> None:
        seq = self.seq
        link.send(wire.frame(seq, wire.encode_json(b"B", {"term": self.term})))
        for vhost in self.core.vhosts.values():
            for op in vhost.durable_ops():
                link.send(wire.frame(seq, wire.encode_json(b"F", op)))
        load_body = self.core.changes.load_body
        now_ms = int(time.time() * 1000)
        for key, q in self.queues.items():
            for sid, delivered in q.items():
                msg = self.messages[sid][0]
                body = msg.body if msg.body is not None else load_body(msg)
                link.send(wire.frame(seq, wire.encode_add(key, msg, body,
                                                          msg.enqueued_ms or now_ms)))
                if delivered:
                    link.send(wire.frame(seq, wire.encode_ref(b"M", key, sid)))
        self._send_streams(link, seq)
        link.send(wire.frame(seq, wire.encode_json(b"E", {"term": self.term})))

    def _send_streams(self, link: Link, seq: int) -> None:
        """Every stream's log as it is now (records with their offsets and timestamps, then
        the tracked consumer offsets): the stream store is the leader's own, read here."""
        streams = self.core.streams
        if streams is None:
            return
        for key, log in list(streams.store.logs.items()):
            for rec, filter_value in log.entries("first"):
                link.send(wire.frame(seq, wire.encode_stream_append(
                    key, rec.offset, rec.timestamp_ms, rec.exchange, rec.routing_key,
                    rec.properties, rec.body, filter_value)))
            for name, offset in log.tracked_offsets().items():
                link.send(wire.frame(seq, wire.encode_stream_offset(key, name, offset)))

    def acked(self, link: Link, seq: int) -> None:
        if seq > link.acked:
            link.acked = seq
        if link.name not in self.isr and link.acked >= link.joined_at and not link.closed:
            self._change_isr(add=link.name)
        self.check()

    def disconnect(self, link: Link) -> None:
        if link.closed:
            return
        link.closed = True
        if self.links.get(link.name) is link:
            del self.links[link.name]
        try:
            link.writer.close()
        except Exception:
            pass
        if link.name in self.isr:
            self._change_isr(remove={link.name})

    def _change_isr(self, add: str | None = None, remove: Iterable[str] = ()) -> None:
        task = asyncio.get_running_loop().create_task(self._update_isr(add, set(remove)))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _update_isr(self, add: str | None, remove: set[str]) -> None:
        while self._isr_busy:
            await asyncio.sleep(0.01)
        self._isr_busy = True
        try:
            new = (self.isr - remove) | ({add} if add else set())
            if add is not None:
                link = self.links.get(add)
                if link is None or link.closed or link.acked < link.joined_at:
                    new.discard(add)
            if new == self.isr:
                return
            # Shrinking happens in etcd first; only then does check() confirm without them.
            if await self.set_isr(new):
                log.info("cluster.isr", isr=sorted(new), term=self.term)
                self.isr = new
        finally:
            self._isr_busy = False
        self.check()

    # -- the commit gate ----------------------------------------------------------------------
    def position(self) -> int:
        return self.seq

    def wait(self, position: int, done: Callable[[bool], None]) -> None:
        """Call `done(False)` once every ISR follower has acknowledged `position` (and the
        lease is held). Waits are kept in position order: a group commit's round and a
        held declaration reply may arrive out of order."""
        waits = self.waits
        entry = (position, done, time.monotonic())
        if not waits or waits[-1][0] <= position:
            waits.append(entry)
        else:
            i = len(waits)
            while i and waits[i - 1][0] > position:
                i -= 1
            waits.insert(i, entry)
        self.check()

    def hold_output(self, conn: Any) -> None:
        """`conn` (a protocol shell's connection: `_held_until`, `flush()`) just made
        durable definitions: its output stays held (`flush` returns while `_held_until`)
        until every ISR follower has acknowledged the last of them."""
        position = conn._held_until = self.definition_seq

        def release(failed: bool) -> None:
            if conn._held_until <= position:
                conn._held_until = 0
                conn.flush()

        self.wait(position, release)

    def check(self) -> None:
        """Release every waiting group commit the ISR has acknowledged, in order."""
        if not self.waits or time.monotonic() >= self.lease_deadline:
            return  # fenced: with the lease possibly gone, confirm nothing
        while self.waits:
            position, done, _ = self.waits[0]
            for name in self.isr:
                link = self.links.get(name)
                if link is None or link.acked < position:
                    return
            self.waits.popleft()
            if not self.confirmed_upto:
                log.info("cluster.confirming", term=self.term)  # history checks: one per term
            self.confirmed_upto = max(self.confirmed_upto, position, 1)
            done(False)

    def drop_laggards(self) -> None:
        """Called periodically: an ISR follower that has not acknowledged the oldest waiting
        position within lag_timeout leaves the ISR (in etcd first)."""
        if not self.waits:
            return
        now = time.monotonic()
        overdue = [p for p, _, since in self.waits if now - since >= self.lag_timeout]
        if not overdue:
            return
        position = max(overdue)
        late = {n for n in self.isr
                if (self.links.get(n) is None or self.links[n].acked < position)}
        if late:
            log.warning("cluster.follower_lagging", nodes=sorted(late), position=position)
            for name in late:
                link = self.links.get(name)
                if link is not None:
                    self.disconnect(link)  # it resyncs when it reconnects
            self._change_isr(remove=late)

    def status(self) -> dict[str, Any]:
        return {"term": self.term, "seq": self.seq, "isr": sorted(self.isr),
                "followers": {n: {"acked": l.acked, "lag": self.seq - l.acked}
                              for n, l in self.links.items()}}
