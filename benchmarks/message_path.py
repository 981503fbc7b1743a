"""The message path without sockets: CPU per message of the sans-IO broker, fed recorded
frames in reads the size uvloop hands over, so that what the Python code costs is measured
apart from the kernel and the event loop.

    .venv/bin/python benchmarks/message_path.py [S1|S2|S4|S5|X1] [--messages N]
                                                [--rounds R] [--per-read M] [--profile]

The C generator's scenarios (../shared/bench/suite.py). S1: 16 B to the default exchange,
one auto-ack consumer. S2: 1 KiB, a manual-ack consumer with prefetch 100 that acks every
delivery (100 publishes, then their 100 acks, per round trip). S4: 64 B to a fanout
exchange bound to 10 queues, an auto-ack consumer on each (its own connection). S5: 16 B
to a topic exchange with 1,000 bindings over 4 queues (the generator's four binding
families), 250 routing keys in turn, each matching 3 queues; an auto-ack consumer on each
queue. X1: 16 B, no consumer (the queue is purged now and then). Prints the CPU time per
message (per delivery for S4 and S5) of each round and the best; `--profile` prints cProfile's top functions instead
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


def publish(size: int, exchange: str = "", routing_key: str = QUEUE) -> bytes:
    body = b"x" * size
    return (frame.marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key), 1)
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


# The generator's topic binding families: binding j is family j % 4 with number j // 4,
# to queue (j // 4 + j % 4) % 4; key "a.b.c.N" matches a.*.c.N, #.N and *.b.*.N.
TOPIC_FAMILIES = ("a.*.c.{}", "#.{}", "*.b.*.{}", "{}.#.z")


class Scenario:
    def __init__(self, name: str, per_read: int | None) -> None:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        self.name = name
        self.core = BrokerCore(Settings(data_dir=None), MemoryMessageStore(),
                               MemoryDefinitionStore())
        self.publisher = open_connection(self.core)
        queues = {"S4": 10, "S5": 4}.get(name, 1)
        names = [QUEUE] if queues == 1 else [f"{QUEUE}-q{i}" for i in range(queues)]
        for q in names:
            feed(self.publisher, frames(1, commands.Queue.Declare(queue=q)))
        self.fan_out = {"S4": 10, "S5": 3}.get(name, 1)  # deliveries per publish
        # S2's round trip is its prefetch window unless asked otherwise: 100 publishes,
        # then their acks. The generator's consumer acks about 8 at a time (perf stat on
        # the broker's reads), which `--per-read 8` reproduces.
        self.per_read = per_read or (100 if name == "S2" else 3600)
        if name == "S4":
            feed(self.publisher, frames(1, commands.Exchange.Declare(
                exchange="fan", exchange_type="fanout")))
            for q in names:
                feed(self.publisher, frames(1, commands.Queue.Bind(queue=q, exchange="fan")))
            self.read = publish(64, "fan", "") * self.per_read
        elif name == "S5":
            feed(self.publisher, frames(1, commands.Exchange.Declare(
                exchange="topic", exchange_type="topic")))
            for j in range(1000):
                feed(self.publisher, frames(1, commands.Queue.Bind(
                    queue=names[(j // 4 + j % 4) % 4], exchange="topic",
                    routing_key=TOPIC_FAMILIES[j % 4].format(j // 4))))
            self.read = b"".join(publish(16, "topic", f"a.b.c.{i % 250}")
                                 for i in range(self.per_read))
        else:
            self.read = publish(1024 if name == "S2" else 16) * self.per_read
        self.consumers = []
        if name != "X1":
            for q in names:
                con = open_connection(self.core)
                if name == "S2":
                    feed(con, frames(1, commands.Basic.Qos(prefetch_count=100)))
                feed(con, frames(1, commands.Basic.Consume(
                    queue=q, consumer_tag="c", no_ack=name != "S2")))
                self.consumers.append(con)
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
        pub, consumers, read = self.publisher, self.consumers, self.read
        con = consumers[0] if consumers else None
        purge = frames(1, commands.Queue.Purge(queue=QUEUE))
        start = time.process_time()
        for i in range(reads):
            feed(pub, read)
            pub.data_to_send()
            for c in consumers:
                c.data_to_send()
            if acks:
                feed(con, acks[i])
                con.data_to_send()
            elif self.name == "X1" and i % 50 == 49:
                feed(pub, purge)
        return (time.process_time() - start) / (reads * self.per_read * self.fan_out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", nargs="?", default="S1", choices=["S1", "S2", "S4", "S5", "X1"])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-read", type=int, default=None,
                    help="publishes per read (default 3600 x 68 bytes: the 245 KB reads "
                         "uvloop hands over under S1; for S2, 100 publishes and then "
                         "their 100 acks)")
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
