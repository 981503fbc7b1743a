"""`amqpbroker ctl` commands for runtime parameters and shovels, with rabbitmqctl's syntax
(https://www.rabbitmq.com/docs/parameters, https://www.rabbitmq.com/docs/shovel-dynamic):

    set_parameter [-p vhost] <component> <name> <value>   (value: JSON)
    clear_parameter [-p vhost] <component> <name>
    list_parameters [-p vhost]
    shovel_status

A shovel is the parameter of component `shovel` (docs/shovel.md). Registered into ctl's
command table by `register`, which hands over ctl's helpers: this module does not import
ctl.
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


def cmd_set_parameter(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    component, name, text = ctl._args(a, 3, "set_parameter [-p <vhost>] <component> <name> "
                                            "<value>")
    try:
        value = json.loads(text)
    except ValueError:
        raise ctl.CtlError(EX_DATAERR, f"not valid JSON: {text}") from None
    ctl.say(o, f'Setting runtime parameter "{name}" for component "{component}" to "{text}" '
               f'in vhost "{o.vhost}" ...')
    c.expect("PUT", f"/api/parameters/{q(component)}/{q(o.vhost)}/{q(name)}",
             {"value": value}, what=f"virtual host '{o.vhost}'")
    return EX_OK


def cmd_clear_parameter(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    component, name = ctl._args(a, 2, "clear_parameter [-p <vhost>] <component> <name>")
    ctl.say(o, f'Clearing runtime parameter "{name}" for component "{component}" on vhost '
               f'"{o.vhost}" ...')
    c.expect("DELETE", f"/api/parameters/{q(component)}/{q(o.vhost)}/{q(name)}",
             what=f"parameter '{name}' of component '{component}'")
    return EX_OK


def cmd_list_parameters(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    ctl._args(a, 0, "list_parameters [-p <vhost>]")
    c.expect("GET", f"/api/vhosts/{q(o.vhost)}", what=f"vhost '{o.vhost}'")
    items = [p for p in c.expect("GET", "/api/parameters") if p.get("vhost") == o.vhost]
    columns = ["component", "name", "value"]
    if not o.quiet and o.formatter != "json":
        print(f'Listing runtime parameters for vhost "{o.vhost}" ...')
    ctl.emit([{k: p.get(k) for k in columns} for p in items], columns, o)
    return EX_OK


def cmd_shovel_status(c: Client, o: argparse.Namespace, a: list[str]) -> int:
    ctl._args(a, 0, "shovel_status")
    shovels = c.expect("GET", "/api/shovels")
    columns = ["name", "vhost", "type", "state", "source", "destination", "last_changed",
               "termination_reason"]
    rows = [{"name": s.get("name"), "vhost": s.get("vhost"), "type": s.get("type"),
             "state": s.get("state"),
             "source": s.get("src_queue") or s.get("src_exchange"),
             "destination": s.get("dest_queue") or s.get("dest_exchange"),
             "last_changed": s.get("timestamp"), "termination_reason": s.get("reason")}
            for s in shovels]
    if not o.quiet and o.formatter != "json":
        print("Shovel status on node " + (shovels[0]["node"] if shovels else "") + " ...")
    ctl.emit(rows, columns, o)
    return EX_OK


COMMANDS = {
    "set_parameter": cmd_set_parameter, "clear_parameter": cmd_clear_parameter,
    "list_parameters": cmd_list_parameters, "shovel_status": cmd_shovel_status,
}


def register(ctl_module: Any, commands: dict[str, Any]) -> None:
    global ctl
    ctl = ctl_module
    commands.update(COMMANDS)
