"""Queue argument validation, one public module (issue 14): the wording helpers every queue
type's checks use, and the table of argument checks per queue type.

RabbitMQ validates `x-...` queue arguments per queue type (rabbit_amqqueue:declare_args/0
and each type's `capabilities()`), in a fixed order, and words a bad value as an Erlang
term ("invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}"). Each
type keeps its table next to its rules; `table(queue_type)` is the one way to reach them:

    classic  model/queue_args.py  VALIDATORS
    quorum   model/quorum.py      VALIDATORS
    stream   model/stream.py      VALIDATORS

A table is a tuple of (argument name, check(value, arguments) -> None | error term).
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any, Callable, Mapping

Check = Callable[[Any, Mapping[str, Any]], Any]


def table(queue_type: str) -> tuple[tuple[str, Check], ...]:
    """The argument checks of a queue type ("classic", "quorum", "stream"), in order."""
    if queue_type == "quorum":
        from amqpbroker.model import quorum

        return quorum.VALIDATORS
    if queue_type == "stream":  # its checks look at the value only
        from amqpbroker.model import stream

        return tuple((name, lambda value, _args, check=check: check(value))
                     for name, check in stream.VALIDATORS)
    if queue_type == "classic":
        from amqpbroker.model import queue_args

        return queue_args.VALIDATORS
    raise KeyError(queue_type)


class Atom(str):
    """An Erlang atom in an error term (printed bare by `term`)."""


def term(value: Any) -> str:
    """Format a value the way Erlang's ~p prints the matching term."""
    if isinstance(value, Atom):
        return str(value)
    if isinstance(value, tuple):
        return "{" + ",".join(term(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # a charlist: ~p prints it quoted
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def amqp_type_name(value: Any) -> str:
    """RabbitMQ's name for the field type a decoded argument value had on the wire.

    Integers decode to int whatever their width; RabbitMQ would say byte/short/signedint/
    long, we say "long" (what most clients send)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, (str, bytes)):
        return "longstr"
    if isinstance(value, bytearray):
        return "binary"
    if isinstance(value, Mapping):
        return "table"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if value is None:
        return "void"
    return type(value).__name__


def as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None


def as_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return f"expected integer, got {amqp_type_name(value)}"
