"""The message path without sockets: CPU per message of the sans-IO broker, fed recorded
frames in reads the size uvloop hands over, so that what the Python code costs is measured
apart from the kernel and the event loop.

    .venv/bin/python benchmarks/message_path.py [S1|S2|X1] [--messages N] [--rounds R]
                                                [--per-read M] [--profile]

S1: 16 B to the default exchange, one auto-ack consumer. S2: 1 KiB, a manual-ack consumer
with prefetch 100 that acks every delivery (100 publishes, then their 100 acks, per round
trip). X1: 16 B, no consumer (the queue is purged now and then). Prints the CPU time per
message of each round and the best; `--profile` prints cProfile's top functions instead
(per-call costs are inflated by the profiler: use it for shares and call counts).

Everything runs in this process on an in-memory broker core (`BrokerCore` with the memory
stores), with the two connections (`ClientConnection`) driven as the server drives them:
`feed(read, now)` and `data_to_send()`, input held by the turn budget fed again.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import time

import structlog
from pamqp import body as pbody
from pamqp import commands, frame, header

from amqpbroker.core import BrokerCore
from amqpbroker.protocol.frames import PROTOCOL_HEADER
from amqpbroker.session.connection import ClientConnection
from amqpbroker.settings import Settings
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore

QUEUE = "bench"


def frames(channel: int, *methods) -> bytes:
    return b"".join(frame.marshal(m, channel) for m in methods)


def publish(size: int) -> bytes:
    body = b"x" * size
    return (frame.marshal(commands.Basic.Publish(exchange="", routing_key=QUEUE), 1)
            + frame.marshal(header.ContentHeader(0, size, commands.Basic.Properties()), 1)
            + frame.marshal(pbody.ContentBody(body), 1))


def open_connection(core: BrokerCore) -> ClientConnection:
    conn = ClientConnection(core, "bench:1", 0.0)
    for data in (PROTOCOL_HEADER,
                 frames(0, commands.Connection.StartOk(
                     client_properties={}, mechanism="PLAIN", response="\0guest\0guest",
                     locale="en_US")),
                 frames(0, commands.Connection.TuneOk(channel_max=2047, frame_max=131072,
                                                      heartbeat=0),
                        commands.Connection.Open(virtual_host="/")),
                 frames(1, commands.Channel.Open())):
        conn.feed(data, 0.0)
    conn.data_to_send()
    return conn


def feed(conn: ClientConnection, data: bytes) -> None:
    conn.feed(data, 0.0)
    while conn.input_waiting:  # the server's later turns
        conn.feed(b"", 0.0)


class Scenario:
    def __init__(self, name: str, per_read: int) -> None:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        self.name = name
        self.core = BrokerCore(Settings(data_dir=None), MemoryMessageStore(),
                               MemoryDefinitionStore())
        self.publisher = open_connection(self.core)
        self.consumer = open_connection(self.core)
        feed(self.publisher, frames(1, commands.Queue.Declare(queue=QUEUE)))
        if name == "S2":
            feed(self.consumer, frames(1, commands.Basic.Qos(prefetch_count=100)))
        if name != "X1":
            feed(self.consumer, frames(1, commands.Basic.Consume(
                queue=QUEUE, consumer_tag="c", no_ack=name == "S1")))
        self.per_read = 100 if name == "S2" else per_read
        self.read = publish(1024 if name == "S2" else 16) * self.per_read
        self.next_tag = 1

    def run(self, messages: int) -> float:
        """CPU seconds per message for `messages` (rounded down to whole reads)."""
        reads = max(1, messages // self.per_read)
        acks = []
        if self.name == "S2":  # recorded before the clock starts
            for _ in range(reads):
                acks.append(frames(1, *(commands.Basic.Ack(delivery_tag=t) for t in range(
                    self.next_tag, self.next_tag + self.per_read))))
                self.next_tag += self.per_read
        pub, con, read = self.publisher, self.consumer, self.read
        purge = frames(1, commands.Queue.Purge(queue=QUEUE))
        start = time.process_time()
        for i in range(reads):
            feed(pub, read)
            pub.data_to_send()
            con.data_to_send()
            if acks:
                feed(con, acks[i])
                con.data_to_send()
            elif self.name == "X1" and i % 50 == 49:
                feed(pub, purge)
        return (time.process_time() - start) / (reads * self.per_read)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", nargs="?", default="S1", choices=["S1", "S2", "X1"])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-read", type=int, default=3600,
                    help="publishes per read (3600 x 68 bytes: the 245 KB reads uvloop "
                         "hands over under S1)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    scenario = Scenario(args.scenario, args.per_read)
    scenario.run(args.messages // 10)  # warm up: caches filled, code specialised
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(scenario.run, args.messages)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    results = [scenario.run(args.messages) * 1e6 for _ in range(args.rounds)]
    print(f"{args.scenario}: " + " ".join(f"{r:.2f}" for r in results)
          + f" us of CPU per message; best {min(results):.2f}")


if __name__ == "__main__":
    main()
