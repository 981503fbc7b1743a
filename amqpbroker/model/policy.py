"""Policies and operator policies: which one applies to a queue or exchange, and the
values that take effect (https://www.rabbitmq.com/docs/policies).

Plain synchronous Python. A vhost holds a `PolicySet` (its user policies and operator
policies, patterns compiled once); `VirtualHost` asks it for the `Effective` settings of
each queue and exchange when it is declared and whenever a policy changes, and hands
them to the object (`Queue.apply_policy`, stream and exchange likewise).

Selection (docs "Policy Priorities"): a policy matches when its `apply-to` covers the
object's kind and its pattern (a regex, unanchored like Erlang's re:run) matches the name;
the highest priority wins. RabbitMQ leaves the choice among equal priorities undefined;
here the policy whose name sorts first wins, so the result is stable.

Precedence, per key, as RabbitMQ 4.x (docs "Operator Policies", rabbit_amqqueue_process /
rabbit_quorum_queue / rabbit_stream_queue):

* queue argument vs user policy: the smaller value for message-ttl, expires, max-length,
  max-length-bytes and delivery-limit; the argument wins for the other keys, except that
  the policy wins for `overflow` on quorum queues and for every stream setting;
* operator policy vs the result: the smaller value for the numeric keys (a negative
  delivery-limit means unlimited, so it never undercuts a real limit), the operator's
  value for `overflow`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from amqpbroker.model.queue_args import MAX_EXPIRY_MS, OVERFLOW_MODES

APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")

# key -> (value check, which object kinds use it). Kinds: classic, quorum, stream, exchange.
_QUEUES = ("classic", "quorum")
_ALL_QUEUES = ("classic", "quorum", "stream")
# Keys accepted and ignored (documented in docs/policies.md): nothing to configure here.
IGNORED_KEYS = ("queue-mode", "queue-version", "queue-master-locator", "queue-leader-locator",
                "max-in-memory-length", "max-in-memory-bytes", "target-group-size",
                "initial-cluster-size", "stream-filter-size-bytes")
# Operator policies may only set these (docs "Operator Policies").
OPERATOR_KEYS = ("expires", "message-ttl", "max-length", "max-length-bytes", "delivery-limit",
                 "overflow", "max-in-memory-length", "max-in-memory-bytes", "queue-version",
                 "target-group-size")
# Numeric keys where the smaller value wins (argument vs policy, policy vs operator).
MIN_KEYS = ("message-ttl", "expires", "max-length", "max-length-bytes", "delivery-limit")


def _non_neg_int(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return None
    return f"{v!r} is not a valid non-negative integer"


def _ttl(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_EXPIRY_MS:
        return None
    return f"{v!r} is not a valid message TTL"


def _expires(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_EXPIRY_MS:
        return None
    return f"{v!r} is not a valid queue expiry"


def _int(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) else \
        f"{v!r} is not a valid delivery limit"


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) else f"{v!r} is not a valid string"


def _overflow(v: Any) -> str | None:
    return None if v in OVERFLOW_MODES else f"{v!r} is not a valid overflow value"


def _strategy(v: Any) -> str | None:
    return None if v in ("at-most-once", "at-least-once") else \
        f"{v!r} is not a valid dead letter strategy"


def _age(v: Any) -> str | None:
    from amqpbroker.model.stream import parse_interval

    try:
        if isinstance(v, str) and parse_interval(v) is not None:
            return None
    except Exception:  # noqa: BLE001 - any parse failure is an invalid value
        pass
    return f"{v!r} is not a valid max age"


def _anything(v: Any) -> str | None:
    return None


KEYS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "message-ttl": (_ttl, _QUEUES),
    "expires": (_expires, _QUEUES),
    "max-length": (_non_neg_int, _QUEUES),
    "max-length-bytes": (_non_neg_int, _ALL_QUEUES),
    "overflow": (_overflow, _QUEUES),
    "dead-letter-exchange": (_text, _QUEUES),
    "dead-letter-routing-key": (_text, _QUEUES),
    "dead-letter-strategy": (_strategy, ("quorum",)),
    "delivery-limit": (_int, _QUEUES),
    "consumer-timeout": (_non_neg_int, _QUEUES),
    "max-age": (_age, ("stream",)),
    "stream-max-segment-size-bytes": (_non_neg_int, ("stream",)),
    "alternate-exchange": (_text, ("exchange",)),
    **{k: (_anything, ()) for k in IGNORED_KEYS},
}


class PolicyError(ValueError):
    """A policy RabbitMQ would refuse (HTTP 400 with this text)."""


def validate(kind: str, definition: Mapping[str, Any]) -> None:
    """Raise PolicyError for a definition RabbitMQ 4.x refuses (kind: policy or
    operator_policy); texts as rabbit_policy's validation."""
    if not isinstance(definition, Mapping) or not definition:
        raise PolicyError("definition must be a non-empty object")
    mirroring = sorted(k for k in definition if k.startswith("ha-"))
    if mirroring:  # classic queue mirroring was removed in RabbitMQ 4.x, which refuses it
        raise PolicyError(f"classic queue mirroring is not supported: {', '.join(mirroring)}")
    allowed = OPERATOR_KEYS if kind == "operator_policy" else tuple(KEYS)
    unknown = sorted(k for k in definition if k not in allowed)
    if unknown:
        raise PolicyError(f"Validation failed\n\n{unknown} are not recognised policy settings")
    for key, value in definition.items():
        problem = KEYS[key][0](value)
        if problem is not None:
            raise PolicyError(f"Validation failed\n\n{problem} ({key})")


@dataclass
class Policy:
    name: str
    pattern: str
    apply_to: str
    priority: int
    definition: dict[str, Any]
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.regex = re.compile(self.pattern)

    def covers(self, kind: str) -> bool:
        """kind: classic, quorum, stream or exchange."""
        a = self.apply_to
        if kind == "exchange":
            return a in ("all", "exchanges")
        return a in ("all", "queues") or a == {"classic": "classic_queues",
                                               "quorum": "quorum_queues",
                                               "stream": "streams"}[kind]


@dataclass(frozen=True)
class Effective:
    """What a queue or exchange gets from its policies."""

    policy: str | None = None
    operator_policy: str | None = None
    definition: dict[str, Any] = field(default_factory=dict)  # effective_policy_definition
    arguments: dict[str, Any] = field(default_factory=dict)  # x-args the object runs with


NONE = Effective()


class PolicySet:
    """One vhost's policies and operator policies."""

    def __init__(self) -> None:
        self.user: list[Policy] = []
        self.operator: list[Policy] = []

    def __bool__(self) -> bool:
        return bool(self.user or self.operator)

    def load(self, user: Iterable[tuple[str, Mapping[str, Any]]],
             operator: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Replace the policies with (name, {pattern, apply-to, priority, definition})."""
        self.user = _sorted(user)
        self.operator = _sorted(operator)

    def effective(self, kind: str, name: str, arguments: Mapping[str, Any]) -> Effective:
        if not self:
            return NONE
        pol = _select(self.user, kind, name)
        op = _select(self.operator, kind, name)
        if pol is None and op is None:
            return NONE
        return combine(kind, arguments, pol.definition if pol else {},
                       op.definition if op else {},
                       pol.name if pol else None, op.name if op else None)


def _sorted(items: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Policy]:
    out = [Policy(name, p["pattern"], p.get("apply-to", "all"), int(p.get("priority", 0)),
                  dict(p["definition"])) for name, p in items]
    # highest priority first; among equals the name that sorts first (documented tie-break)
    out.sort(key=lambda p: (-p.priority, p.name))
    return out


def _select(policies: list[Policy], kind: str, name: str) -> Policy | None:
    for p in policies:
        if p.covers(kind) and p.regex.search(name):
            return p
    return None


def _lesser(a: Any, b: Any, key: str) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if key == "delivery-limit":  # negative = unlimited (RabbitMQ 4.x)
        if a < 0:
            return b
        if b < 0:
            return a
    return min(a, b)


def combine(kind: str, arguments: Mapping[str, Any], policy: Mapping[str, Any],
            operator: Mapping[str, Any], policy_name: str | None = None,
            operator_name: str | None = None) -> Effective:
    """The effective definition and arguments of an object (see the module docstring)."""
    used = {k for k, (_, kinds) in KEYS.items() if kind in kinds}
    # user policy merged with the operator policy: the effective policy definition
    definition: dict[str, Any] = {k: v for k, v in policy.items() if k in used}
    for key, value in operator.items():
        if key not in used:
            continue
        definition[key] = (_lesser(definition.get(key), value, key) if key in MIN_KEYS
                           else value)
    effective_args = dict(arguments)
    if kind == "exchange":
        if "alternate-exchange" in definition and "alternate-exchange" not in arguments:
            effective_args["alternate-exchange"] = definition["alternate-exchange"]
        return Effective(policy_name, operator_name, definition, effective_args)
    for key, value in policy.items():
        if key not in used:
            continue
        arg = "x-" + key
        current = arguments.get(arg)
        if current is None or kind == "stream" or (key == "overflow" and kind == "quorum"):
            effective_args[arg] = value
        elif key in MIN_KEYS and isinstance(current, int) and not isinstance(current, bool):
            effective_args[arg] = _lesser(current, value, key)
    for key, value in operator.items():
        if key not in used:
            continue
        arg = "x-" + key
        if key in MIN_KEYS:
            effective_args[arg] = _lesser(effective_args.get(arg), value, key)
        else:  # overflow: the operator's value
            effective_args[arg] = value
    return Effective(policy_name, operator_name, definition, effective_args)
