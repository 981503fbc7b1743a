"""Delayed messages over the network: publish rate into a durable x-delayed-message
exchange (publisher confirms, so each message is on disk), then firing lateness while
RATE messages per second fall due: in the broker (routing time - due time, recorded by
the broker process this script starts) and at a consumer (receive time - due time).

    .venv/bin/python benchmarks/delayed_firing.py [N] [RATE] [consumer|no-consumer]

With `no-consumer` the due messages pile up in the queue: the broker's firing lateness
without the CPU of a consumer process on the same machine.

Starts its own broker process (an embedded `Broker` with a temporary data dir, with
the delayed index's lateness recording switched on) on a free port.
"""

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time

import aio_pika


async def serve(data_dir: str) -> None:
    """Child process: the broker, until stdin closes; then the firing lateness."""
    import logging

    import structlog

    from amqpbroker.embed import Broker

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    async with Broker(data_dir=data_dir) as broker:
        vhost = broker.core.vhosts["/"]
        vhost.delayed.lateness = []
        print(f"PORT {broker.port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        late = vhost.delayed.lateness
        if late:
            print(f"firing in the broker: {len(late):,} messages; lateness (ms): "
                  f"p50={pct(late, 0.5):.1f} p99={pct(late, 0.99):.1f} "
                  f"p99.9={pct(late, 0.999):.1f} max={max(late):.1f}", flush=True)


def start_broker(data_dir: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", data_dir],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.match(r"PORT (\d+)", line)
    if not m:
        raise SystemExit(f"broker did not start: {line!r}")
    return proc, int(m.group(1))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def run(port: int, n: int, rate: int, consume: bool = True) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    pub = await aio_pika.connect(url)
    ch = await pub.channel(publisher_confirms=True)
    ex = await ch.declare_exchange("bench-delayed", "x-delayed-message", durable=True,
                                   arguments={"x-delayed-type": "direct"})
    q = await ch.declare_queue("bench-delayed-q", durable=True)
    await q.bind(ex, routing_key="k")
    t0 = time.time() + 8 + n / 2500  # the first message falls due after publishing ends
    started = time.perf_counter()
    window = 1000
    for lo in range(0, n, window):
        batch = []
        for i in range(lo, min(n, lo + window)):
            due = t0 + i / rate
            delay = max(1, int((due - time.time()) * 1000))
            # due in integer ms: pamqp would send a float as a 32-bit float
            batch.append(ex.publish(aio_pika.Message(
                b"x" * 100, delivery_mode=2, headers={"x-delay": delay,
                                                      "due": int(due * 1000)}),
                routing_key="k"))
        await asyncio.gather(*batch)
    took = time.perf_counter() - started
    print(f"publish (confirmed, persistent, 100 B) into the delayed exchange: "
          f"{n / took:,.0f} msg/s ({n:,} in {took:.1f} s)")
    if time.time() > t0:
        print("warning: publishing ended after the first due time; lateness is inflated")

    if not consume:
        deadline = time.time() + n / rate + 120
        while time.time() < deadline:
            await asyncio.sleep(0.5)
            depth = (await ch.declare_queue("bench-delayed-q", passive=True)
                     ).declaration_result.message_count
            if depth >= n:
                break
        print(f"no consumer: {depth:,} of {n:,} messages routed, due at {rate:,}/s "
              f"over {n / rate:.1f} s; load average {os.getloadavg()[0]:.1f}")
        await pub.close()
        return
    con = await aio_pika.connect(url)
    cch = await con.channel()
    await cch.set_qos(prefetch_count=2000)
    cq = await cch.get_queue("bench-delayed-q")
    late: list[float] = []
    done = asyncio.Event()

    async def on_message(m: aio_pika.abc.AbstractIncomingMessage) -> None:
        late.append(time.time() * 1000 - m.headers["due"])
        if len(late) >= n:
            done.set()

    await cq.consume(on_message, no_ack=True)
    await asyncio.wait_for(done.wait(), n / rate + 120)
    span = n / rate
    print(f"consumer (aio-pika, no-ack): {n:,} messages due at {rate:,}/s over {span:.1f} s; lateness at the "
          f"consumer (ms): p50={pct(late, 0.5):.1f} p99={pct(late, 0.99):.1f} "
          f"p99.9={pct(late, 0.999):.1f} max={max(late):.1f} min={min(late):.1f}; "
          f"load average {os.getloadavg()[0]:.1f}")
    await con.close()
    await pub.close()


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(serve(sys.argv[2]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    consume = (sys.argv[3] if len(sys.argv) > 3 else "consumer") != "no-consumer"
    with tempfile.TemporaryDirectory() as d:
        proc, port = start_broker(d)
        try:
            asyncio.run(run(port, n, rate, consume))
        finally:
            out, _ = proc.communicate("", timeout=60)  # close stdin: the broker reports
            print(out, end="")


if __name__ == "__main__":
    main()
