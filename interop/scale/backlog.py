"""Backlog axis: one durable queue filled with persistent 1 KiB messages up to millions.

    python interop/bench_scale.py backlog [--steps 1000000,3000000,10000000]

Per broker (a fresh one, fresh data directory): a raw AMQP client (pre-marshalled frames,
so the client is not what is measured) publishes persistent 1 KiB messages into one durable
queue in chunks, without confirms but with TCP back-pressure; each chunk ends with a
`queue.declare passive` round trip whose message_count must equal the messages sent so
far. After every chunk a record holds the chunk's publish rate, the broker's RSS and the
bytes per queued message above the empty broker; at each step's depth the record is also a
point of the curve (step = queue depth). At the last step: `kill -9`, a restart on the same
data directory and the time until the queue answers with its full depth (recovery), then a
drain of up to DRAIN_MAX messages by a raw no-ack consumer (the consume rate while
draining, and RSS after). The issue's aims: the fill rate at 10M within 50 % of the
empty-queue rate, RSS under 1.5 GiB (about 150 bytes per queued message).

Free disk is checked first (1.3 KiB per message per broker plus 2 GiB): a step that does not
fit is skipped with a message. Bounded: every chunk by CHUNK_TIMEOUT, recovery by
RECOVERY_TIMEOUT, the drain by DRAIN_TIMEOUT; a broker that misses a bound gets an error
in its record and the run goes on with the next broker.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import time
from pathlib import Path
from typing import Any, Callable

from pamqp import commands, frame, header
from pamqp import body as pbody

from amqpbroker.fuzz.oracle import handshake_bytes
from amqpbroker.protocol.frames import FrameReader
from scale.common import Broker, proc_status, record

STEPS = (1_000_000, 3_000_000, 10_000_000)
CHUNK = 500_000
BLOCK = 500  # messages per socket write
BODY = 1024
QUEUE = "scale-backlog"
CHUNK_TIMEOUT = 600.0
RECOVERY_TIMEOUT = 900.0
DRAIN_MAX = 2_000_000
DRAIN_TIMEOUT = 300.0
BYTES_PER_MESSAGE_ON_DISK = 1300


class RawClient:
    """One AMQP connection with channel 1 open, driven with pre-marshalled frames."""

    async def connect(self, port: int, timeout: float = 60) -> "RawClient":
        self.r, self.w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                                timeout)
        self.reader = FrameReader(1 << 20)
        self.w.write(handshake_bytes())
        await self.until(commands.Channel.OpenOk, timeout)
        return self

    async def methods(self, timeout: float) -> list[tuple[int, Any]]:
        data = await asyncio.wait_for(self.r.read(1 << 20), timeout)
        if not data:
            raise ConnectionError("the broker closed the connection")
        out = []
        for ftype, _channel, payload in self.reader.feed(data):
            if ftype == 1:
                _, _, method = frame.unmarshal(
                    struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce")
                if isinstance(method, (commands.Connection.Close, commands.Channel.Close)):
                    raise ConnectionError(f"closed by the broker: {method.reply_code} "
                                          f"{method.reply_text}")
                out.append((ftype, method))
            else:
                out.append((ftype, None))
        return out

    async def until(self, kind: type, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for _, method in await self.methods(max(0.1, deadline - time.monotonic())):
                if isinstance(method, kind):
                    return method

    async def call(self, method: Any, reply: type, timeout: float = 60) -> Any:
        self.w.write(frame.marshal(method, 1))
        return await self.until(reply, timeout)

    async def depth(self, timeout: float = 60) -> int:
        ok = await self.call(commands.Queue.Declare(queue=QUEUE, passive=True),
                             commands.Queue.DeclareOk, timeout)
        return ok.message_count

    def close(self) -> None:
        self.w.transport.abort()


def publish_block() -> bytes:
    props = commands.Basic.Properties(delivery_mode=2)
    one = (frame.marshal(commands.Basic.Publish(exchange="", routing_key=QUEUE), 1)
           + frame.marshal(header.ContentHeader(0, BODY, props), 1)
           + frame.marshal(pbody.ContentBody(b"m" * BODY), 1))
    return one * BLOCK


class Confirms:
    """Reads the publisher confirms of a confirm-mode RawClient as they come (a client that
    stopped reading would stop the broker reading it): the highest tag acked so far."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.acked = 0
        self.nacked = 0
        self.moved = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        reader, r = self.client.reader, self.client.r
        while True:
            data = await r.read(1 << 20)
            if not data:
                return
            for ftype, _, payload in reader.feed(data):
                if ftype != 1:
                    continue
                head = payload[:4]
                if head in (b"\x00\x3c\x00\x50", b"\x00\x3c\x00\x78"):  # ack, nack
                    tag, _bits = struct.unpack_from(">QB", payload, 4)
                    self.acked = max(self.acked, tag)
                    self.nacked += head[3] == 0x78
                    self.moved.set()
                elif head[:2] in (b"\x00\x0a", b"\x00\x14") and head[3] in (50, 40):
                    raise ConnectionError(f"closed by the broker: {payload[4:60]!r}")

    async def wait(self, tag: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < tag:
            if self.task.done():
                self.task.result()
                raise ConnectionError("the broker closed the connection")
            self.moved.clear()
            await asyncio.wait_for(self.moved.wait(), max(0.1, deadline - time.monotonic()))

    def stop(self) -> None:
        self.task.cancel()


async def fill(client: RawClient, confirms: Confirms, sent: int, count: int, block: bytes,
               timeout: float) -> float:
    """Publish `count` messages (a multiple of BLOCK) after `sent` earlier ones; seconds
    until the broker has confirmed them all (written to disk, for a durable queue)."""
    start = time.monotonic()
    deadline = start + timeout
    for _ in range(count // BLOCK):
        client.w.write(block)
        await asyncio.wait_for(client.w.drain(), max(0.1, deadline - time.monotonic()))
    await confirms.wait(sent + count, max(0.1, deadline - time.monotonic()))
    return time.monotonic() - start


async def drain(port: int, limit: int, timeout: float) -> tuple[int, float]:
    """A no-ack consumer takes up to `limit` messages: (messages, seconds)."""
    client = await RawClient().connect(port)
    try:
        await client.call(commands.Basic.Qos(prefetch_count=0), commands.Basic.QosOk)
        client.w.write(frame.marshal(commands.Basic.Consume(queue=QUEUE, no_ack=True), 1))
        got = 0
        start = time.monotonic()
        deadline = start + timeout
        while got < limit and time.monotonic() < deadline:
            data = await asyncio.wait_for(client.r.read(1 << 20), deadline - time.monotonic())
            if not data:
                break
            # Count deliveries by their method frames (class 60, method 60) only: decoding
            # every frame with pamqp would make the consumer the bottleneck.
            for ftype, _, payload in client.reader.feed(data):
                if ftype == 1 and payload[:4] == b"\x00\x3c\x00\x3c":
                    got += 1
        return got, time.monotonic() - start
    finally:
        client.close()


async def queue_depth(broker: Broker) -> int:
    """The queue's message count, from a passive declare on a connection of its own."""
    client = await RawClient().connect(broker.port)
    try:
        return await client.depth()
    finally:
        client.close()


def disk_needed(messages: int) -> int:
    return messages * BYTES_PER_MESSAGE_ON_DISK + 2 * 2**30


async def run_broker(broker: Broker, steps: list[int], out: Path | None) -> None:
    block = publish_block()
    broker.start()
    base_rss = broker.rss_mib()
    client = await RawClient().connect(broker.port)
    # Lazy: RabbitMQ 3.10's classic queues keep messages in memory until an alarm unless
    # asked (3.12+ always behave so); amqpbroker pages bodies out beyond its store budget.
    await client.call(commands.Queue.Declare(queue=QUEUE, durable=True,
                                             arguments={"x-queue-mode": "lazy"}),
                      commands.Queue.DeclareOk)
    await client.call(commands.Confirm.Select(), commands.Confirm.SelectOk)
    confirms = Confirms(client)
    sent = 0
    empty_rate = None
    try:
        for target in steps:
            while sent < target:
                n = min(CHUNK, target - sent)
                n -= n % BLOCK
                cpu = broker.cpu_seconds()
                took = await fill(client, confirms, sent, n, block, CHUNK_TIMEOUT)
                sent += n
                rate = n / took
                empty_rate = empty_rate or rate
                depth = await queue_depth(broker)
                rss = broker.rss_mib()
                row = dict(depth=depth, chunk=n, publish_rate=round(rate),
                           rate_vs_empty=round(rate / empty_rate, 3),
                           cpu_us_per_publish=round((broker.cpu_seconds() - cpu) / n * 1e6, 2),
                           rss_mib=round(rss, 1), base_rss_mib=round(base_rss, 1),
                           bytes_per_message=round((rss - base_rss) * 2**20 / depth))
                if depth != sent or confirms.nacked:
                    row["error"] = f"depth {depth} after {sent} confirmed, {confirms.nacked} nacks"
                print(f"# {broker.name} depth {depth:,}: {rate:,.0f} msg/s, RSS {rss:.0f} MiB",
                      flush=True)
                if sent == target:
                    record(out, "backlog", broker, target, **row)
        confirms.stop()
        client.close()
        # kill -9 with the full backlog, then recovery and a drain
        broker.kill()
        started = time.monotonic()
        broker.start(timeout=RECOVERY_TIMEOUT)
        recovered = None
        deadline = started + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                recovered = await queue_depth(broker)
                if recovered >= sent:
                    break
            except (ConnectionError, OSError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.5)
        recovery_s = time.monotonic() - started
        rss_recovered = broker.rss_mib()
        peak_recovery = proc_status(broker.pid)["VmHWM"] / 2**20  # the restarted process's
        got, took = await drain(broker.port, min(DRAIN_MAX, sent), DRAIN_TIMEOUT)
        record(out, "backlog_recovery", broker, sent, recovered=recovered,
               recovery_seconds=round(recovery_s, 1), rss_after_recovery_mib=round(rss_recovered, 1),
               peak_rss_recovery_mib=round(peak_recovery, 1),
               drained=got, drain_rate=round(got / took) if took else None,
               rss_after_drain_mib=round(broker.rss_mib(), 1),
               **({} if recovered == sent else {"error": f"recovered {recovered} of {sent}"}))
    finally:
        broker.close()


def run(make: Callable[[str], Broker], brokers: list[str], steps: list[int],
        out: Path | None, work: Path) -> None:
    steps = sorted(int(s) for s in steps)
    free = shutil.disk_usage(work).free
    fitting = [s for s in steps if disk_needed(s) <= free]
    if len(fitting) < len(steps):
        print(f"# backlog: {free / 2**30:.0f} GiB free; skipping depths "
              f"{[s for s in steps if s not in fitting]} (each needs ~1.3 KiB per message)")
    if not fitting:
        return
    for name in brokers:
        broker = make(name)
        try:
            asyncio.run(run_broker(broker, fitting, out))
        except Exception as exc:  # one broker's failure is a record, not the end of the run
            record(out, "backlog", broker, fitting[-1], error=f"{type(exc).__name__}: {exc}")
