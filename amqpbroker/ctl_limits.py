"""`amqpbroker ctl` commands for operator policies, vhost and user limits and topic
permissions, with rabbitmqctl's syntax and messages (`set_policy`, `clear_policy` and
`list_policies` are in ctl.py). Registered into ctl's command tables by `register`, which
also hands over ctl's helpers (client, errors, output): this module does not import ctl.

    set_operator_policy [-p vhost] [--priority N] [--apply-to T] <name> <pattern> <definition>
    clear_operator_policy [-p vhost] <name>          list_operator_policies [-p vhost]
    set_vhost_limits [-p vhost] <json>               clear_vhost_limits [-p vhost]
    list_vhost_limits [-p vhost]
    set_user_limits <user> <json>                    clear_user_limits <user> <name|all>
    list_user_limits [--user <user>]
    set_topic_permissions [-p vhost] <user> <exchange> <write> <read>
    clear_topic_permissions [-p vhost] <user> [<exchange>]
    list_topic_permissions [-p vhost]
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import quote

EX_OK, EX_DATAERR = 0, 65
ctl: Any = None  # amqpbroker.ctl, set by register()
Client = Any


def q(name: str) -> str:
    return quote(name, safe="")


def say(o: argparse.Namespace, text: str) -> None:
    ctl.say(o, text)


def _args(a: list[str], n: int, usage: str) -> list[str]:
    return ctl._args(a, n, usage)


def CtlError(code: int, text: str) -> Exception:  # noqa: N802 - ctl's exception class
    return ctl.CtlError(code, text)

# Commands that take --options (ctl.main lets them through).
OPTION_COMMANDS = ("set_operator_policy", "list_user_limits")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise CtlError(EX_DATAERR, f"not valid JSON: {text}") from None


def cmd_set_operator_policy(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    p = ctl._parser("set_operator_policy [-p <vhost>] [--priority N] [--apply-to T] <name> "
                    "<pattern> <definition>")
    p.add_argument("name")
    p.add_argument("pattern")
    p.add_argument("definition")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--apply-to", default="all")
    args = ctl._parse_args(p, a)
    definition = _json(args.definition)
    say(o, f'Setting operator policy override "{args.name}" for pattern "{args.pattern}" to '
           f'"{args.definition}" with priority "{args.priority}" for vhost "{o.vhost}" ...')
    c.expect("PUT", f"/api/operator-policies/{q(o.vhost)}/{q(args.name)}", {
        "pattern": args.pattern, "definition": definition, "priority": args.priority,
        "apply-to": args.apply_to}, what=f"virtual host '{o.vhost}'")
    return EX_OK


def cmd_clear_operator_policy(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    (name,) = _args(a, 1, "clear_operator_policy [-p <vhost>] <name>")
    say(o, f'Clearing operator policy "{name}" on vhost "{o.vhost}" ...')
    c.expect("DELETE", f"/api/operator-policies/{q(o.vhost)}/{q(name)}",
             what=f"operator policy '{name}'")
    return EX_OK


def _replace_limits(c: Client, base: str, current: dict[str, Any], wanted: Any) -> None:
    if not isinstance(wanted, dict):
        raise CtlError(EX_DATAERR, "limits must be a JSON object")
    for name in current:
        if name not in wanted:
            c.expect("DELETE", f"{base}/{q(name)}")
    for name, value in wanted.items():
        c.expect("PUT", f"{base}/{q(name)}", {"value": value})


def cmd_set_vhost_limits(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    (text,) = _args(a, 1, "set_vhost_limits [-p <vhost>] <definition>")
    say(o, f'Applying limits to vhost "{o.vhost}": {text} ...')
    found = c.expect("GET", f"/api/vhost-limits/{q(o.vhost)}", what=f"vhost '{o.vhost}'")
    current = found[0]["value"] if found else {}
    _replace_limits(c, f"/api/vhost-limits/{q(o.vhost)}", current, _json(text))
    return EX_OK


def cmd_clear_vhost_limits(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    _args(a, 0, "clear_vhost_limits [-p <vhost>]")
    say(o, f'Clearing vhost "{o.vhost}" limits ...')
    found = c.expect("GET", f"/api/vhost-limits/{q(o.vhost)}", what=f"vhost '{o.vhost}'")
    _replace_limits(c, f"/api/vhost-limits/{q(o.vhost)}", found[0]["value"] if found else {},
                    {})
    return EX_OK


def cmd_set_user_limits(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    user, text = _args(a, 2, "set_user_limits <username> <definition>")
    say(o, f'Setting user limits to "{text}" for user "{user}" ...')
    found = c.expect("GET", f"/api/user-limits/{q(user)}", what=f"user '{user}'")
    current = found[0]["value"] if found else {}
    wanted = _json(text)
    if isinstance(wanted, dict):
        wanted = {**current, **wanted}  # rabbitmqctl set_user_limits merges
    _replace_limits(c, f"/api/user-limits/{q(user)}", current, wanted)
    return EX_OK


def cmd_clear_user_limits(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    user, name = _args(a, 2, "clear_user_limits <username> <limit_name|all>")
    say(o, f'Clearing "{name}" limit for user "{user}" ...')
    found = c.expect("GET", f"/api/user-limits/{q(user)}", what=f"user '{user}'")
    current = found[0]["value"] if found else {}
    for limit in (list(current) if name == "all" else [name]):
        c.expect("DELETE", f"/api/user-limits/{q(user)}/{q(limit)}", what=f"limit '{limit}'")
    return EX_OK


def cmd_list_user_limits(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    p = ctl._parser("list_user_limits [--user <username>]")
    p.add_argument("--user", default=None)
    args = ctl._parse_args(p, a)
    path = "/api/user-limits" + (f"/{q(args.user)}" if args.user else "")
    items = c.expect("GET", path, what=f"user '{args.user}'")
    rows = [{"user": i["user"], "limits": i["value"]} for i in items]
    say(o, "Listing user limits ..." if not args.user
        else f'Listing limits for user "{args.user}" ...')
    ctl.emit(rows, ["user", "limits"], o)
    return EX_OK


def cmd_set_topic_permissions(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    user, exchange, write, read = _args(
        a, 4, "set_topic_permissions [-p <vhost>] <username> <exchange> <write> <read>")
    say(o, f'Setting topic permissions on "{exchange}" for user "{user}" in vhost '
           f'"{o.vhost}" ...')
    c.expect("PUT", f"/api/topic-permissions/{q(o.vhost)}/{q(user)}",
             {"exchange": exchange, "write": write, "read": read},
             what=f"user '{user}' or vhost '{o.vhost}'")
    return EX_OK


def cmd_clear_topic_permissions(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    if len(a) not in (1, 2):
        _args(a, 1, "clear_topic_permissions [-p <vhost>] <username> [<exchange>]")
    user = a[0]
    say(o, f'Clearing topic permissions for user "{user}" in vhost "{o.vhost}" ...')
    path = f"/api/topic-permissions/{q(o.vhost)}/{q(user)}"
    if len(a) == 2:
        path += f"?exchange={q(a[1])}"
    status, doc = c.call("DELETE", path)
    if status not in (204, 404):  # clearing what is not there is not an error
        raise CtlError(EX_DATAERR, str(doc))
    return EX_OK


COMMANDS = {
    "set_operator_policy": cmd_set_operator_policy,
    "clear_operator_policy": cmd_clear_operator_policy,
    "set_vhost_limits": cmd_set_vhost_limits, "clear_vhost_limits": cmd_clear_vhost_limits,
    "set_user_limits": cmd_set_user_limits, "clear_user_limits": cmd_clear_user_limits,
    "list_user_limits": cmd_list_user_limits,
    "set_topic_permissions": cmd_set_topic_permissions,
    "clear_topic_permissions": cmd_clear_topic_permissions,
}

def _lists(_get: Any) -> dict[str, dict[str, Any]]:
    return {
    "list_operator_policies": {
        "path": "/api/operator-policies/{vhost}",
        "info": "Listing operator policy overrides for vhost \"{vhost}\" ...",
        "default": ["vhost", "name", "pattern", "apply-to", "definition", "priority"],
        "fixed": True,
        "keys": {k: _get(k) for k in ("vhost", "name", "pattern", "apply-to", "definition",
                                      "priority")},
    },
    "list_vhost_limits": {
        "path": "/api/vhost-limits/{vhost}", "info": "Listing limits for vhost \"{vhost}\" ...",
        "default": ["vhost", "value"], "fixed": True,
        "keys": {"vhost": _get("vhost"), "value": _get("value")},
    },
    "list_topic_permissions": {
        "path": "/api/vhosts/{vhost}/topic-permissions",
        "info": "Listing topic permissions for vhost \"{vhost}\" ...",
        "default": ["user", "exchange", "write", "read"], "fixed": True,
        "keys": {k: _get(k) for k in ("user", "exchange", "write", "read")},
    },
    }


def register(ctl_module: Any, commands: dict[str, Any], lists: dict[str, Any]) -> None:
    global ctl
    ctl = ctl_module
    commands.update(COMMANDS)
    lists.update(_lists(ctl_module._get))
