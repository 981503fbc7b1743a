"""Bindings axis: what N topic bindings cost to create, to hold, and to route through.

    python interop/bench_scale.py bindings [--steps 1000,10000,100000,1000000]

Per step N and broker, a fresh broker gets one topic exchange ("scale.topic") and 8 queues
capped at 10,000 messages (`x-max-length`, overflow drop-head: what is published never piles
up, so RSS shows the bindings, not a backlog). Then:

1. Bind: N distinct bindings, spread over the 8 queues, in three families drawn with a
   seeded random generator (the same for every broker): 90% exact three-word keys
   ("a123.b45.c6"), 8% with `*` as the middle word ("a123.*.c6"), 2% with `#` ("a123.#").
   Words come from a space of 100,000 x 100 x 10 keys. The queue.bind frames are built before
   the clock starts and written over one raw connection, at most 2,000 outstanding (windows
   of 1,000, each answered by queue.bind-ok). Measured: binds per second, and RSS growth per
   binding in bytes (RSS 0.5 s after the last bind-ok minus RSS before the first bind).
2. Cold routing: up to 200,000 publishes of 16-byte bodies (stopped after 30 s), routing
   keys drawn from 1,000,000 keys of the same shape: 10% made to match a binding (exact,
   `*` or `#`), the rest random, so they mostly match nothing and almost every key is new to
   any routing cache (amqpbroker's holds 4,096). Pre-built, written as fast as the broker
   reads on one raw connection without confirms, then passive queue.declare round trips
   (one per queue) prove the broker handled them all. Measured: broker CPU seconds per
   publish (us), publishes per second, RSS after (which includes up to 8 x 10,000 queued
   messages). Also the share of publishes that matched and the queues reached per publish
   (computed here): the routing cost includes those enqueues, and the share grows with N
   (random keys hit the wildcard bindings more often: ~10% at 1k, ~35% at 1M).
3. Warm routing: the same, over only 1,000 distinct keys.

Bound: 600 s per broker and step (binding stops at 510 s and the step records an error;
each publish phase is cut at 30 s or the step deadline). 1M bindings take RabbitMQ a few
minutes (~2,800 binds/s here). Generating the step's keys and frames costs this process
about 15 s (outside the timed windows) and ~0.7 GB at 1M.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from pathlib import Path
from typing import Any, Callable

from pamqp import commands, frame

from .common import Broker, each_step

STEPS = (1000, 10000, 100000, 1000000)
AXIS = "bindings"
EXCHANGE = "scale.topic"
QUEUES = [f"scale.q{i}" for i in range(8)]
MAX_LENGTH = 10000
WINDOW = 1000               # binds per batch; two batches outstanding at most
PUBLISH_COUNT = 200_000
PUBLISH_SECONDS = 30.0
COLD_KEYS = 1_000_000
WARM_KEYS = 1_000
STEP_SECONDS = 600.0
BIND_RESERVE = 90.0         # of the step's 600 s, kept for the two publish phases
SEED = 23
A_WORDS, B_WORDS, C_WORDS = 100_000, 100, 10
SHARES = (0.90, 0.08, 0.02)  # exact, "*", "#"
MATCHING = 0.10             # share of publish keys made to match some binding
BODY = b"0123456789abcdef"
PUBLISH_CHUNK = 500         # publishes per write

BIND_OK = struct.pack(">BHIHHB", 1, 1, 4, 50, 21, 0xCE)
DECLARE_OK_ID = struct.pack(">HH", 50, 11)


# ----------------------------------------------------------------- raw AMQP client

class ProtocolError(RuntimeError):
    pass


class RawClient:
    """One blocking AMQP connection with channel 1 open, read and written as raw frames.

    A real client library would cost more CPU per frame than the broker does; this one
    writes frames built in advance and only parses what it waits for."""

    def __init__(self, port: int, timeout: float = 60.0, frame_max: int = 131072) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(commands.Connection.Start)
        self.send(commands.Connection.StartOk(
            client_properties={"product": "bench_scale"}, mechanism="PLAIN",
            response="\0guest\0guest"), 0)
        tune = self.expect(commands.Connection.Tune)
        self.frame_max = min(tune.frame_max or frame_max, frame_max)
        self.send(commands.Connection.TuneOk(channel_max=tune.channel_max or 2047,
                                             frame_max=self.frame_max, heartbeat=0), 0)
        self.send(commands.Connection.Open(virtual_host="/"), 0)
        self.expect(commands.Connection.OpenOk)
        self.send(commands.Channel.Open(), 1)
        self.expect(commands.Channel.OpenOk)

    def send(self, method: Any, channel: int = 1) -> None:
        self.sock.sendall(frame.marshal(method, channel))

    def fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ProtocolError("the broker closed the connection")
        self.buf += data

    def read_frame(self) -> tuple[int, int, bytes]:
        """(type, channel, payload) of the next frame."""
        while len(self.buf) < 7:
            self.fill()
        ftype, channel, size = struct.unpack_from(">BHI", self.buf)
        while len(self.buf) < size + 8:
            self.fill()
        payload = bytes(self.buf[7:7 + size])
        del self.buf[:size + 8]
        return ftype, channel, payload

    def method(self) -> Any:
        """The next method frame, decoded (other frames are skipped)."""
        while True:
            ftype, channel, payload = self.read_frame()
            if ftype != 1:
                continue
            _, _, m = frame.unmarshal(struct.pack(">BHI", 1, channel, len(payload))
                                      + payload + b"\xce")
            if isinstance(m, (commands.Connection.Close, commands.Channel.Close)):
                raise ProtocolError(f"{m.name}: {m.reply_code} {m.reply_text}")
            return m

    def expect(self, cls: type) -> Any:
        m = self.method()
        if not isinstance(m, cls):
            raise ProtocolError(f"expected {cls.__name__}, got {m.name}")
        return m

    def rpc(self, method: Any, reply: type) -> Any:
        self.send(method)
        return self.expect(reply)

    def count_bind_oks(self) -> int:
        """Take every complete bind-ok off the buffer (reading once if none is there)."""
        if len(self.buf) < len(BIND_OK):
            self.fill()
        n = len(self.buf) // len(BIND_OK)
        if self.buf[:n * len(BIND_OK)] != BIND_OK * n:
            self.method()  # raises on a channel/connection close
            raise ProtocolError("unexpected frame among the bind-oks")
        del self.buf[:n * len(BIND_OK)]
        return n

    def close(self) -> None:
        try:
            self.sock.settimeout(5)
            self.send(commands.Connection.Close(200, "done", 0, 0), 0)
            while not isinstance(self.method(), commands.Connection.CloseOk):
                pass
        except (OSError, ProtocolError):
            pass
        finally:
            self.sock.close()


def shortstr(s: str) -> bytes:
    b = s.encode()
    return bytes([len(b)]) + b


def bind_frame(queue: str, exchange: str, key: str) -> bytes:
    """queue.bind on channel 1, as pamqp would marshal it (the test checks), ~20x faster."""
    payload = (struct.pack(">HHH", 50, 20, 0) + shortstr(queue) + shortstr(exchange)
               + shortstr(key) + b"\x00" + b"\x00\x00\x00\x00")
    return struct.pack(">BHI", 1, 1, len(payload)) + payload + b"\xce"


def publish_frames(exchange: str, key: str, body: bytes) -> bytes:
    """basic.publish + content header (no properties) + one body frame, on channel 1."""
    m = struct.pack(">HHH", 60, 40, 0) + shortstr(exchange) + shortstr(key) + b"\x00"
    h = struct.pack(">HHQH", 60, 0, len(body), 0)
    return (struct.pack(">BHI", 1, 1, len(m)) + m + b"\xce"
            + struct.pack(">BHI", 2, 1, len(h)) + h + b"\xce"
            + struct.pack(">BHI", 3, 1, len(body)) + body + b"\xce")


# ------------------------------------------------------------------ the workload

class Workload:
    """The bindings and publish keys of one step, identical for every broker."""

    def __init__(self, n: int) -> None:
        # module constants read here, not as default arguments, so a test can shrink them
        cold_keys, warm_keys, count = COLD_KEYS, WARM_KEYS, PUBLISH_COUNT
        rng = random.Random(SEED + n)
        n_star = int(n * SHARES[1])
        n_hash = int(n * SHARES[2])
        n_exact = n - n_star - n_hash
        exact = distinct(rng, n_exact, lambda: (rng.randrange(A_WORDS), rng.randrange(B_WORDS),
                                                rng.randrange(C_WORDS)))
        star = distinct(rng, n_star, lambda: (rng.randrange(A_WORDS), rng.randrange(C_WORDS)))
        hashes = distinct(rng, n_hash, lambda: rng.randrange(A_WORDS))
        # (pattern, queue index); our own index of them, to count matches per key
        self.bindings: list[tuple[str, int]] = []
        self.exact: dict[str, set[int]] = {}
        self.star: dict[tuple[int, int], set[int]] = {}
        self.hash: dict[int, set[int]] = {}
        for a, b, c in exact:
            q = rng.randrange(len(QUEUES))
            self.bindings.append((f"a{a}.b{b}.c{c}", q))
            self.exact.setdefault(f"a{a}.b{b}.c{c}", set()).add(q)
        for a, c in star:
            q = rng.randrange(len(QUEUES))
            self.bindings.append((f"a{a}.*.c{c}", q))
            self.star.setdefault((a, c), set()).add(q)
        for a in hashes:
            q = rng.randrange(len(QUEUES))
            self.bindings.append((f"a{a}.#", q))
            self.hash.setdefault(a, set()).add(q)
        rng.shuffle(self.bindings)  # families interleaved, as real bindings come

        self.keys = [self.key(rng, exact, star, hashes) for _ in range(cold_keys)]
        self.cold = [self.keys[rng.randrange(len(self.keys))] for _ in range(count)]
        warm = self.keys[:warm_keys]
        self.warm = [warm[rng.randrange(len(warm))] for _ in range(count)]

    @staticmethod
    def key(rng: random.Random, exact: list, star: list, hashes: list) -> str:
        if rng.random() < MATCHING:
            family = rng.random()
            if exact and (family < SHARES[0] or not (star or hashes)):
                a, b, c = exact[rng.randrange(len(exact))]
                return f"a{a}.b{b}.c{c}"
            if star and (family < SHARES[0] + SHARES[1] or not hashes):
                a, c = star[rng.randrange(len(star))]
                return f"a{a}.b{rng.randrange(B_WORDS)}.c{c}"
            if hashes:
                a = hashes[rng.randrange(len(hashes))]
                return f"a{a}.b{rng.randrange(B_WORDS)}.c{rng.randrange(C_WORDS)}"
        return f"a{rng.randrange(A_WORDS)}.b{rng.randrange(B_WORDS)}.c{rng.randrange(C_WORDS)}"

    def queues_reached(self, key: str) -> int:
        a, b, c = key.split(".")
        ai, ci = int(a[1:]), int(c[1:])
        qs = set(self.exact.get(key, ())) | self.star.get((ai, ci), set()) \
            | self.hash.get(ai, set())
        return len(qs)

    def match_stats(self, keys: list[str]) -> dict[str, float]:
        reached = [self.queues_reached(k) for k in keys]
        return {"match_fraction": round(sum(1 for r in reached if r) / len(keys), 4),
                "queues_per_msg": round(sum(reached) / len(keys), 4),
                "distinct_keys": len(set(keys))}

    def bind_batches(self) -> list[bytes]:
        frames = [bind_frame(QUEUES[q], EXCHANGE, p) for p, q in self.bindings]
        return [b"".join(frames[i:i + WINDOW]) for i in range(0, len(frames), WINDOW)]

    @staticmethod
    def publish_chunks(keys: list[str]) -> list[tuple[bytes, int]]:
        """(frames, publishes in them), PUBLISH_CHUNK publishes per write."""
        return [(b"".join(publish_frames(EXCHANGE, k, BODY) for k in keys[i:i + PUBLISH_CHUNK]),
                 len(keys[i:i + PUBLISH_CHUNK])) for i in range(0, len(keys), PUBLISH_CHUNK)]


def distinct(rng: random.Random, n: int, draw: Callable[[], Any]) -> list:
    """n distinct draws (the spaces are at least 5x larger than n, so this ends quickly;
    the attempt cap only guards against a mis-sized space)."""
    seen: dict[Any, None] = {}
    for _ in range(20 * n + 100):
        if len(seen) >= n:
            break
        seen[draw()] = None
    return list(seen)


# -------------------------------------------------------------------- measuring

def bind_all(client: RawClient, batches: list[bytes], total: int, deadline: float
             ) -> tuple[int, float]:
    """Write the batches keeping at most two outstanding; (bindings confirmed, seconds)."""
    start = time.monotonic()
    sent_batches, sent, acked = 0, 0, 0
    while acked < total:
        while sent_batches < len(batches) and sent - acked < 2 * WINDOW:
            client.sock.sendall(batches[sent_batches])
            sent += min(WINDOW, total - sent_batches * WINDOW)
            sent_batches += 1
        acked += client.count_bind_oks()
        if time.monotonic() > deadline:
            break
    return acked, time.monotonic() - start


def publish_run(broker: Broker, client: RawClient, chunks: list[tuple[bytes, int]],
                deadline: float) -> dict[str, Any]:
    """Write the chunks (until PUBLISH_SECONDS or the deadline), then a passive declare:
    its answer comes after the broker has routed every publish before it."""
    cpu0, t0 = broker.cpu_seconds(), time.monotonic()
    stop = min(t0 + PUBLISH_SECONDS, deadline)
    sent = 0
    for chunk, count in chunks:
        if time.monotonic() > stop:
            break
        client.sock.sendall(chunk)
        sent += count
    # Every queue, not just one: RabbitMQ routes in the channel process and casts to the
    # queue processes; a queue answers the stat call only after the casts before it.
    for q in QUEUES:
        client.rpc(commands.Queue.Declare(queue=q, passive=True), commands.Queue.DeclareOk)
    took = time.monotonic() - t0
    cpu = broker.cpu_seconds() - cpu0
    if not sent:  # the step's deadline had passed already
        return {"published": 0, "publish_rate": None, "cpu_us_per_msg": None}
    return {"published": sent, "publish_rate": round(sent / took, 1),
            "cpu_us_per_msg": round(cpu / sent * 1e6, 3), "publish_s": round(took, 3),
            "rss_after_mib": round(broker.rss_mib(), 2)}


def measure(broker: Broker, load: Workload, deadline: float) -> dict[str, Any]:
    client = RawClient(broker.port)
    try:
        client.rpc(commands.Exchange.Declare(exchange=EXCHANGE, exchange_type="topic"),
                   commands.Exchange.DeclareOk)
        for q in QUEUES:
            client.rpc(commands.Queue.Declare(queue=q, arguments={
                "x-max-length": MAX_LENGTH, "x-overflow": "drop-head"}),
                commands.Queue.DeclareOk)
        batches = load.bind_batches()  # built outside the timed window
        time.sleep(0.5)  # let the broker settle after the declares
        rss0 = broker.rss_mib()
        bound, bind_s = bind_all(client, batches, len(load.bindings),
                                 deadline - BIND_RESERVE)
        del batches
        time.sleep(0.5)
        rss1 = broker.rss_mib()
        metrics: dict[str, Any] = {
            "bindings": bound, "bind_s": round(bind_s, 3),
            "bind_rate": round(bound / bind_s, 1) if bind_s > 0 else None,
            "rss_before_mib": round(rss0, 2), "rss_bound_mib": round(rss1, 2),
            "rss_per_binding_bytes": round((rss1 - rss0) * 2**20 / bound, 1) if bound else None}
        if bound < len(load.bindings):
            metrics["error"] = (f"binding stopped at the time bound: {bound} of "
                                f"{len(load.bindings)} in {bind_s:.0f} s")
            return metrics
        for phase, keys in (("cold", load.cold), ("warm", load.warm)):
            metrics.update({f"{phase}_{k}": v for k, v in load.match_stats(keys).items()})
            try:
                run = publish_run(broker, client, load.publish_chunks(keys), deadline)
            except (OSError, ProtocolError) as e:  # e.g. blocked for 60 s by an alarm
                metrics[f"{phase}_cpu_us_per_msg"] = None
                metrics["error"] = f"{phase} publishing: {type(e).__name__}: {e}"
                break
            metrics.update({f"{phase}_{k}": v for k, v in run.items()})
        return metrics
    finally:
        client.close()


def run(make: Callable[[str], Broker], brokers: list[str], steps: list, out: Path | None,
        work: Path) -> None:
    for n in steps:
        load = Workload(int(n))  # built before any broker starts: it is not what is timed
        each_step(make, brokers, [n], out, AXIS,
                  lambda broker, n: measure(broker, load, time.monotonic() + STEP_SECONDS),
                  bind_rate=None, cold_cpu_us_per_msg=None)
