"""`amqpbroker ctl`: rabbitmqctl's commands, columns, output and exit codes, through the
management HTTP API of a running broker (docs/management.md).

    amqpbroker ctl list_queues name messages_ready messages_unacknowledged
    amqpbroker ctl -p staging add_user alice s3cret
    amqpbroker ctl --formatter json list_connections

Where: `--url`/`--username`/`--password`, or AMQPBROKER_URL / AMQPBROKER_USERNAME /
AMQPBROKER_PASSWORD, default http://localhost:15672 and guest/guest. An https:// URL (the
HTTPS management listener, 15671) is verified against `--ssl-ca-cert-file` (default: the
system's CAs); `--ssl-cert-file`/`--ssl-key-file` present a client certificate
(rabbitmqadmin's option names).

Exit codes (rabbitmqctl's, from sysexits.h): 0 ok, 64 usage, 65 no such object (or bad
data), 67 no such user, 69 broker unavailable or management off, 70 software error,
75 timeout, 77 not authorised.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Callable
from urllib.parse import quote

from amqpbroker import ctl_cluster, ctl_limits, ctl_parameters

EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE = 0, 64, 65, 67, 69
EX_SOFTWARE, EX_TEMPFAIL, EX_NOPERM = 70, 75, 77


class CtlError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Client:
    """A tiny blocking client of the management API (urllib: nothing to install)."""

    def __init__(self, url: str, username: str, password: str, timeout: float,
                 context: ssl.SSLContext | None = None) -> None:
        self.url = url.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.timeout = timeout
        self.context = context  # for https:// URLs

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": self.auth, "Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout,
                                        context=self.context) as resp:
                return resp.status, _parse(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _parse(exc.read())
        except (socket.timeout, TimeoutError):
            raise CtlError(EX_TEMPFAIL, f"timed out after {self.timeout} s waiting for "
                                        f"{self.url}") from None
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CtlError(EX_UNAVAILABLE, f"cannot reach the management API at {self.url}: "
                                           f"{reason} (is the broker running with the "
                                           f"management listener on?)") from None

    def expect(self, method: str, path: str, body: Any = None, *, missing: int = EX_DATAERR,
               what: str = "object", headers: dict[str, str] | None = None) -> Any:
        status, doc = self.call(method, path, body, headers)
        if status < 300:
            return doc
        reason = doc.get("reason") if isinstance(doc, dict) else doc
        if status == 404:
            raise CtlError(missing, f"{what} not found")
        if status == 401:
            raise CtlError(EX_NOPERM, f"not authorised: {reason}")
        if status in (400, 405, 413, 415):
            raise CtlError(EX_DATAERR, str(reason))
        raise CtlError(EX_SOFTWARE, f"HTTP {status}: {reason}")


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def q(name: str) -> str:
    return quote(name, safe="")


# -- list commands: rabbitmqctl's info keys -> the API's keys -----------------------------
def _get(path: str) -> Callable[[dict[str, Any]], Any]:
    def pick(item: dict[str, Any]) -> Any:
        value: Any = item
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value
    return pick


LISTS: dict[str, dict[str, Any]] = {
    "list_queues": {
        "path": "/api/queues/{vhost}", "info": "Listing queues for vhost {vhost} ...",
        "default": ["name", "messages"],
        "keys": {k: _get(k) for k in (
            "name", "durable", "auto_delete", "arguments", "policy", "exclusive",
            "exclusive_consumer_tag", "messages_ready", "messages_unacknowledged", "messages",
            "consumers", "consumer_utilisation", "consumer_capacity", "state", "type",
            "message_bytes", "message_bytes_ready", "message_bytes_unacknowledged",
            "operator_policy", "effective_policy_definition", "node")}
        | {"pid": _get("name"), "owner_pid": _get("owner_pid_details.name"),
           "leader": _get("node"), "members": lambda i: [i.get("node")],
           "online": lambda i: [i.get("node")]},
    },
    "list_exchanges": {
        "path": "/api/exchanges/{vhost}", "info": "Listing exchanges for vhost {vhost} ...",
        "default": ["name", "type"],
        "keys": {k: _get(k) for k in ("name", "type", "durable", "auto_delete", "internal",
                                      "arguments", "policy")},
    },
    "list_bindings": {
        "path": "/api/bindings/{vhost}", "info": "Listing bindings for vhost {vhost}...",
        "default": ["source_name", "source_kind", "destination_name", "destination_kind",
                    "routing_key", "arguments"],
        "keys": {"source_name": _get("source"), "source_kind": lambda i: "exchange",
                 "destination_name": _get("destination"),
                 "destination_kind": _get("destination_type"),
                 "routing_key": _get("routing_key"), "arguments": _get("arguments"),
                 "vhost": _get("vhost")},
    },
    "list_connections": {
        "path": "/api/vhosts/{vhost}/connections", "all_path": "/api/connections",
        "info": "Listing connections ...",
        "default": ["user", "peer_host", "peer_port", "state"],
        "keys": {k: _get(k) for k in (
            "name", "user", "vhost", "peer_host", "peer_port", "host", "port", "state",
            "channels", "protocol", "auth_mechanism", "client_properties", "connected_at",
            "recv_oct", "send_oct", "timeout", "frame_max", "channel_max", "ssl", "type",
            "node", "user_who_performed_action")} | {"pid": _get("name")},
    },
    "list_channels": {
        "path": "/api/vhosts/{vhost}/channels", "all_path": "/api/channels",
        "info": "Listing channels ...",
        "default": ["pid", "user", "consumer_count", "messages_unacknowledged"],
        "keys": {k: _get(k) for k in (
            "name", "number", "user", "vhost", "consumer_count", "messages_unacknowledged",
            "messages_unconfirmed", "messages_uncommitted", "acks_uncommitted",
            "prefetch_count", "global_prefetch_count", "confirm", "transactional", "state",
            "node")} | {"pid": _get("name"), "connection": _get("connection_details.name")},
    },
    "list_consumers": {
        "path": "/api/consumers/{vhost}", "info": "Listing consumers in vhost {vhost} ...",
        "default": ["queue_name", "channel_pid", "consumer_tag", "ack_required",
                    "prefetch_count", "active", "arguments"],
        "keys": {"queue_name": _get("queue.name"), "channel_pid": _get("channel_details.name"),
                 "consumer_tag": _get("consumer_tag"), "ack_required": _get("ack_required"),
                 "exclusive": _get("exclusive"), "prefetch_count": _get("prefetch_count"),
                 "active": _get("active"), "activity_status": _get("activity_status"),
                 "arguments": _get("arguments")},
    },
    "list_users": {
        "path": "/api/users", "info": "Listing users ...", "default": ["user", "tags"],
        "fixed": True, "keys": {"user": _get("name"), "tags": _get("tags")},
    },
    "list_vhosts": {
        "path": "/api/vhosts", "info": "Listing vhosts ...", "default": ["name"],
        "keys": {k: _get(k) for k in ("name", "description", "tags", "default_queue_type",
                                      "tracing", "cluster_state", "messages")},
    },
    "list_permissions": {
        "path": "/api/vhosts/{vhost}/permissions",
        "info": "Listing permissions for vhost \"{vhost}\" ...",
        "default": ["user", "configure", "write", "read"], "fixed": True,
        "keys": {k: _get(k) for k in ("user", "configure", "write", "read")},
    },
    "list_policies": {
        "path": "/api/policies/{vhost}", "info": "Listing policies for vhost \"{vhost}\" ...",
        "default": ["vhost", "name", "pattern", "apply-to", "definition", "priority"],
        "fixed": True,
        "keys": {k: _get(k) for k in ("vhost", "name", "pattern", "apply-to", "definition",
                                      "priority")},
    },
}


def run_list(client: Client, opts: argparse.Namespace, command: str, columns: list[str]
             ) -> int:
    spec = LISTS[command]
    if spec.get("fixed") and columns:
        raise CtlError(EX_USAGE, f"{command} takes no columns")
    columns = columns or spec["default"]
    unknown = [c for c in columns if c not in spec["keys"]]
    if unknown:
        raise CtlError(EX_USAGE, f"Info key(s) {','.join(unknown)} are not supported. "
                                 f"Valid keys: {', '.join(spec['keys'])}")
    path = spec["path"]
    if "{vhost}" in path and "all_path" in spec and not opts.vhost_given:
        path = spec["all_path"]
    items = client.expect("GET", path.replace("{vhost}", q(opts.vhost)),
                          missing=EX_DATAERR, what=f"vhost '{opts.vhost}'")
    rows = [{c: spec["keys"][c](item) for c in columns} for item in items]
    if not opts.quiet and opts.formatter != "json":
        print(spec["info"].replace("{vhost}", opts.vhost))
    emit(rows, columns, opts)
    return EX_OK


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def emit(rows: list[dict[str, Any]], columns: list[str], opts: argparse.Namespace) -> None:
    if opts.formatter == "json":
        print(json.dumps(rows, indent=None))
        return
    table = [[_cell(r.get(c)) for c in columns] for r in rows]
    header = [] if opts.no_table_headers else [columns]
    if opts.formatter == "table":
        widths = [max([len(c), *(len(r[i]) for r in table)]) for i, c in enumerate(columns)]
        line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        print(line)
        for row in header:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
            print(line)
        for row in table:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        print(line)
        return
    for row in header + table:
        print("\t".join(row))


# -- other commands --------------------------------------------------------------------------
def say(opts: argparse.Namespace, text: str) -> None:
    if not opts.quiet:
        print(text)


def cmd_status(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    overview = c.expect("GET", "/api/overview")
    nodes = c.expect("GET", "/api/nodes")
    node = nodes[0] if nodes else {}
    if o.formatter == "json":
        print(json.dumps({"overview": overview, "node": node}))
        return EX_OK
    say(o, f"Status of node {overview.get('node')} ...")
    print(f"Product: {overview.get('product_name')} {overview.get('product_version')}")
    print(f"Uptime (seconds): {int(node.get('uptime', 0)) // 1000}")
    print("Listeners:")
    for lst in overview.get("listeners", []):
        print(f"  Interface: {lst['ip_address']}, port: {lst['port']}, "
              f"protocol: {lst['protocol']}")
    print(f"Memory used: {node.get('mem_used')} bytes, limit: {node.get('mem_limit')}")
    print(f"Disk free: {node.get('disk_free')} bytes, limit: {node.get('disk_free_limit')}")
    alarms = [k for k in ("mem_alarm", "disk_free_alarm") if node.get(k)]
    print(f"Alarms: {', '.join(alarms) if alarms else '(none)'}")
    totals = overview.get("object_totals", {})
    print("Totals: " + ", ".join(f"{k}: {v}" for k, v in totals.items()))
    return EX_OK


def cmd_await_startup(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    deadline = time.monotonic() + o.timeout
    while True:
        try:
            status, _ = c.call("GET", "/api/health/checks/virtual-hosts")
            if status == 200:
                return EX_OK
            if status == 401:
                raise CtlError(EX_NOPERM, "not authorised")
        except CtlError as exc:
            if exc.code not in (EX_UNAVAILABLE, EX_TEMPFAIL):
                raise
        if time.monotonic() >= deadline:
            raise CtlError(EX_TEMPFAIL, f"the broker did not start within {o.timeout} s")
        time.sleep(0.2)


def cmd_close_connection(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    name, reason = _args(a, 2, "close_connection <connection pid> <explanation>")
    say(o, f"Closing connection {name}, reason: {reason}...")
    c.expect("DELETE", f"/api/connections/{q(name)}", headers={"X-Reason": reason},
             what=f"connection '{name}'")
    return EX_OK


def cmd_purge_queue(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    (name,) = _args(a, 1, "purge_queue <queue>")
    say(o, f"Purging queue '{name}' in vhost '{o.vhost}' ...")
    c.expect("DELETE", f"/api/queues/{q(o.vhost)}/{q(name)}/contents",
             what=f"queue '{name}' in vhost '{o.vhost}'")
    return EX_OK


def cmd_delete_queue(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    flags = {"--if-empty": "if-empty", "-e": "if-empty", "--if-unused": "if-unused",
             "-u": "if-unused"}
    query = sorted({flags[x] for x in a if x in flags})
    rest = [x for x in a if x not in flags]
    (name,) = _args(rest, 1, "delete_queue <queue> [--if-empty|-e] [--if-unused|-u]")
    info = c.expect("GET", f"/api/queues/{q(o.vhost)}/{q(name)}?columns=messages",
                    what=f"queue '{name}' in vhost '{o.vhost}'")
    say(o, f"Deleting queue '{name}' on vhost '{o.vhost}' ...")
    path = f"/api/queues/{q(o.vhost)}/{q(name)}"
    if query:
        path += "?" + "&".join(f"{k}=true" for k in query)
    c.expect("DELETE", path, what=f"queue '{name}' in vhost '{o.vhost}'")
    say(o, f"Queue was successfully deleted with {info.get('messages', 0)} ready messages")
    return EX_OK


def _user(c: Client, name: str) -> dict[str, Any]:
    return c.expect("GET", f"/api/users/{q(name)}", missing=EX_NOUSER, what=f"user '{name}'")


def cmd_add_user(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    name, password = _args(a, 2, "add_user <username> <password>")
    status, _ = c.call("GET", f"/api/users/{q(name)}")
    if status == 200:
        raise CtlError(EX_DATAERR, f'User "{name}" already exists')
    say(o, f'Adding user "{name}" ...')
    c.expect("PUT", f"/api/users/{q(name)}", {"password": password, "tags": ""})
    return EX_OK


def cmd_delete_user(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    (name,) = _args(a, 1, "delete_user <username>")
    say(o, f'Deleting user "{name}" ...')
    c.expect("DELETE", f"/api/users/{q(name)}", missing=EX_NOUSER, what=f"user '{name}'")
    return EX_OK


def cmd_change_password(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    name, password = _args(a, 2, "change_password <username> <password>")
    user = _user(c, name)
    say(o, f'Changing password for user "{name}" ...')
    c.expect("PUT", f"/api/users/{q(name)}", {"password": password, "tags": user["tags"]})
    return EX_OK


def cmd_set_user_tags(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    if not a:
        raise CtlError(EX_USAGE, "usage: set_user_tags <username> <tag> [...]")
    name, tags = a[0], a[1:]
    user = _user(c, name)
    say(o, f'Setting tags for user "{name}" to [{", ".join(tags)}] ...')
    c.expect("PUT", f"/api/users/{q(name)}", {
        "password_hash": user["password_hash"], "hashing_algorithm": user["hashing_algorithm"],
        "tags": tags})
    return EX_OK


def cmd_add_vhost(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    p = _parser("add_vhost <vhost> [--description D] [--tags T] [--default-queue-type T]")
    p.add_argument("name")
    p.add_argument("--description")
    p.add_argument("--tags")
    p.add_argument("--default-queue-type")
    args = _parse_args(p, a)
    body: dict[str, Any] = {}
    if args.description is not None:
        body["description"] = args.description
    if args.tags is not None:
        body["tags"] = args.tags
    if args.default_queue_type is not None:
        body["default_queue_type"] = args.default_queue_type
    say(o, f'Adding vhost "{args.name}" ...')
    c.expect("PUT", f"/api/vhosts/{q(args.name)}", body)
    return EX_OK


def cmd_delete_vhost(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    (name,) = _args(a, 1, "delete_vhost <vhost>")
    say(o, f'Deleting vhost "{name}" ...')
    c.expect("DELETE", f"/api/vhosts/{q(name)}", what=f"virtual host '{name}'")
    return EX_OK


def cmd_set_permissions(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    name, conf, write, read = _args(a, 4, "set_permissions [-p <vhost>] <username> <conf> "
                                          "<write> <read>")
    _user(c, name)
    say(o, f'Setting permissions for user "{name}" in vhost "{o.vhost}" ...')
    c.expect("PUT", f"/api/permissions/{q(o.vhost)}/{q(name)}",
             {"configure": conf, "write": write, "read": read},
             what=f"virtual host '{o.vhost}'")
    return EX_OK


def cmd_clear_permissions(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    (name,) = _args(a, 1, "clear_permissions [-p <vhost>] <username>")
    _user(c, name)
    say(o, f'Clearing permissions for user "{name}" in vhost "{o.vhost}" ...')
    status, doc = c.call("DELETE", f"/api/permissions/{q(o.vhost)}/{q(name)}")
    if status not in (204, 404):  # clearing what is not there is not an error
        raise CtlError(EX_DATAERR, str(doc))
    return EX_OK


def cmd_set_policy(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    p = _parser("set_policy [-p <vhost>] [--priority N] [--apply-to T] <name> <pattern> "
                "<definition>")
    p.add_argument("name")
    p.add_argument("pattern")
    p.add_argument("definition")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--apply-to", default="all")
    args = _parse_args(p, a)
    try:
        definition = json.loads(args.definition)
    except ValueError:
        raise CtlError(EX_DATAERR, f"the definition is not valid JSON: {args.definition}"
                       ) from None
    say(o, f'Setting policy "{args.name}" for pattern "{args.pattern}" to '
           f'"{args.definition}" with priority "{args.priority}" for vhost "{o.vhost}" ...')
    c.expect("PUT", f"/api/policies/{q(o.vhost)}/{q(args.name)}", {
        "pattern": args.pattern, "definition": definition, "priority": args.priority,
        "apply-to": args.apply_to}, what=f"virtual host '{o.vhost}'")
    return EX_OK


def cmd_clear_policy(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    (name,) = _args(a, 1, "clear_policy [-p <vhost>] <name>")
    say(o, f'Clearing policy "{name}" on vhost "{o.vhost}" ...')
    c.expect("DELETE", f"/api/policies/{q(o.vhost)}/{q(name)}", what=f"policy '{name}'")
    return EX_OK


def cmd_export_definitions(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    (target,) = _args([x for x in a if not x.startswith("--format")], 1,
                      "export_definitions <file | ->")
    doc = c.expect("GET", "/api/definitions")
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        say(o, f'Exported definitions to "{target}"')
    return EX_OK


def cmd_import_definitions(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    (source,) = _args(a, 1, "import_definitions <file | ->")
    try:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    except OSError as exc:
        raise CtlError(EX_DATAERR, f"cannot read {source}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise CtlError(EX_DATAERR, f"{source} is not valid JSON") from None
    say(o, f'Importing definitions in JSON from a file at "{source}" ...')
    path = "/api/definitions" + (f"/{q(o.vhost)}" if o.vhost_given else "")
    c.expect("POST", path, doc)
    say(o, "Successfully imported definitions.")
    return EX_OK


def cmd_reload_certificates(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    """Our extension (docs/compatibility.md): what SIGHUP does, through the API."""
    _args(a, 0, "reload_certificates")
    say(o, "Reloading the TLS certificates of every TLS listener ...")
    doc = c.expect("POST", "/api/tls/reload-certificates")
    if o.formatter == "json":
        print(json.dumps(doc))
    else:
        say(o, "Reloaded: " + ", ".join(doc.get("reloaded", [])))
    return EX_OK


COMMANDS: dict[str, Callable[[Client, argparse.Namespace, list[str]], int]] = {
    "status": cmd_status, "await_startup": cmd_await_startup,
    "close_connection": cmd_close_connection, "purge_queue": cmd_purge_queue,
    "delete_queue": cmd_delete_queue, "add_user": cmd_add_user,
    "delete_user": cmd_delete_user, "change_password": cmd_change_password,
    "set_user_tags": cmd_set_user_tags, "add_vhost": cmd_add_vhost,
    "delete_vhost": cmd_delete_vhost, "set_permissions": cmd_set_permissions,
    "clear_permissions": cmd_clear_permissions, "set_policy": cmd_set_policy,
    "clear_policy": cmd_clear_policy, "export_definitions": cmd_export_definitions,
    "import_definitions": cmd_import_definitions,
    "reload_certificates": cmd_reload_certificates,
}


def _args(a: list[str], n: int, usage: str) -> list[str]:
    if len(a) != n:
        raise CtlError(EX_USAGE, f"usage: amqpbroker ctl {usage}")
    return a


class _UsageParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CtlError(EX_USAGE, f"{message}\nusage: amqpbroker ctl {self.usage}")


def _parser(usage: str) -> argparse.ArgumentParser:
    return _UsageParser(prog="amqpbroker ctl", usage=usage, add_help=False)


def _parse_args(p: argparse.ArgumentParser, a: list[str]) -> argparse.Namespace:
    return p.parse_args(a)


def global_parser() -> argparse.ArgumentParser:
    p = _UsageParser(prog="amqpbroker ctl", usage="[options] <command> [args]",
                     add_help=False, allow_abbrev=False)  # list_user_limits --user ...
    p.add_argument("--url", default=os.environ.get("AMQPBROKER_URL",
                                                  "http://localhost:15672"))
    p.add_argument("--username", default=os.environ.get("AMQPBROKER_USERNAME", "guest"))
    p.add_argument("--password", default=os.environ.get("AMQPBROKER_PASSWORD", "guest"))
    p.add_argument("--ssl-ca-cert-file", default=os.environ.get("AMQPBROKER_CACERT"))
    p.add_argument("--ssl-cert-file")
    p.add_argument("--ssl-key-file")
    p.add_argument("-p", "--vhost", default=None)
    p.add_argument("--formatter", choices=["tsv", "table", "json"], default="tsv")
    p.add_argument("-q", "--quiet", "-s", "--silent", action="store_true", dest="quiet")
    p.add_argument("--no-table-headers", action="store_true")
    p.add_argument("-t", "--timeout", type=float, default=60.0)
    p.add_argument("-h", "--help", action="store_true")
    return p


def _tls_context(opts: argparse.Namespace) -> ssl.SSLContext | None:
    if not opts.url.lower().startswith("https://"):
        return None
    try:
        ctx = ssl.create_default_context(cafile=opts.ssl_ca_cert_file)
        if opts.ssl_cert_file:
            ctx.load_cert_chain(opts.ssl_cert_file, opts.ssl_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise CtlError(EX_USAGE, f"cannot load the TLS files: {exc}") from None
    return ctx


def main(argv: list[str]) -> int:
    try:
        opts, rest = global_parser().parse_known_args(argv)
        if opts.help or not rest:
            print(__doc__.strip())
            print("\ncommands: " + ", ".join(sorted([*COMMANDS, *LISTS])))
            return EX_OK if opts.help else EX_USAGE
        opts.vhost_given = opts.vhost is not None
        opts.vhost = opts.vhost if opts.vhost is not None else "/"
        command, args = rest[0], rest[1:]
        unknown_opts = [x for x in args if x.startswith("--") and command not in (
            "add_vhost", "set_policy", "delete_queue", "export_definitions",
            *ctl_limits.OPTION_COMMANDS)]
        if unknown_opts:
            raise CtlError(EX_USAGE, f"unknown option(s): {' '.join(unknown_opts)}")
        client = Client(opts.url, opts.username, opts.password, opts.timeout,
                        _tls_context(opts))
        if command in LISTS:
            return run_list(client, opts, command, args)
        handler = COMMANDS.get(command)
        if handler is None:
            raise CtlError(EX_USAGE, f"command not found: {command}\ncommands: "
                                     + ", ".join(sorted([*COMMANDS, *LISTS])))
        return handler(client, opts, args)
    except CtlError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EX_SOFTWARE


# operator policies, limits and topic permissions (ctl_limits.py)
ctl_limits.register(sys.modules[__name__], COMMANDS, LISTS)
# runtime parameters and shovels (ctl_parameters.py)
ctl_parameters.register(sys.modules[__name__], COMMANDS)
# cluster_status (ctl_cluster.py)
ctl_cluster.register(sys.modules[__name__], COMMANDS)
