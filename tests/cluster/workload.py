"""A confirmed publisher and a consumer that reconnect to any live node (through a Front),
recording a History; and the failover scenarios both the CI test and the soak run."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

import aio_pika

from .harness import Cluster, Front
from .history import History

QUEUE = "ha-test"
# The clients' own tracebacks for every connection a kill cuts are noise here.
logging.getLogger("aiormq").setLevel(logging.CRITICAL)
logging.getLogger("aio_pika").setLevel(logging.CRITICAL)


class Workload:
    def __init__(self, front: Front, history: History, limit: int | None = None) -> None:
        self.url = f"amqp://guest:guest@127.0.0.1:{front.port}/?heartbeat=2"
        self.h = history
        self.limit = limit
        self.next_id = 0
        self.running = True
        self.last_confirm = time.monotonic()
        self.confirm_times: list[float] = []
        self.reconnects = 0

    async def _connect(self) -> Any:
        while True:  # bounded by the caller's run: it stops on running=False / stop
            try:
                return await aio_pika.connect(self.url, timeout=5)
            except Exception:
                self.reconnects += 1
                await asyncio.sleep(0.2)

    async def publisher(self) -> None:
        while self.running:
            conn = await self._connect()
            try:
                ch = await asyncio.wait_for(conn.channel(publisher_confirms=True), 5)
                await asyncio.wait_for(ch.declare_queue(QUEUE, durable=True), 5)
                while self.running and (self.limit is None or self.next_id < self.limit):
                    i = self.next_id
                    self.next_id += 1
                    self.h.attempted.add(i)
                    await asyncio.wait_for(ch.default_exchange.publish(aio_pika.Message(
                        str(i).encode(), delivery_mode=2, message_id=str(i)), QUEUE), 4)
                    self.h.confirmed.add(i)
                    now = time.monotonic()
                    self.confirm_times.append(now)
                    self.last_confirm = now
                if self.limit is not None and self.next_id >= self.limit:
                    self.running = False
            except Exception:
                pass  # the id in flight stays unconfirmed; reconnect (to any node)
            finally:
                try:
                    await asyncio.wait_for(conn.close(), 2)
                except Exception:
                    pass

    async def consumer(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            conn = await self._connect()
            try:
                ch = await asyncio.wait_for(conn.channel(), 5)
                await ch.set_qos(prefetch_count=100)
                q = await asyncio.wait_for(ch.declare_queue(QUEUE, durable=True), 5)
                async with q.iterator() as it:
                    while not stop.is_set():
                        try:
                            msg = await asyncio.wait_for(it.__anext__(), 1.0)
                        except asyncio.TimeoutError:
                            if conn.is_closed:
                                break
                            continue
                        self.h.deliveries.append((int(msg.body), bool(msg.redelivered)))
                        await msg.ack()
            except Exception:
                pass
            finally:
                try:
                    await asyncio.wait_for(conn.close(), 2)
                except Exception:
                    pass

    def consumed(self) -> set[int]:
        return {i for i, _ in self.h.deliveries}

    def first_confirm_after(self, t: float) -> float | None:
        return next((c - t for c in self.confirm_times if c > t), None)

    def outage(self, t: float) -> float | None:
        """The longest time without any confirm around event time `t`: from the last
        confirm before it to the first one at least a second later (publishers confirmed
        again through the new leader, not confirms already in flight)."""
        before = [c for c in self.confirm_times if c <= t]
        start = before[-1] if before else t
        after = [c for c in self.confirm_times if c > t]
        gaps = [b - a for a, b in zip([start] + after, after)]
        return round(max(gaps), 2) if gaps else None


async def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


async def kill_leader(cluster: Cluster, w: Workload, report: dict[str, list[float]]) -> None:
    """SIGKILL the leader, restart it, wait until it is back in the ISR."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, cluster.wait_isr, len(cluster.nodes), 90)
    leader = await loop.run_in_executor(None, cluster.wait_leader, 30)
    await wait_until(lambda: time.monotonic() - w.last_confirm < 1, 30)
    term = (cluster.leader() or ("", 0))[1]
    killed_at = time.monotonic()
    cluster.node(leader).kill(signal.SIGKILL)
    await loop.run_in_executor(None, cluster.wait_leader, 30, term)
    elected = time.monotonic()
    await wait_until(lambda: w.first_confirm_after(elected) is not None, 30)
    took = w.outage(killed_at)
    report.setdefault("failover_seconds", []).append(took if took else -1)
    cluster.node(leader).start()
    await loop.run_in_executor(None, cluster.wait_isr, len(cluster.nodes), 120)


async def freeze_leader(cluster: Cluster, w: Workload, report: dict[str, list[float]],
                        seconds: float) -> str:
    """SIGSTOP the leader past its lease, resume it: it must step down, not confirm."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, cluster.wait_isr, len(cluster.nodes), 90)
    leader = await loop.run_in_executor(None, cluster.wait_leader, 30)
    term = (cluster.leader() or ("", 0))[1]
    node = cluster.node(leader)
    stopped_at = time.monotonic()
    node.kill(signal.SIGSTOP)
    await asyncio.sleep(seconds)
    node.kill(signal.SIGCONT)
    await loop.run_in_executor(None, cluster.wait_leader, 30, term)
    await loop.run_in_executor(None, cluster.wait_isr, len(cluster.nodes), 120)
    took = w.outage(stopped_at)
    report.setdefault("freeze_failover_seconds", []).append(took if took else -1)
    return leader
