"""The YAML configuration file (issue 5): server settings and topology in one file.

    config = load_config("config/broker.yaml")   # a path, YAML text, or a dict
    config.settings                               # a Settings, defaults + the file
    apply_config(core, config)                    # amqpbroker.topology, after core.recover()

Every problem in the file is collected before anything starts and raised together as one
`ConfigError`, each with file, line and key path. See docs/configuration.md.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from amqpbroker.config.checker import Checker
from amqpbroker.config.model import Config, ConfigError, Problem
from amqpbroker.config.runtime_keys import RUNTIME_KEYS, read_runtime
from amqpbroker.config.server_keys import SERVER_KEYS, read_server
from amqpbroker.config.topology_keys import (
    METADATA_KEYS,
    TOPOLOGY_KEYS,
    UNSUPPORTED_KEYS,
    TopologyReader,
)
from amqpbroker.config.yamlnodes import Reader
from amqpbroker.settings import Settings

__all__ = ["Config", "ConfigError", "Problem", "load_config", "load_settings", "parse"]



def load_config(source: Any, *, environ: Mapping[str, str] | None = None,
                base: Settings | None = None) -> Config:
    """Read and validate a configuration: a file path, YAML (or JSON) text, or a mapping.

    `base` is the Settings the file's values are layered on (default: `Settings()`).
    Raises `ConfigError` listing every problem found.
    """
    if isinstance(source, Config):
        return source
    environ = os.environ if environ is None else environ
    if isinstance(source, Mapping):
        reader = Reader("<config>", environ)
        doc = reader.read_value(source)
    else:
        text, name = _read(source)
        reader = Reader(name, environ)
        doc = reader.read_text(text)
    return parse(doc, reader, base)


def load_settings(source: Any, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Only the Settings of a configuration (it is validated as a whole all the same)."""
    return load_config(source, environ=environ).settings


def _read(source: Any) -> tuple[str, str]:
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source
        and (os.path.exists(source) or source.endswith((".yaml", ".yml", ".json")))
    ):
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8") as f:
                return f.read(), path
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ConfigError([Problem(path, None, "", f"cannot read the file: {reason}")])
    return source, "<config>"


def parse(doc: Any, reader: Reader, base: Settings | None = None) -> Config:
    c = Checker(reader.source, reader.marks, reader.from_env)
    c.problems.extend(reader.problems)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        c.error((), "the file must be a mapping of keys (listeners, vhosts, queues, ...)")
        raise ConfigError(c.problems)
    c.mapping(doc, (), SERVER_KEYS + TOPOLOGY_KEYS + RUNTIME_KEYS,
              ignored=METADATA_KEYS + UNSUPPORTED_KEYS)
    for key in UNSUPPORTED_KEYS:
        if doc.get(key):
            n = len(doc[key]) if isinstance(doc[key], (list, dict)) else 1
            c.warn((key,), f"not supported by amqpbroker; {n} "
                           f"{'entry' if n == 1 else 'entries'} ignored")
    values = read_server(c, doc)
    settings = dataclasses.replace(base or Settings(), **values)
    t = TopologyReader(c, doc, settings.default_vhost, settings.default_user)
    vhosts = t.vhosts()
    users = t.users()
    permissions = t.permissions()
    exchanges = t.exchanges()
    queues = t.queues()
    bindings = t.bindings(exchanges, queues)
    runtime_defs = read_runtime(c, doc, t.vhost_names, t.user_names, settings.default_vhost)
    if c.problems:
        raise ConfigError(_by_line(c.problems))
    return Config(reader.source, settings, values, vhosts, users, permissions, exchanges,
                  queues, bindings, _by_line(c.warnings), runtime_defs)


def _by_line(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))
