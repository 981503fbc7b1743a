"""Micro-benchmark of the stream log (not a test): append and replay rates.

    python tests/store/bench_stream_log.py [--count 1000000] [--body 100] [--batch 1000]
                                           [--no-fsync] [--dir /some/where]

Appends `count` small messages (default 1,000,000 of 100 bytes, with the property bytes
of a persistent text/plain message), calling `sync()` after every `batch` (group commit,
as the broker does once per read batch), then reopens the log (recovery) and replays
everything from "first" with one cursor, then with a filter that matches one message in
ten. Prints rates and the RSS growth while replaying.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pamqp import commands  # noqa: E402

from amqpbroker.protocol.properties import encode_properties  # noqa: E402
from amqpbroker.store.stream_log import StreamLog  # noqa: E402


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--body", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--segment", type=int, default=64 << 20)
    args = ap.parse_args()

    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-stream-"))
    path = root / "stream"
    shutil.rmtree(path, ignore_errors=True)
    props = encode_properties(commands.Basic.Properties(content_type="text/plain",
                                                        delivery_mode=2))
    body = b"x" * args.body
    fsync = not args.no_fsync
    try:
        log = StreamLog(path, sync=fsync, max_segment_bytes=args.segment)
        append, sync, batch = log.append, log.sync, args.batch
        t0 = time.perf_counter()
        for i in range(args.count):
            append("amq.direct", "bench", props, body, "f%d" % (i % 10))
            if i % batch == batch - 1:
                sync()
        sync()
        t_append = time.perf_counter() - t0
        size = log.size_bytes
        log.close()

        t0 = time.perf_counter()
        log = StreamLog(path, sync=fsync, max_segment_bytes=args.segment)
        t_open = time.perf_counter() - t0

        cur = log.open_cursor("first")
        nxt = cur.next
        rss0 = rss_mb()
        t0 = time.perf_counter()
        n = 0
        while nxt() is not None:
            n += 1
        t_replay = time.perf_counter() - t0
        rss1 = rss_mb()
        assert n == args.count, n

        cur = log.open_cursor("first", filters=["f3"])
        t0 = time.perf_counter()
        m = sum(1 for _ in cur)
        t_filter = time.perf_counter() - t0
        log.close()
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)

    mode = f"fsync every {batch}" if fsync else f"no fsync (write every {batch})"
    print(f"{args.count:,} messages, {args.body}-byte bodies, {size / args.count:.0f} bytes "
          f"each on disk ({size / 2**20:.0f} MiB), {mode}")
    print(f"append:   {args.count / t_append:12,.0f} msg/s  ({t_append:.2f} s)")
    print(f"reopen:   {t_open * 1000:12,.1f} ms     (recovery of {log.segment_count} segments)")
    print(f"replay:   {n / t_replay:12,.0f} msg/s  ({t_replay:.2f} s, RSS {rss1 - rss0:+.1f} MiB)")
    print(f"filtered: {args.count / t_filter:12,.0f} msg/s scanned, {m:,} matched "
          f"({t_filter:.2f} s)")


if __name__ == "__main__":
    main()
