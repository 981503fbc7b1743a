"""Small typed accessors that collect every problem instead of stopping at the first."""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable, Iterable

import yaml

from amqpbroker.config.model import Path, Problem, format_path

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
MISSING: Any = object()


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


class Checker:
    def __init__(self, source: str, marks: dict[Path, int],
                 from_env: set[Path] | None = None) -> None:
        self.source = source
        self.marks = marks
        self.from_env = from_env or set()
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def at(self, path: Path) -> Problem:
        """The location of `path` (the nearest enclosing node that has a line)."""
        probe = path
        while probe and probe not in self.marks:
            probe = probe[:-1]
        return Problem(self.source, self.marks.get(probe), format_path(path))

    def error(self, path: Path, message: str) -> None:
        self.problems.append(self.at(path).with_message(message))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(self.at(path).with_message(message))

    # -- containers --------------------------------------------------------------------------
    def mapping(self, value: Any, path: Path, keys: Iterable[str],
                ignored: Iterable[str] = ()) -> dict[str, Any]:
        """`value` as a mapping (None = empty), reporting keys outside `keys`/`ignored`."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {describe(value)}")
            return {}
        known = list(keys)
        for key in value:
            if key not in known and key not in ignored:
                hint = difflib.get_close_matches(key, known, n=1)
                self.error(path + (key,), f"unknown key '{key}'" + (
                    f" (did you mean '{hint[0]}'?)" if hint else
                    f" (expected one of: {', '.join(known)})"))
        return value

    def sequence(self, value: Any, path: Path) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {describe(value)}")
            return []
        return value

    # -- scalars -----------------------------------------------------------------------------
    def get(self, m: dict[str, Any], path: Path, key: str, kind: str, default: Any = MISSING,
            *, minimum: float | None = None, maximum: float | None = None,
            choices: Iterable[Any] | None = None,
            check: Callable[[Any], str | None] | None = None) -> Any:
        """m[key] converted to `kind` (str, int, bool, number, size, str_list, mapping).

        A missing key gives `default` (an error if there is none); a bad value is reported
        and gives `default` (or None) so that checking can go on.
        """
        p = path + (key,)
        if key not in m:
            if default is MISSING:
                self.error(path, f"missing required key '{key}'")
                return None
            return default
        fallback = None if default is MISSING else default
        raw = m[key]
        if isinstance(raw, str) and p in self.from_env and kind in ("int", "number", "bool"):
            raw = _retype(raw)  # port: "${PORT}" - the environment only has strings
        value = convert(raw, kind)
        if isinstance(value, Invalid):
            self.error(p, f"expected {value.expected}, got {describe(m[key])}")
            return fallback
        problem = None
        if minimum is not None and value < minimum:
            problem = f"must be at least {minimum}, got {value}"
        elif maximum is not None and value > maximum:
            problem = f"must be at most {maximum}, got {value}"
        elif choices is not None and value not in choices:
            problem = f"must be one of: {', '.join(map(str, choices))}; got {value!r}"
        elif check is not None:
            problem = check(value)
        if problem:
            self.error(p, problem)
            return fallback
        return value


def _retype(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (bool, int, float)) else text


class Invalid:
    def __init__(self, expected: str) -> None:
        self.expected = expected


def convert(value: Any, kind: str) -> Any:
    if kind == "str":
        # Names such as a routing key `1` or vhost `2024` are strings whatever YAML thinks.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value if isinstance(value, str) else Invalid("a string")
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value if ok else Invalid("an integer")
    if kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else Invalid("a number")
    if kind == "bool":
        return value if isinstance(value, bool) else Invalid("true or false")
    if kind == "size":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        m = _SIZE.match(value) if isinstance(value, str) else None
        if m is None:
            return Invalid("a size in bytes (an integer, or e.g. '16MiB', '512KB')")
        return int(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]
    if kind == "str_list":
        if isinstance(value, str):  # RabbitMQ's older exports: "administrator,management"
            return [t.strip() for t in value.split(",") if t.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        return Invalid("a list of strings")
    if kind == "mapping":
        return value if isinstance(value, dict) else Invalid("a mapping")
    raise ValueError(kind)
