"""Where the metrics listener's port comes from: serve's default, the flag, the file."""

from __future__ import annotations

import argparse

from amqpbroker.cli import build_settings
from amqpbroker.config import ConfigError, load_config


def _args(**kw) -> argparse.Namespace:
    from amqpbroker.cli import main  # noqa: F401  (the parser lives with main)
    import amqpbroker.cli as cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli._serve_parser(sub)
    argv = ["serve"] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    return parser.parse_args(argv)


def test_serve_listens_on_15692_unless_told_otherwise() -> None:
    assert build_settings(_args()).prometheus_port == 15692
    assert build_settings(_args(prometheus_port=0)).prometheus_port is None
    assert build_settings(_args(prometheus_port=9999)).prometheus_port == 9999
    assert build_settings(_args(prometheus_tls_port=15691)).prometheus_tls_port == 15691


def test_yaml_listener_entries() -> None:
    off = load_config("listeners:\n  - {port: 5672}\n  - {protocol: prometheus, port: 0}\n")
    assert build_settings(_args(), off).prometheus_port is None
    on = load_config("listeners:\n  - {port: 5672}\n"
                     "  - {protocol: prometheus, host: 127.0.0.1, port: 9100}\n")
    s = build_settings(_args(), on)
    assert s.prometheus_port == 9100 and s.prometheus_host == "127.0.0.1" and s.port == 5672
    try:
        load_config("listeners:\n  - {protocol: prometheus-tls, port: 15691}\n")
    except ConfigError as exc:
        assert "tls" in str(exc)
    else:
        raise AssertionError("prometheus-tls without tls: accepted")
