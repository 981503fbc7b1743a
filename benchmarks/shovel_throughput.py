"""Shovel throughput between two `amqpbroker serve` processes: N persistent messages
(100 B) in a durable queue on the source; the destination broker starts with a shovel in
its config (on-confirm by default) and the clock runs until all N are in its queue.

    .venv/bin/python benchmarks/shovel_throughput.py [N] [ack-mode] [prefetch]
"""

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import threading
import time

import aio_pika


def serve(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "amqpbroker", "serve", "--mqtt-port", "0", "--mqtt-ws-port", "0", "--management-port", "0",
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


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    ack_mode = sys.argv[2] if len(sys.argv) > 2 else "on-confirm"
    prefetch = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    with tempfile.TemporaryDirectory() as d:
        src, sport = serve("--data-dir", f"{d}/src")
        surl = f"amqp://guest:guest@127.0.0.1:{sport}/"
        async with await aio_pika.connect(surl) as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.declare_queue("bench", durable=True)
            for lo in range(0, n, 1000):
                await asyncio.gather(*(ch.default_exchange.publish(
                    aio_pika.Message(b"x" * 100, delivery_mode=2), routing_key="bench")
                    for _ in range(lo, min(n, lo + 1000))))
        cfg = f"{d}/dst.json"
        with open(cfg, "w") as f:
            json.dump({"parameters": [{"component": "shovel", "name": "bench", "value": {
                "src-uri": surl, "src-queue": "bench", "src-prefetch-count": prefetch,
                "dest-uri": "amqp://", "dest-queue": "bench", "ack-mode": ack_mode}}]}, f)
        started = time.perf_counter()
        dst, dport = serve("--data-dir", f"{d}/dst", "--config", cfg)
        durl = f"amqp://guest:guest@127.0.0.1:{dport}/"
        while await depth(durl, "bench") < n:
            await asyncio.sleep(0.1)
        took = time.perf_counter() - started
        print(f"shovel amqpbroker -> amqpbroker, {ack_mode}, prefetch {prefetch}: {n:,} "
              f"persistent 100 B messages in {took:.1f} s = {n / took:,.0f} msg/s "
              "(including the destination broker's start)")
        for p in (src, dst):
            p.terminate()
            p.wait(30)


if __name__ == "__main__":
    asyncio.run(main())
