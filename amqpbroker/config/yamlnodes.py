"""YAML text -> plain Python values plus the line of every key path, with ${ENV} substitution.

The text is composed into PyYAML's node tree (`yaml.compose`), which keeps the position of
every node; walking it ourselves lets us record `path -> line` for error messages, reject
duplicate keys (PyYAML silently keeps the last one) and substitute environment variables in
scalars before they are typed, so `port: ${PORT:-5672}` is an integer.

Substitution, in values only (never in keys):
    ${NAME}            the variable's value; an error if it is not set
    ${NAME:-default}   the value, or `default` when the variable is unset or empty
    ${NAME-default}    the value, or `default` when the variable is unset
    $${NAME}           a literal ${NAME}
An unquoted scalar is re-typed after substitution (`${PORT}` with PORT=5 is the integer 5);
a quoted one stays a string, except where the schema wants a number or a boolean (so
`port: "${PORT}"` works too; quoting is needed inside flow collections `[...]`, `{...}`).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import yaml

from amqpbroker.config.model import Path, Problem, format_path

_ENV = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")
_MAX_DEPTH = 64


def substitute(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """`text` with ${...} replaced, and the names of required variables that are unset."""
    missing: list[str] = []

    def replace(m: re.Match[str]) -> str:
        if m.group(1):  # $${NAME}: escaped
            return m.group(0)[1:]
        name, op, default = m.group(2), m.group(3), m.group(4)
        value = environ.get(name)
        if op == ":-" and not value:
            value = default
        elif op == "-" and value is None:
            value = default
        if value is None:
            missing.append(name)
            return ""
        return value

    if "$" not in text:
        return text, missing
    return _ENV.sub(replace, text), missing


class Reader:
    """One document's worth of values, marks and problems."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.marks: dict[Path, int] = {}
        self.from_env: set[Path] = set()  # values that came (partly) from the environment
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")
        self._resolver = yaml.resolver.Resolver()

    def error(self, path: Path, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.source, line, format_path(path), message))

    # -- YAML text ---------------------------------------------------------------------------
    def read_text(self, text: str) -> Any:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = " ".join(x for x in (exc.context, exc.problem) if x)
            self.error((), mark.line + 1 if mark else None, f"invalid YAML: {what}")
            return None
        except yaml.YAMLError as exc:
            self.error((), None, f"invalid YAML: {exc}")
            return None
        if node is None:
            return {}
        return self._node(node, (), 0)

    def _node(self, node: yaml.Node, path: Path, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.marks.setdefault(path, line)
        if depth > _MAX_DEPTH:
            self.error(path, line, "nested too deeply (a recursive alias?)")
            return None
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    self.error(path, key_line, "a key must be a plain scalar")
                    continue
                key = key_node.value  # the text as written: `on:` is the key "on", not True
                key_path = path + (key,)
                if key in out:
                    self.error(key_path, key_line,
                               f"duplicate key '{key}' (first at line {self.marks[key_path]})")
                    continue
                self.marks[key_path] = key_line
                out[key] = self._node(value_node, key_path, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, child in enumerate(node.value):
                self.marks[path + (i,)] = child.start_mark.line + 1
                items.append(self._node(child, path + (i,), depth + 1))
            return items
        return self._scalar(node, path, line)

    def _scalar(self, node: yaml.ScalarNode, path: Path, line: int) -> Any:
        tag = node.tag
        value, missing = substitute(node.value, self.environ)
        for name in missing:
            self.error(path, line, f"environment variable {name} is not set "
                                   f"(write ${{{name}:-default}} to give a default)")
        if value != node.value or missing:
            self.from_env.add(path)
        if missing:
            tag = "tag:yaml.org,2002:str"
        elif value != node.value:
            tag = (self._resolver.resolve(yaml.ScalarNode, value, (True, False))
                   if node.style is None else "tag:yaml.org,2002:str")
        try:
            return self._constructor.construct_object(yaml.ScalarNode(tag, value,
                                                                      node.start_mark))
        except yaml.YAMLError as exc:
            self.error(path, line, f"cannot read value {value!r}: {exc}")
            return None

    # -- an already-parsed mapping (Broker(config={...})) -------------------------------------
    def read_value(self, value: Any, path: Path = ()) -> Any:
        if isinstance(value, Mapping):
            return {str(k): self.read_value(v, path + (str(k),)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.read_value(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, str):
            out, missing = substitute(value, self.environ)
            if out != value or missing:
                self.from_env.add(path)
            for name in missing:
                self.error(path, None, f"environment variable {name} is not set "
                                       f"(write ${{{name}:-default}} to give a default)")
            return out
        return value
