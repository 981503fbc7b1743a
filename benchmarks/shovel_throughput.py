"""Shovel throughput into an `amqpbroker serve` process: N persistent messages (100 B) in a
durable queue on the source; the destination broker starts with a shovel in its config
(on-confirm by default) and the clock runs until all N are in its queue.

    .venv/bin/python benchmarks/shovel_throughput.py [N] [ack-mode] [prefetch] [source]

source: `amqpbroker` (default: a second `amqpbroker serve` process) or `rabbitmq` (a
private node of Debian's rabbitmq-server on free ports, as the tests start it:
tests/rabbitmq_node.py). Prints the rate from the first to the last message moved, and
the rate including the destination broker's start.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def serve(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0",
                             "--mqtt-ws-port", "0", "--management-port", "0",
                             "--host", "127.0.0.1",
                             "--port", "0", *args], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"listening on port (\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, int(m.group(1))
    raise SystemExit("broker did not start")


async def depth(url: str, queue: str) -> int:
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel()
        try:
            q = await ch.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return 0
        return q.declaration_result.message_count


async def fill(url: str, n: int) -> None:
    async with await aio_pika.connect(url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("bench", durable=True)
        for lo in range(0, n, 1000):
            await asyncio.gather(*(ch.default_exchange.publish(
                aio_pika.Message(b"x" * 100, delivery_mode=2), routing_key="bench")
                for _ in range(lo, min(n, lo + 1000))))


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    ack_mode = sys.argv[2] if len(sys.argv) > 2 else "on-confirm"
    prefetch = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    source = sys.argv[4] if len(sys.argv) > 4 else "amqpbroker"
    with tempfile.TemporaryDirectory() as d:
        rabbit = src = None
        if source == "rabbitmq":
            from rabbitmq_node import RabbitNode

            rabbit = RabbitNode(Path(d) / "rabbitmq")
            rabbit.start()
            surl = rabbit.url
        else:
            src, sport = serve("--data-dir", f"{d}/src")
            surl = f"amqp://guest:guest@127.0.0.1:{sport}/"
        dst = None
        try:
            await fill(surl, n)
            cfg = f"{d}/dst.json"
            with open(cfg, "w") as f:
                json.dump({"parameters": [{"component": "shovel", "name": "bench", "value": {
                    "src-uri": surl, "src-queue": "bench", "src-prefetch-count": prefetch,
                    "dest-uri": "amqp://", "dest-queue": "bench", "ack-mode": ack_mode}}]}, f)
            started = time.perf_counter()
            dst, dport = serve("--data-dir", f"{d}/dst", "--config", cfg)
            durl = f"amqp://guest:guest@127.0.0.1:{dport}/"
            first = None
            deadline = time.monotonic() + 600
            while (got := await depth(durl, "bench")) < n:
                if got and first is None:
                    first = (time.perf_counter(), got)
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {got:,} of {n:,} moved in 600 s")
                await asyncio.sleep(0.1)
            end = time.perf_counter()
            took = end - started
            t0, n0 = first if first is not None else (started, 0)
            rate = (n - n0) / (end - t0) if end > t0 else float("nan")
            load = os.getloadavg()[0]
            print(f"shovel {source} -> amqpbroker, {ack_mode}, prefetch {prefetch}: {n:,} "
                  f"persistent 100 B messages; {rate:,.0f} msg/s while moving, "
                  f"{n / took:,.0f} msg/s including the destination's start ({took:.1f} s); "
                  f"load average {load:.1f}")
        finally:
            for p in (src, dst):
                if p is not None:
                    p.terminate()
                    p.wait(30)
            if rabbit is not None:
                rabbit.stop()


if __name__ == "__main__":
    asyncio.run(main())
