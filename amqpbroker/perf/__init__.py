"""``amqpbroker perf``: a load generator for any AMQP 0-9-1 broker.

Producers and consumers run in separate processes, each on a lean hand-written
client (pamqp for the handshake and setup, pre-encoded publish frames and a
minimal delivery reader on the hot paths).  Every run verifies what arrived,
is bounded by a watchdog and exits 0 OK, 1 FAIL, 2 connection/protocol error,
3 timeout.  See ``python -m amqpbroker.perf --help``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from .args import Config, UsageError, parse_args

__all__ = ["Config", "main", "parse_args"]


def _watchdog(deadline: float, on_timeout, done: threading.Event) -> None:
    while not done.wait(0.05):
        if time.monotonic() >= deadline:
            on_timeout()
            return


def main(argv: list[str] | None = None) -> int:
    """Run one benchmark; returns the exit code (prints the report on stdout)."""
    if argv is None:
        argv = sys.argv[1:]
    try:
        cfg = parse_args(argv)
    except UsageError as e:
        print(f"amqpbroker perf: {e} (see --help)", file=sys.stderr)
        return 2
    except SystemExit as e:          # --help
        return int(e.code or 0)
    from .conns import ConnectionsRun
    from .runner import ThroughputRun

    deadline = time.monotonic() + cfg.timeout
    run: ConnectionsRun | ThroughputRun = ConnectionsRun(cfg) if cfg.connections else ThroughputRun(cfg)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    done = threading.Event()
    dog = threading.Thread(target=_watchdog, args=(deadline, run.on_timeout, done), daemon=True, name="perf-watchdog")
    dog.start()
    try:
        return run.run()
    except KeyboardInterrupt:
        print("amqpbroker perf: interrupted", file=sys.stderr)
        if isinstance(run, ThroughputRun):
            run.stop_workers(2.0)
            run.teardown()
        return 2
    finally:
        done.set()
