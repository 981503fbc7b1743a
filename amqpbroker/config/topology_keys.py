"""The topology part of the file: vhosts, users, permissions, exchanges, queues, bindings.

The lists have the shape of RabbitMQ's definitions format (`rabbitmqctl export_definitions`),
so such a file is accepted as is; a few friendlier defaults apply to hand-written files
(`vhost` defaults to the default vhost, `durable` to true, `destination_type` to queue).
"""

from __future__ import annotations

import re
from typing import Any

from amqpbroker.config.checker import Checker, describe
from amqpbroker.config.model import (
    BindingDef,
    ExchangeDef,
    PermissionDef,
    QueueDef,
    UserDef,
    VhostDef,
)
from amqpbroker.model.exchanges import EXCHANGE_TYPES
from amqpbroker.model.users import SHA256, hash_password, password_hash_problem
from amqpbroker.model.queue_args import QUEUE_TYPES
from amqpbroker.model.vhost import PREDECLARED

TOPOLOGY_KEYS = ("vhosts", "users", "permissions", "exchanges", "queues", "bindings")
METADATA_KEYS = ("rabbit_version", "rabbitmq_version", "product_name", "product_version")
# Keys of RabbitMQ's definitions that nothing here reads (policies, limits, topic
# permissions and parameters are read by config/runtime_keys.py).
UNSUPPORTED_KEYS: tuple[str, ...] = ()
PREDECLARED_NAMES = {name for name, _ in PREDECLARED}

# Arguments whose type we can check before anything starts (name -> (kind, min, max)).
_INT_ARGS = {"x-message-ttl": (0, None), "x-expires": (1, None), "x-max-length": (0, None),
             "x-max-length-bytes": (0, None), "x-max-priority": (0, 255),
             "x-delivery-limit": (0, None)}
_STR_ARGS = ("x-dead-letter-exchange", "x-dead-letter-routing-key", "x-overflow",
             "x-queue-mode", "x-queue-type", "alternate-exchange")


def _name(value: str) -> str | None:
    if value == "":
        return "must not be empty"
    if len(value.encode("utf-8")) > 255:
        return "is longer than 255 bytes"
    return None


def _regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression {value!r}: {exc}"
    return None


class TopologyReader:
    def __init__(self, c: Checker, doc: dict[str, Any], default_vhost: str,
                 default_user: str) -> None:
        self.c, self.doc = c, doc
        self.default_vhost, self.default_user = default_vhost, default_user
        self.first: dict[tuple, int | None] = {}  # (kind, *key) -> line of first definition

    def _unique(self, kind: str, key: tuple, path: tuple, label: str) -> bool:
        line = self.c.at(path).line
        if (kind, *key) in self.first:
            first = self.first[(kind, *key)]
            self.c.error(path, f"duplicate {label}" + (f" (first at line {first})" if first
                                                       else ""))
            return False
        self.first[(kind, *key)] = line
        return True

    def _items(self, key: str) -> list[tuple[tuple, dict[str, Any]]]:
        out = []
        for i, item in enumerate(self.c.sequence(self.doc.get(key), (key,))):
            if isinstance(item, dict):
                out.append(((key, i), item))
            else:
                self.c.error((key, i), f"expected a mapping, got {describe(item)}")
        return out

    def _vhost(self, m: dict[str, Any], p: tuple) -> str | None:
        vhost = self.c.get(m, p, "vhost", "str", self.default_vhost)
        if vhost is not None and vhost not in self.vhost_names:
            self.c.error(p + ("vhost",), f"vhost '{vhost}' is not declared under vhosts")
            return None
        return vhost

    # -- sections ----------------------------------------------------------------------------
    def vhosts(self) -> list[VhostDef]:
        out: list[VhostDef] = []
        for i, item in enumerate(self.c.sequence(self.doc.get("vhosts"), ("vhosts",))):
            p = ("vhosts", i)
            m = {"name": item} if isinstance(item, str) else self.c.mapping(
                item, p, ("name",), ignored=("limits", "metadata", "description", "tags",
                                             "default_queue_type", "tracing"))
            name = self.c.get(m, p, "name", "str", check=_name)
            if name is not None and self._unique("vhost", (name,), p, f"vhost '{name}'"):
                out.append(VhostDef(name, self.c.at(p)))
        self.vhost_names = {self.default_vhost} | {v.name for v in out}
        return out

    def users(self) -> list[UserDef] | None:
        if "users" not in self.doc:
            self.user_names = {self.default_user} if self.default_user else set()
            return None
        out: list[UserDef] = []
        keys = ("name", "password", "password_hash", "hashing_algorithm", "tags")
        for p, item in self._items("users"):
            m = self.c.mapping(item, p, keys, ignored=("limits",))
            name = self.c.get(m, p, "name", "str", check=_name)
            unique = name is not None and self._unique("user", (name,), p, f"user '{name}'")
            algorithm = self.c.get(m, p, "hashing_algorithm", "str", SHA256,
                                   check=lambda a: password_hash_problem("", a))
            tags = self.c.get(m, p, "tags", "str_list", [])
            if "password" in m and "password_hash" in m:
                self.c.error(p, "give either 'password' or 'password_hash', not both")
                continue
            if "password" in m:
                password = self.c.get(m, p, "password", "str")
                pw_hash = None if password is None else hash_password(password,
                                                                       algorithm=algorithm)
            elif "password_hash" in m:
                pw_hash = self.c.get(m, p, "password_hash", "str",
                                     check=lambda h: password_hash_problem(h, algorithm))
            else:
                self.c.error(p, "missing key 'password' or 'password_hash' "
                                "(password_hash: '' makes a user that cannot log in)")
                continue
            if unique and None not in (pw_hash, algorithm, tags):
                out.append(UserDef(name, pw_hash, algorithm, tags, self.c.at(p)))
        self.user_names = {key[1] for key in self.first if key[0] == "user"}
        return out

    def permissions(self) -> list[PermissionDef]:
        out: list[PermissionDef] = []
        for p, item in self._items("permissions"):
            m = self.c.mapping(item, p, ("user", "vhost", "configure", "write", "read"))
            user = self.c.get(m, p, "user", "str")
            if user is not None and user not in self.user_names:
                self.c.error(p + ("user",), f"user '{user}' is not declared under users")
                user = None
            vhost = self._vhost(m, p)
            regexes = [self.c.get(m, p, k, "str", check=_regex)
                       for k in ("configure", "write", "read")]
            if user is None or vhost is None or None in regexes:
                continue
            if self._unique("permission", (user, vhost), p,
                            f"permissions for user '{user}' in vhost '{vhost}'"):
                out.append(PermissionDef(user, vhost, *regexes, where=self.c.at(p)))
        return out

    def exchanges(self) -> list[ExchangeDef]:
        out: list[ExchangeDef] = []
        keys = ("name", "vhost", "type", "durable", "auto_delete", "internal", "arguments")
        for p, item in self._items("exchanges"):
            m = self.c.mapping(item, p, keys)
            name = self.c.get(m, p, "name", "str", check=_name)
            if name is not None and name.startswith("amq."):
                self.c.error(p + ("name",), f"exchange name '{name}' contains reserved "
                                            "prefix 'amq.*'")
                name = None
            vhost = self._vhost(m, p)
            unique = None not in (name, vhost) and self._unique(
                "exchange", (vhost, name), p, f"exchange '{name}' in vhost '{vhost}'")
            ex_type = self.c.get(m, p, "type", "str", choices=[*EXCHANGE_TYPES, "x-delayed-message"])
            flags = [self.c.get(m, p, k, "bool", d)
                     for k, d in (("durable", True), ("auto_delete", False), ("internal", False))]
            args = self._arguments(m, p)
            if unique and None not in (ex_type, args) and None not in flags:
                out.append(ExchangeDef(vhost, name, ex_type, *flags, args, self.c.at(p)))
        return out

    def queues(self) -> list[QueueDef]:
        out: list[QueueDef] = []
        keys = ("name", "vhost", "durable", "exclusive", "auto_delete", "arguments")
        for p, item in self._items("queues"):
            m = self.c.mapping(item, p, keys, ignored=("type",))
            name = self.c.get(m, p, "name", "str", check=_name)
            if name is not None and name.startswith("amq."):
                self.c.error(p + ("name",), f"queue name '{name}' contains reserved "
                                            "prefix 'amq.*'")
                name = None
            vhost = self._vhost(m, p)
            unique = None not in (name, vhost) and self._unique(
                "queue", (vhost, name), p, f"queue '{name}' in vhost '{vhost}'")
            durable = self.c.get(m, p, "durable", "bool", True)
            auto_delete = self.c.get(m, p, "auto_delete", "bool", False)
            self.c.get(m, p, "exclusive", "bool", False, check=lambda x: x and (
                "must be false: an exclusive queue belongs to one connection"))
            args = self._arguments(m, p)
            # RabbitMQ's definitions carry the type twice: "type" and x-queue-type.
            qtype = m.get("type") or (args or {}).get("x-queue-type") or "classic"
            if qtype not in QUEUE_TYPES:
                self.c.error(p + ("type",), f"must be one of: {', '.join(QUEUE_TYPES)}")
                args = None
            elif args is not None and qtype != "classic" and "x-queue-type" not in args:
                args["x-queue-type"] = qtype
            if unique and None not in (durable, auto_delete, args):
                out.append(QueueDef(vhost, name, durable, auto_delete, args, self.c.at(p)))
        return out

    def bindings(self, exchanges: list[ExchangeDef], queues: list[QueueDef]) -> list[BindingDef]:
        out: list[BindingDef] = []
        # Every exchange and queue the file names, even one with another problem (that
        # problem is reported already; a binding to it is not a second one).
        known = {key for key in self.first if key[0] in ("exchange", "queue")}
        keys = ("source", "vhost", "destination", "destination_type", "routing_key",
                "arguments")
        for p, item in self._items("bindings"):
            m = self.c.mapping(item, p, keys)
            vhost = self._vhost(m, p)
            source = self.c.get(m, p, "source", "str")
            dest_type = self.c.get(m, p, "destination_type", "str", "queue",
                                   choices=("queue", "exchange"))
            dest = self.c.get(m, p, "destination", "str", check=_name)
            key = self.c.get(m, p, "routing_key", "str", "",
                             check=lambda k: _name(k) if k else None)
            args = self._arguments(m, p)
            if vhost is not None and source is not None:
                if source == "":
                    self.c.error(p + ("source",), "cannot bind to or from the default "
                                                  "exchange (every queue is bound to it)")
                    source = None
                elif (source not in PREDECLARED_NAMES
                      and ("exchange", vhost, source) not in known):
                    self.c.error(p + ("source",), f"exchange '{source}' is not declared in "
                                                  f"vhost '{vhost}' (nor predeclared)")
                    source = None
            if vhost is not None and dest is not None and dest_type is not None:
                predeclared = dest_type == "exchange" and dest in PREDECLARED_NAMES
                if not predeclared and (dest_type, vhost, dest) not in known:
                    self.c.error(p + ("destination",), f"{dest_type} '{dest}' is not "
                                                       f"declared in vhost '{vhost}'")
                    dest = None
            if None in (vhost, source, dest, dest_type, key, args):
                continue
            out.append(BindingDef(vhost, source, dest, dest_type, key, args, self.c.at(p)))
        self._dangling(exchanges, queues, known)
        return out

    # -- helpers -----------------------------------------------------------------------------
    def _arguments(self, m: dict[str, Any], p: tuple) -> dict[str, Any] | None:
        args = self.c.get(m, p, "arguments", "mapping", {})
        if args is None:
            return None
        ok = True
        for key, (lo, hi) in _INT_ARGS.items():
            if key in args:
                ok &= self.c.get(args, p + ("arguments",), key, "int", None, minimum=lo,
                                 maximum=hi) is not None
        for key in _STR_ARGS:
            if key in args:
                ok &= self.c.get(args, p + ("arguments",), key, "str", None) is not None
        return dict(args) if ok else None

    def _dangling(self, exchanges: list[ExchangeDef], queues: list[QueueDef],
                  known: set) -> None:
        """Alternate and dead-letter exchanges may be declared later (RabbitMQ allows
        it), but one that is declared nowhere is probably a typo: warn."""
        for kind, items, arg in (("exchanges", exchanges, "alternate-exchange"),
                                 ("queues", queues, "x-dead-letter-exchange")):
            for item in items:
                target = item.arguments.get(arg)
                if (target and target not in PREDECLARED_NAMES
                        and ("exchange", item.vhost, target) not in known):
                    self.c.warnings.append(item.where.with_message(
                        f"{arg} '{target}' is not declared in vhost '{item.vhost}'"))
