"""Command line: `amqpbroker [serve] [options]`, `amqpbroker perf ...`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from amqpbroker import __version__, logs
from amqpbroker.settings import Settings


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the broker (the default command)")
    p.add_argument("--config", help="YAML configuration file")
    p.add_argument("--host", action="append",
                   help="address to listen on (repeatable; default: every IPv4 and IPv6 address)")
    p.add_argument("--port", type=int, help="port (default 5672; 0 picks a free one)")
    p.add_argument("--data-dir", help="where durable data lives")
    p.add_argument("--in-memory", action="store_true", help="keep nothing on disk")
    p.add_argument("--no-sync", action="store_true",
                   help="do not fsync before confirming (tests only: a crash can lose data)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", choices=["console", "json"])


def build_settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "config", None):
        from amqpbroker.config import load_settings

        settings = load_settings(args.config)
    if args.host:
        settings.host = args.host if len(args.host) > 1 else args.host[0]
    if args.port is not None:
        settings.port = args.port
    if args.data_dir:
        settings.data_dir = args.data_dir
    if args.in_memory:
        settings.data_dir = None
    if args.no_sync:
        settings.sync = False
    if args.log_level:
        settings.log_level = args.log_level
    if args.log_format:
        settings.log_format = args.log_format
    return settings


async def serve(settings: Settings) -> int:
    from amqpbroker.embed import Broker

    broker = Broker(settings)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"amqpbroker {__version__} listening on port {broker.port}", file=sys.stderr,
          flush=True)
    await stop.wait()
    await broker.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "perf":
        from amqpbroker.perf import main as perf_main

        return perf_main(argv[1:])
    parser = argparse.ArgumentParser(prog="amqpbroker", description="AMQP 0-9-1 broker")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command")
    _serve_parser(sub)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    settings = build_settings(args)
    logs.configure(settings.log_level, settings.log_format)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # the broker runs on the plain asyncio loop too
        runner = asyncio.run
    return runner(serve(settings))
