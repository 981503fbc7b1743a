"""Command line.

    amqpbroker [serve] [--config FILE] [options]     run the broker (options override FILE)
    amqpbroker check FILE [--data-dir DIR]           validate a configuration file
    amqpbroker definitions export [--data-dir DIR] [--config FILE] [--format yaml|json]
    amqpbroker definitions import FILE [--data-dir DIR] [--config FILE]
    amqpbroker perf ...                              the load generator
    amqpbroker ctl COMMAND ...                       rabbitmqctl's commands (docs/management.md)

Exit codes: 0 success, 1 invalid configuration (or conflicts), 2 bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from amqpbroker import __version__, logs
from amqpbroker.collector import CollectorPolicy
from amqpbroker.fd_limit import raise_fd_limit
from amqpbroker.settings import PROMETHEUS_PORT, Settings


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the broker (the default command)")
    p.add_argument("--config", help="YAML configuration file (docs/configuration.md)")
    p.add_argument("--host", action="append",
                   help="address to listen on (repeatable; default: every IPv4 and IPv6 address)")
    p.add_argument("--port", type=int, help="port (default 5672; 0 picks a free one)")
    p.add_argument("--mqtt-port", type=int,
                   help="MQTT listener port (default 1883; 0 turns it off)")
    p.add_argument("--mqtt-ws-port", type=int,
                   help="MQTT over WebSocket port, path /ws (default 15675; 0 turns it off)")
    p.add_argument("--management-port", type=int, metavar="P",
                   help="management HTTP API port (default 15672; 0 turns it off)")
    p.add_argument("--prometheus-port", type=int, metavar="P",
                   help="Prometheus metrics port, /metrics (default 15692; 0 turns it off)")
    p.add_argument("--prometheus-tls-port", type=int, metavar="P",
                   help="Prometheus metrics over HTTPS (RabbitMQ's 15691; off unless given; "
                        "uses the --tls-* settings)")
    p.add_argument("--data-dir", help="where durable data lives")
    p.add_argument("--in-memory", action="store_true", help="keep nothing on disk")
    p.add_argument("--no-sync", action="store_true",
                   help="do not fsync before confirming (tests only: a crash can lose data)")
    p.add_argument("--tls-port", type=int,
                   help="amqps listener port (default 5671 when --tls-cert is given)")
    p.add_argument("--tls-cert", help="server certificate chain (PEM); turns amqps on")
    p.add_argument("--tls-key", help="private key (PEM; default: in --tls-cert)")
    p.add_argument("--tls-key-password-env", metavar="NAME",
                   help="environment variable holding the key's password")
    p.add_argument("--tls-ca", help="CA certificates (PEM) that sign client certificates")
    p.add_argument("--tls-verify", choices=["none", "peer"],
                   help="verify_none (default) or verify_peer: ask for a client certificate")
    p.add_argument("--tls-fail-if-no-peer-cert", action="store_true",
                   help="with --tls-verify peer: refuse clients without a certificate")
    p.add_argument("--tls-ciphers", help="OpenSSL cipher list for TLS 1.2")
    p.add_argument("--management-tls-port", type=int, metavar="P",
                   help="HTTPS management API port (RabbitMQ's 15671; off unless given; "
                        "uses the --tls-* settings)")
    p.add_argument("--mqtts-port", type=int, metavar="P",
                   help="MQTT over TLS port (RabbitMQ's 8883; off unless given)")
    p.add_argument("--mqtt-wss-port", type=int, metavar="P",
                   help="MQTT over secure WebSocket port, path /ws (RabbitMQ's 15676; off "
                        "unless given)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    c = p.add_argument_group("clustering (docs/clustering.md)")
    c.add_argument("--cluster", metavar="etcd://HOST:PORT[,...]",
                   help="join the cluster these etcd endpoints coordinate")
    c.add_argument("--node-name", help="this node's unique name in the cluster")
    c.add_argument("--replication-port", type=int, help="replication listener (default 5679)")
    c.add_argument("--advertise-host",
                   help="address other nodes reach this one at (default: the host name)")
    c.add_argument("--cluster-secret-file",
                   help="file holding the shared cluster secret (or set "
                        "AMQPBROKER_CLUSTER_SECRET)")
    p.add_argument("--log-format", choices=["console", "json"])


def _config_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate a configuration file and exit",
                       description="Print OK and a summary, or every problem with its "
                                   "file, line and key path (exit code 1).")
    p.add_argument("file", help="YAML configuration file (or a RabbitMQ definitions export)")
    p.add_argument("--data-dir", help="also check for conflicts with the topology stored here")
    d = sub.add_parser("definitions", help="export or import topology (broker stopped)")
    dsub = d.add_subparsers(dest="action", required=True)
    e = dsub.add_parser("export", help="print the stored durable topology, plus users, "
                                       "vhosts and permissions from --config")
    e.add_argument("--data-dir", help="data dir to read (default: the config's, or the "
                                      "default data dir)")
    e.add_argument("--config", help="configuration file (users, vhosts, permissions)")
    e.add_argument("--format", choices=["yaml", "json"], default="yaml",
                   help="yaml (default) or json (RabbitMQ's definitions format)")
    e.add_argument("--output", "-o", help="write here instead of standard output")
    i = dsub.add_parser("import", help="store a definitions file's durable exchanges, "
                                       "queues and bindings in a data dir (broker stopped)")
    i.add_argument("file", help="YAML configuration or JSON definitions (RabbitMQ export)")
    i.add_argument("--data-dir", help="data dir to write (default: the config's, or the "
                                      "default data dir)")
    i.add_argument("--config", help="configuration file (for its data_dir)")
    c = sub.add_parser("cluster", help="cluster status from etcd (docs/clustering.md)")
    csub = c.add_subparsers(dest="action", required=True)
    st = csub.add_parser("status", help="members, leader and term, ISR, follower lag")
    st.add_argument("--cluster", required=True, metavar="etcd://HOST:PORT[,...]")
    st.add_argument("--cluster-name", default="amqpbroker")
    st.add_argument("--json", action="store_true")


def build_settings(args: argparse.Namespace, config: Any = None) -> Settings:
    """The configuration file's settings (or the defaults), then the command line's."""
    if config is None and getattr(args, "config", None):
        from amqpbroker.config import load_config

        config = load_config(args.config)
    settings = config.settings if config is not None else Settings()
    if args.host:
        settings.host = args.host if len(args.host) > 1 else args.host[0]
    if args.port is not None:
        settings.port = args.port
    if args.mqtt_port is not None:
        settings.mqtt_port = args.mqtt_port or None
    if args.mqtt_ws_port is not None:
        settings.mqtt_ws_port = args.mqtt_ws_port or None
    if args.management_port is not None:
        settings.management_port = args.management_port or None
    if args.prometheus_port is not None:
        settings.prometheus_port = args.prometheus_port or None
    elif config is None or "prometheus_port" not in config.setting_values:
        settings.prometheus_port = PROMETHEUS_PORT  # serve's default, as management's
    if args.prometheus_tls_port is not None:
        settings.prometheus_tls_port = args.prometheus_tls_port or None
    if args.data_dir:
        settings.data_dir = args.data_dir
    if args.in_memory:
        settings.data_dir = None
    if args.no_sync:
        settings.sync = False
    _tls_args(args, settings)
    if args.log_level:
        settings.log_level = args.log_level
    if args.log_format:
        settings.log_format = args.log_format
    if getattr(args, "cluster", None):
        settings.cluster = args.cluster
    if getattr(args, "node_name", None):
        settings.node_name = args.node_name
    if getattr(args, "replication_port", None) is not None:
        settings.replication_port = args.replication_port
    if getattr(args, "advertise_host", None):
        settings.cluster_advertise_host = args.advertise_host
    if getattr(args, "cluster_secret_file", None):
        with open(args.cluster_secret_file, encoding="utf-8") as f:
            settings.cluster_secret = f.read().strip()
    elif os.environ.get("AMQPBROKER_CLUSTER_SECRET"):
        settings.cluster_secret = os.environ["AMQPBROKER_CLUSTER_SECRET"]
    return settings


def _tls_args(args: argparse.Namespace, settings: Settings) -> None:
    """--tls-*: on top of the file's `tls:` section (a flag replaces that key)."""
    import dataclasses
    import os

    from amqpbroker.tls import TLSOptions

    given = {
        "certfile": args.tls_cert, "keyfile": args.tls_key, "cafile": args.tls_ca,
        "verify": f"verify_{args.tls_verify}" if args.tls_verify else None,
        "fail_if_no_peer_cert": True if args.tls_fail_if_no_peer_cert else None,
        "ciphers": args.tls_ciphers,
        "password": os.environ.get(args.tls_key_password_env)
        if args.tls_key_password_env else None,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if given:
        if settings.tls is None and "certfile" not in given:
            raise SystemExit("amqpbroker: --tls-* options need --tls-cert (or `tls:` in "
                             "the configuration file)")
        settings.tls = (dataclasses.replace(settings.tls, **given) if settings.tls
                        else TLSOptions(**given))
    if args.tls_port is not None:
        if settings.tls is None:
            raise SystemExit("amqpbroker: --tls-port needs --tls-cert")
        settings.tls_port = args.tls_port
    if settings.tls is not None and settings.tls_port is None:
        settings.tls_port = 5671  # RabbitMQ's amqps port
    for flag, field in (("management_tls_port", "management_tls_port"),
                        ("mqtts_port", "mqtt_tls_port"), ("mqtt_wss_port", "mqtt_wss_port")):
        port = getattr(args, flag, None)
        if port is not None:  # 0 turns it off, as --mqtt-port 0
            if port and settings.tls is None:
                raise SystemExit(f"amqpbroker: --{flag.replace('_', '-')} needs --tls-cert "
                                 "(or `tls:` in the configuration file)")
            setattr(settings, field, port or None)


async def serve_cluster(settings: Settings, config: Any = None) -> int:
    """One node of an etcd-coordinated cluster (docs/clustering.md)."""
    from amqpbroker.cluster.node import ClusterNode

    if not settings.cluster_secret:
        print("amqpbroker: a cluster node needs a shared secret (--cluster-secret-file, "
              "AMQPBROKER_CLUSTER_SECRET or cluster.secret_file)", file=sys.stderr)
        return 1
    try:
        node = ClusterNode(settings, config)
    except ValueError as exc:
        print(f"amqpbroker: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"amqpbroker {__version__} cluster node {settings.node_name} on port "
          f"{settings.port}", file=sys.stderr, flush=True)
    collector = CollectorPolicy()
    collector.start(loop)
    try:
        return await node.run(stop)
    finally:
        collector.stop()


async def serve(settings: Settings, config: Any = None) -> int:
    raise_fd_limit()  # before listening: every connection is a file descriptor
    if settings.cluster:
        return await serve_cluster(settings, config)
    from amqpbroker.config import ConfigError
    from amqpbroker.embed import Broker

    from amqpbroker.store.records import StoreError
    from amqpbroker.tls import TLSConfigError

    broker = Broker(settings, config=config)
    try:
        await broker.start()
    except ConfigError as exc:  # the file conflicts with the stored topology
        print(exc, file=sys.stderr)
        return 1
    except (StoreError, OSError, TLSConfigError) as exc:  # data dir locked, port in use
        print(f"amqpbroker: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.tls is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload_certificates, broker)
    ports = ([f"port {broker.port}"] if settings.port is not None else []) + (
        [f"amqps port {broker.tls_port}"] if settings.tls is not None else []) + (
        [f"management API on port {broker.management.port}"]
        if broker.management is not None and broker.management.port else []) + (
        [f"HTTPS management API on port {broker.management.tls_port}"]
        if broker.management is not None and broker.management.tls_port else []) + [
        f"{name} port {port}" for name, port in
        (("MQTT", broker.mqtt_port), ("Web-MQTT", broker.mqtt_ws_port),
         ("MQTT/TLS", broker.mqtt_tls_port), ("Web-MQTT/TLS", broker.mqtt_wss_port)) if port]
    print(f"amqpbroker {__version__} listening on {', '.join(ports)}", file=sys.stderr,
          flush=True)
    if broker.metrics is not None:
        metrics = [f"{name} port {port}" for name, port in
                   (("HTTP", broker.metrics.port), ("HTTPS", broker.metrics.tls_port)) if port]
        print(f"amqpbroker: Prometheus metrics at /metrics on {', '.join(metrics)}",
              file=sys.stderr, flush=True)
    collector = CollectorPolicy()  # started: what exists now is long-lived (collector.py)
    collector.start(loop)
    await stop.wait()
    collector.stop()
    await broker.stop()
    return 0


def _reload_certificates(broker: Any) -> None:
    """SIGHUP: reload the TLS certificate and key; a bad file is logged, the old kept."""
    from amqpbroker.tls import TLSConfigError

    try:
        broker.reload_certificates()
    except TLSConfigError as exc:
        import structlog

        structlog.get_logger("amqpbroker").error("tls.reload_failed", error=str(exc))


def _check(args: argparse.Namespace) -> int:
    import dataclasses

    from amqpbroker.config import ConfigError, load_config
    from amqpbroker.core import BrokerCore
    from amqpbroker.definitions import load_stored
    from amqpbroker.topology import find_conflicts

    config = load_config(args.file)
    if args.data_dir:
        core = load_stored(args.data_dir, config.settings)
    else:
        core = BrokerCore(dataclasses.replace(config.settings, data_dir=None))
    problems = find_conflicts(core, config)
    if problems:
        heading = ("the configuration conflicts with the stored topology" if args.data_dir
                   else "invalid configuration")
        raise ConfigError(problems, heading)
    print(f"OK: {config.source}")
    print(config.summary())
    for warning in config.warnings:
        print(f"warning: {warning}")
    return 0


def _data_dir(args: argparse.Namespace, config: Any) -> str:
    if args.data_dir:
        return args.data_dir
    if config is not None:
        if config.settings.data_dir is None:
            raise SystemExit("the configuration keeps nothing on disk (data_dir: null); "
                             "give --data-dir")
        return config.settings.data_dir
    return Settings().data_dir  # type: ignore[return-value]


def _definitions(args: argparse.Namespace) -> int:
    from amqpbroker import definitions
    from amqpbroker.config import load_config

    config = load_config(args.config) if args.config else None
    data_dir = _data_dir(args, config)
    settings = config.settings if config is not None else None
    if args.action == "export":
        core = definitions.load_stored(data_dir, settings)
        text = definitions.dump(definitions.export_definitions(core, config), args.format)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        return 0
    result = definitions.import_definitions(args.file, data_dir, settings)
    created = ", ".join(f"{n} {k}" for k, n in result.created.items() if k != "vhosts")
    print(f"imported {args.file} into {data_dir}: created {created}")
    for note in result.notes:
        print(f"note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "perf":
        from amqpbroker.perf import main as perf_main

        return perf_main(argv[1:])
    if argv and argv[0] == "ctl":  # rabbitmqctl's commands over the management API
        from amqpbroker.ctl import main as ctl_main

        return ctl_main(argv[1:])
    parser = argparse.ArgumentParser(prog="amqpbroker", description="AMQP 0-9-1 broker")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command")
    _serve_parser(sub)
    _config_parsers(sub)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    from amqpbroker.config import ConfigError
    from amqpbroker.store.records import StoreError

    try:
        if args.command == "cluster":
            from amqpbroker.cluster.status import print_status

            return print_status(args.cluster, args.cluster_name, args.json)
        if args.command in ("check", "definitions"):
            logs.configure("warning", "console")  # stdout is for the result
            return _check(args) if args.command == "check" else _definitions(args)
        config = None
        if args.config:
            from amqpbroker.config import load_config

            config = load_config(args.config)
    except (ConfigError, StoreError) as exc:
        print(exc, file=sys.stderr)
        return 1
    settings = build_settings(args, config)
    logs.configure(settings.log_level, settings.log_format)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # the broker runs on the plain asyncio loop too
        runner = asyncio.run
    return runner(serve(settings, config))
