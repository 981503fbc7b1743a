"""The server part of the file: listeners, data dir, limits, logging -> `Settings` fields."""

from __future__ import annotations

import os
from typing import Any

from amqpbroker import tls
from amqpbroker.config.checker import Checker

SERVER_KEYS = ("listeners", "data_dir", "sync", "limits", "logging", "loopback_users",
               "shutdown_timeout", "tls", "ssl_cert_login_from", "ssl_cert_login_san_type",
               "ssl_cert_login_san_index", "mqtt", "cluster")
# listener protocol -> RabbitMQ's default port
LISTENER_PORTS = {"amqp": 5672, "amqps": 5671, "management": 15672, "management-tls": 15671,
                  "mqtt": 1883, "mqtts": 8883, "web-mqtt": 15675, "web-mqtts": 15676}
# Listeners given by a port only: the MQTT ones bind the AMQP listener's addresses, HTTPS
# management the management listener's. The TLS ones use the `tls:` section.
_MQTT_PORT_FIELDS = {"mqtt": "mqtt_port", "web-mqtt": "mqtt_ws_port",
                     "mqtts": "mqtt_tls_port", "web-mqtts": "mqtt_wss_port",
                     "management-tls": "management_tls_port"}
_TLS_PORT_FIELDS = ("tls_port", "mqtt_tls_port", "mqtt_wss_port", "management_tls_port",
                    "prometheus_tls_port")
# Settings field prefix per protocol: port, host -> tls_port, management_port, ...
LISTENER_FIELDS = {"amqp": "", "amqps": "tls_", "management": "management_",
                   "prometheus": "prometheus_", "prometheus-tls": "prometheus_tls_"}
# The Prometheus endpoint (docs/metrics.md), RabbitMQ's ports. Like management it stays on
# unless listed; `port: 0` (or null) turns it off. prometheus-tls (HTTPS, needs `tls:`) is
# off unless listed and listens on the prometheus listener's addresses.
LISTENER_PORTS.update({"prometheus": 15692, "prometheus-tls": 15691})
OPTIONAL_LISTENERS = ("management", "prometheus", "prometheus-tls")  # not a complete list
# key under `mqtt:` -> (MQTTSettings field, kind, minimum, maximum); RabbitMQ's mqtt.* names
MQTT_KEYS: dict[str, tuple[str, str, int | None, int | None]] = {
    "exchange": ("exchange", "str", None, None),
    "vhost": ("vhost", "str", None, None),
    "allow_anonymous": ("allow_anonymous", "bool", None, None),
    "default_user": ("default_user", "str", None, None),
    "default_pass": ("default_password", "str", None, None),
    "prefetch": ("prefetch", "int", 1, 65535),
    "max_session_expiry_interval_seconds": ("max_session_expiry", "int", 0, 2**32 - 1),
    "max_packet_size_authenticated": ("max_packet_size", "size", 1, 268_435_455),
    "max_packet_size_unauthenticated": ("max_packet_size_unauthenticated", "size", 1,
                                        268_435_455),
    "topic_alias_maximum": ("topic_alias_maximum", "int", 0, 65535),
    "ssl_cert_login": ("ssl_cert_login", "bool", None, None),
}

# key under `cluster:` -> (Settings field, kind, minimum)
CLUSTER_KEYS: dict[str, tuple[str, str, float | None]] = {
    "etcd": ("cluster", "str", None),
    "node_name": ("node_name", "str", None),
    "replication_port": ("replication_port", "int", 0),
    "name": ("cluster_name", "str", None),
    "advertise_host": ("cluster_advertise_host", "str", None),
    "lease_ttl": ("cluster_lease_ttl", "int", 2),
    "lag_timeout": ("cluster_lag_timeout", "number", 0.1),
}

# key under `limits:` -> (Settings field, kind, minimum, maximum)
LIMITS: dict[str, tuple[str, str, int | None, int | None]] = {
    "frame_max": ("frame_max", "size", 0, 2**32 - 1),
    "channel_max": ("channel_max", "int", 0, 65535),
    "heartbeat": ("heartbeat", "int", 0, 65535),
    "max_message_size": ("max_message_size", "size", 1, 512 * 1024 * 1024),
    "max_connections": ("max_connections", "int", 0, None),
    "consumer_timeout_ms": ("consumer_timeout_ms", "int", 1, None),
    "connection_write_high_water": ("connection_write_high_water", "size", 1, None),
    "store_memory_budget": ("store_memory_budget", "size", 0, None),
    # Resource alarms (https://www.rabbitmq.com/docs/alarms): a fraction of RAM (<= 1) or
    # bytes; the free-space floor of the data dir's file system.
    "memory_high_watermark": ("memory_high_watermark", "number", 0, None),
    "disk_free_limit": ("disk_free_limit", "size", 0, None),
    # Hardening (docs/security.md)
    "handshake_timeout": ("handshake_timeout", "number", 0.1, None),
    "auth_failure_delay": ("auth_failure_delay", "number", 0, 60),
    "max_table_depth": ("max_table_depth", "int", 1, 1000),
    "connection_rate_per_address": ("connection_rate_per_address", "number", 0, None),
    "connection_rate_burst": ("connection_rate_burst", "int", 1, None),
    "input_turn": ("input_turn", "number", 0.001, 10),
}
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("console", "json")


def _frame_max(value: int) -> str | None:
    # RabbitMQ refuses frame_max below 4096 (the spec's frame-min-size); 0 = no limit.
    if 0 < value < 4096:
        return f"must be 0 (no limit) or at least 4096, got {value}"
    return None


def read_server(c: Checker, doc: dict[str, Any]) -> dict[str, Any]:
    """The Settings fields the document sets (only those)."""
    out: dict[str, Any] = {}
    if "listeners" in doc:
        _listeners(c, doc["listeners"], out)
    if "mqtt" in doc:
        _mqtt(c, doc["mqtt"], out)
    if "data_dir" in doc:
        if doc["data_dir"] is None:
            out["data_dir"] = None
        else:
            path = c.get(doc, (), "data_dir", "str", None)
            if path is not None:
                out["data_dir"] = os.path.expanduser(path)
    if "sync" in doc:
        out["sync"] = c.get(doc, (), "sync", "bool", True)
    if "shutdown_timeout" in doc:
        out["shutdown_timeout"] = c.get(doc, (), "shutdown_timeout", "number", 5.0, minimum=0)
    limits = c.mapping(doc.get("limits"), ("limits",), LIMITS)
    for key, (name, kind, lo, hi) in LIMITS.items():
        if key in limits:
            value = c.get(limits, ("limits",), key, kind, None, minimum=lo, maximum=hi,
                          check=_frame_max if key == "frame_max" else None)
            if value is not None:
                out[name] = value
    logging = c.mapping(doc.get("logging"), ("logging",), ("level", "format"))
    if "level" in logging:
        out["log_level"] = c.get(logging, ("logging",), "level", "str", None, choices=LOG_LEVELS)
    if "format" in logging:
        out["log_format"] = c.get(logging, ("logging",), "format", "str", None,
                                  choices=LOG_FORMATS)
    if "tls" in doc:
        _tls(c, doc["tls"], out)
    if "ssl_cert_login_from" in doc:
        out["ssl_cert_login_from"] = c.get(doc, (), "ssl_cert_login_from", "str", None,
                                           choices=tls.LOGIN_FROM)
    if "ssl_cert_login_san_type" in doc:
        out["ssl_cert_login_san_type"] = c.get(doc, (), "ssl_cert_login_san_type", "str", None,
                                               choices=tls.SAN_TYPES)
    if "ssl_cert_login_san_index" in doc:
        out["ssl_cert_login_san_index"] = c.get(doc, (), "ssl_cert_login_san_index", "int",
                                                None, minimum=0)
    if any(out.get(f) is not None for f in _TLS_PORT_FIELDS) and "tls" not in out:
        c.error(("listeners",), "a TLS listener (amqps, management-tls, mqtts, web-mqtts) "
                                "needs the `tls` section (certfile, keyfile, ...)")
    _cluster(c, doc.get("cluster"), out)
    if "loopback_users" in doc:
        users = c.get(doc, (), "loopback_users", "str_list", None)
        if users is not None:
            out["loopback_users"] = tuple(users)
    return {k: v for k, v in out.items()
            if v is not None or k in ("data_dir", "host", "tls_host", "port", "management_host",
                                      "management_port", "mqtt_port", "mqtt_ws_port",
                                      "management_tls_port", "mqtt_tls_port", "mqtt_wss_port",
                                      "prometheus_port")}


def _mqtt(c: Checker, value: Any, out: dict[str, Any]) -> None:
    """`mqtt:` options of the MQTT translator (docs/mqtt.md)."""
    import dataclasses

    from amqpbroker.mqtt.options import MQTTSettings

    m = c.mapping(value, ("mqtt",), MQTT_KEYS)
    values = {}
    for key, (name, kind, lo, hi) in MQTT_KEYS.items():
        if key in m:
            v = c.get(m, ("mqtt",), key, kind, None, minimum=lo, maximum=hi)
            if v is not None:
                values[name] = v
    out["mqtt"] = dataclasses.replace(MQTTSettings(), **values)


TLS_KEYS = ("certfile", "keyfile", "password", "cacertfile", "verify", "fail_if_no_peer_cert",
            "ciphers")


def _tls(c: Checker, value: Any, out: dict[str, Any]) -> None:
    """`tls:` as RabbitMQ's `ssl_options.*`; the files are loaded now, so that `amqpbroker
    check` reports a missing file, a wrong key password or a bad cipher list."""
    path = ("tls",)
    m = c.mapping(value, path, TLS_KEYS)
    if not isinstance(value, dict):
        return
    certfile = c.get(m, path, "certfile", "str")
    keyfile = c.get(m, path, "keyfile", "str", None)
    opts = tls.TLSOptions(
        certfile=os.path.expanduser(certfile) if certfile else "",
        keyfile=os.path.expanduser(keyfile) if keyfile else None,
        password=c.get(m, path, "password", "str", None),
        cafile=_path(c.get(m, path, "cacertfile", "str", None)),
        verify=c.get(m, path, "verify", "str", "verify_none", choices=tls.VERIFY_MODES),
        fail_if_no_peer_cert=c.get(m, path, "fail_if_no_peer_cert", "bool", False),
        ciphers=c.get(m, path, "ciphers", "str", None))
    if not certfile:
        return
    try:
        tls.server_context(opts)
    except tls.TLSConfigError as exc:
        c.error(path, str(exc))
        return
    out["tls"] = opts


def _path(value: str | None) -> str | None:
    return os.path.expanduser(value) if value else None


def _cluster(c: Checker, value: Any, out: dict[str, Any]) -> None:
    """`cluster: {etcd, node_name, replication_port, secret_file, ...}` (docs/clustering.md)."""
    path = ("cluster",)
    m = c.mapping(value, path, (*CLUSTER_KEYS, "secret_file"))
    for key, (name, kind, lo) in CLUSTER_KEYS.items():
        if key in m:
            out[name] = c.get(m, path, key, kind, None, minimum=lo,
                              maximum=65535 if key == "replication_port" else None)
    if "secret_file" in m:
        secret_file = c.get(m, path, "secret_file", "str", None)
        if secret_file is not None:
            try:
                with open(os.path.expanduser(secret_file), encoding="utf-8") as f:
                    out["cluster_secret"] = f.read().strip()
            except OSError as exc:
                c.error(path + ("secret_file",), f"cannot read: {exc.strerror}")


def _listeners(c: Checker, value: Any, out: dict[str, Any]) -> None:
    """`listeners: [{protocol, host, port}, ...]`. Per protocol one port (the server binds
    it on one or more addresses); no host = every IPv4 and IPv6 address. The list is
    complete for AMQP: without an `amqp` entry there is no plain AMQP listener. The
    management API (`protocol: management`, port 15672) stays on its default unless listed;
    `port: null` turns it off. Without `mqtt` / `web-mqtt` entries there is no MQTT
    listener; MQTT listeners bind the AMQP listener's addresses, `port: 0` turns them off
    (as `--mqtt-port 0`). So do the TLS listeners `management-tls` (HTTPS management on
    the management listener's addresses), `mqtts` and `web-mqtts`; they need `tls:`."""
    path = ("listeners",)
    items = c.sequence(value, path)
    if not items:
        if value is not None:
            c.error(path, "needs at least one listener")
        return
    groups: dict[str, list[tuple[int, Any]]] = {}
    for i, item in enumerate(items):
        p = path + (i,)
        m = c.mapping(item, p, ("protocol", "host", "port", "path"))
        if not isinstance(item, dict):
            continue
        protocol = c.get(m, p, "protocol", "str", "amqp", choices=tuple(LISTENER_PORTS))
        if "path" in m and protocol not in ("web-mqtt", "web-mqtts"):
            c.error(p + ("path",), "only a web-mqtt listener has a path")
        if protocol in _MQTT_PORT_FIELDS:
            port = c.get(m, p, "port", "int", LISTENER_PORTS[protocol], minimum=0,
                         maximum=65535)
            out[_MQTT_PORT_FIELDS[protocol]] = port or None
            if "path" in m and protocol in ("web-mqtt", "web-mqtts"):
                out["mqtt_ws_path"] = c.get(m, p, "path", "str", "/ws")
        elif protocol is not None:
            groups.setdefault(protocol, []).append((i, m))
    for field_name in _MQTT_PORT_FIELDS.values():
        out.setdefault(field_name, None)  # the list is complete
    for protocol, entries in groups.items():
        prefix = LISTENER_FIELDS[protocol]
        if protocol in OPTIONAL_LISTENERS and any(m.get("port", 0) is None
                                                   for _, m in entries):
            out[prefix + "port"] = None  # explicitly off
            continue
        if protocol == "prometheus-tls":
            out[prefix + "port"] = _port_only(c, protocol, entries)
            continue
        port, host = _listener_group(c, protocol, entries)
        out[prefix + "port"] = port if port or not protocol.startswith("prometheus") else None
        if host is not _UNSET:
            out[prefix + "host"] = host
    if "amqp" not in groups and set(groups) - set(OPTIONAL_LISTENERS):
        out["port"] = None


_UNSET = object()


def _port_only(c: Checker, protocol: str, entries: list[tuple[int, Any]]) -> int | None:
    """A listener on another listener's addresses: one entry, a port (0: off)."""
    i, m = entries[0]
    if len(entries) > 1 or "host" in m:
        c.error(("listeners", i), f"one {protocol} listener, without host (it listens on "
                                  "the prometheus listener's addresses)")
    port = c.get(m, ("listeners", i), "port", "int", LISTENER_PORTS[protocol], minimum=0,
                 maximum=65535)
    return port or None


def _listener_group(c: Checker, protocol: str, entries: list[tuple[int, Any]]) -> tuple:
    hosts: list[str] = []
    ports: list[int] = []
    for i, m in entries:
        p = ("listeners", i)
        port = c.get(m, p, "port", "int", LISTENER_PORTS[protocol], minimum=0, maximum=65535)
        host = c.get(m, p, "host", "str", None)
        if port is not None:
            if ports and port != ports[0]:
                c.error(p + ("port",), f"every {protocol} listener must use the same port "
                                       f"for now (the first uses {ports[0]}, this one {port})")
            ports.append(port)
        if host is None and len(entries) > 1 and "host" not in m:
            c.error(p, "a listener without host listens on every address; "
                       "give every listener a host when there are several")
        if host is not None:
            hosts.append(host)
    port = ports[0] if ports else LISTENER_PORTS[protocol]
    if hosts:
        return port, hosts[0] if len(hosts) == 1 else hosts
    return port, None if len(entries) == 1 else _UNSET
