"""Command line of ``amqpbroker perf``: options, URI parsing and checks.

Everything here is pure: :func:`parse_args` turns argv into a :class:`Config`
(a plain picklable dataclass that is also handed to the worker processes) or
raises :class:`UsageError`.
"""

from __future__ import annotations

import argparse
import dataclasses
import urllib.parse

EXCHANGES = ("default", "direct", "fanout", "topic")
MAX_QUEUES = 1000
DEFAULT_URI = "amqp://guest:guest@127.0.0.1:5672/"


class UsageError(ValueError):
    """Bad command line; the message says what is wrong."""


@dataclasses.dataclass
class Config:
    uri: str = DEFAULT_URI
    host: str = "127.0.0.1"
    port: int = 5672
    user: str = "guest"
    password: str = "guest"
    vhost: str = "/"
    label: str = "run"
    producers: int = 1
    consumers: int = 1
    queues: int = 1
    exchange: str = "default"
    bindings: int = 1000
    size: int = 16
    persistent: bool = False
    durable: bool = False
    confirm: int = 0
    ack: str = "auto"
    multi_ack: int = 1
    prefetch: int = 0
    count: int = 0
    duration: float = 0.0
    drain: float = 30.0
    settle: float = 0.3
    rate: float = 0.0
    connections: int = 0
    hold: float = 10.0
    conn_threads: int = 16
    open_timeout: float = 30.0
    json: bool = False
    timeout: float = 0.0
    broker_pid: int = 0
    frame_max: int = 131072

    @property
    def manual_ack(self) -> bool:
        return self.ack == "manual"

    @property
    def stamped(self) -> bool:
        """Bodies of 16 bytes or more carry [send time ns][id] (little endian)."""
        return self.size >= 16


def parse_uri(uri: str) -> dict[str, object]:
    """Split ``amqp://user:pass@host:port/vhost`` (vhost %-encoded, e.g. %2F).

    An empty path, or a bare ``/``, means the default vhost ``/``, as pika does.
    """
    u = urllib.parse.urlsplit(uri)
    if u.scheme != "amqp":
        raise UsageError(f"--uri: only amqp:// URIs are supported, not {u.scheme or uri!r}")
    try:
        port = u.port or 5672
    except ValueError as e:
        raise UsageError(f"--uri: bad port in {uri!r}") from e
    path = u.path[1:] if u.path.startswith("/") else u.path
    return {
        "host": u.hostname or "127.0.0.1",
        "port": port,
        "user": urllib.parse.unquote(u.username) if u.username is not None else "guest",
        "password": urllib.parse.unquote(u.password) if u.password is not None else "guest",
        "vhost": urllib.parse.unquote(path) if path else "/",
    }


def _positive_float(text: str) -> float:
    v = float(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amqpbroker perf",
        description="Load generator for any AMQP 0-9-1 broker. Producers and consumers run "
        "in separate processes; every run verifies what was delivered and stops by itself. "
        "Exit codes: 0 OK, 1 FAIL (verification), 2 connection/protocol error, 3 timeout.",
    )
    a = p.add_argument
    a("--uri", default=DEFAULT_URI, help="broker URI, vhost %%-encoded (default %(default)s)")
    a("--label", default="run", help="tag used in queue names and the report")
    a("--producers", type=int, default=1, metavar="N")
    a("--consumers", type=int, default=1, metavar="M", help="0 = publish only, verified by queue depth")
    a("--queues", type=int, default=1, metavar="K")
    a("--exchange", choices=EXCHANGES, default="default")
    a("--bindings", type=int, default=1000, metavar="B",
      help="topic only: B/4 keys, families a.*.c.N  #.N  *.b.*.N  N.#.z (default 1000)")
    a("--size", type=int, default=16, metavar="BYTES", help=">= 16 carries a timestamp and id")
    a("--persistent", action="store_true", help="delivery_mode 2")
    a("--durable", action="store_true", help="durable queues and exchange")
    a("--confirm", type=int, default=0, metavar="WINDOW",
      help="publisher confirms, at most WINDOW outstanding per producer (0 = off)")
    a("--ack", choices=("auto", "manual"), default="auto")
    a("--multi-ack", type=int, default=1, metavar="N", help="manual ack every Nth delivery, multiple=1")
    a("--prefetch", type=int, default=0, metavar="N", help="basic.qos prefetch_count (0 = none)")
    a("--count", type=int, default=0, metavar="N", help="total messages over all producers")
    a("--duration", type=_positive_float, default=0.0, metavar="S", help="publishing time")
    a("--drain", type=_positive_float, default=30.0, metavar="S",
      help="time allowed for deliveries after publishing ends (default 30)")
    a("--settle", type=_positive_float, default=0.3, metavar="S",
      help="deliveries must stay at the expected count this long (duplicate check)")
    a("--rate", type=_positive_float, default=0.0, metavar="R", help="fixed total msg/s over all producers")
    a("--connections", type=int, default=0, metavar="N", help="connection mode: open N connections")
    a("--hold", type=_positive_float, default=10.0, metavar="S", help="connection mode: hold time")
    a("--conn-threads", type=int, default=16, metavar="T", help="connection mode: opener threads")
    a("--open-timeout", type=_positive_float, default=30.0, metavar="S",
      help="connection mode: stop opening after S seconds")
    a("--json", action="store_true", help="print one JSON object instead of a table")
    a("--timeout", type=_positive_float, default=0.0, metavar="S",
      help="hard limit for the whole run (default: duration + drain + 30, or hold + open-timeout + 60)")
    a("--broker-pid", type=int, default=0, metavar="PID", help="read broker CPU and RSS from /proc")
    return p


def validate(c: Config) -> None:
    """Raise UsageError on impossible or ambiguous combinations."""
    if c.connections < 0 or c.conn_threads < 1:
        raise UsageError("--connections must be >= 0 and --conn-threads >= 1")
    if c.connections:
        return
    if c.producers < 1:
        raise UsageError("--producers must be >= 1")
    if c.consumers < 0:
        raise UsageError("--consumers must be >= 0")
    if not 1 <= c.queues <= MAX_QUEUES:
        raise UsageError(f"--queues must be 1..{MAX_QUEUES}")
    if c.size < 0 or c.size > 64 * 1024 * 1024:
        raise UsageError("--size must be 0..67108864")
    if c.confirm < 0 or c.multi_ack < 1 or c.count < 0:
        raise UsageError("--confirm, --count must be >= 0 and --multi-ack >= 1")
    if not 0 <= c.prefetch <= 65535:
        raise UsageError("--prefetch must be 0..65535")
    if c.exchange == "topic" and c.bindings < 4:
        raise UsageError("--bindings must be >= 4 (four families per key)")
    if not c.count and not c.duration:
        raise UsageError("give --count N or --duration S (or --connections N)")
    if c.count and c.duration:
        raise UsageError("give only one of --count and --duration")


def parse_args(argv: list[str] | None) -> Config:
    """Parse argv (without the program name). Raises UsageError or SystemExit (--help)."""
    parser = build_parser()

    def _error(message: str) -> None:  # argparse would print usage and exit(2)
        raise UsageError(message)

    parser.error = _error  # type: ignore[method-assign]
    ns = parser.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(Config)}
    kw = {k: v for k, v in vars(ns).items() if k in fields}
    kw.update(parse_uri(ns.uri))
    c = Config(**kw)
    validate(c)
    if not c.timeout:
        if c.connections:
            c.timeout = c.open_timeout + c.hold + 60
        elif c.duration:
            c.timeout = c.duration + c.drain + 30
        else:  # count mode: allow 60 s of publishing (or count/rate when slower)
            pub = c.count / c.rate if c.rate else 60.0
            c.timeout = max(pub, 60.0) + c.drain + 30
    return c
