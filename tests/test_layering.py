"""The rings, enforced (issue 14): every import of the broker read with `ast`.

    protocol  -> pamqp, the standard library and `errors` (reply codes, a leaf module)
    message   -> protocol (the neutral Message sits below the model and the store)
    model     -> message, protocol, errors, clock, durations: no store, session, server,
                 broker core, asyncio or structlog (pamqp only)
    store     -> message, protocol, errors, durations: never the model
    broker    -> model, store, message, protocol (the core joins them): never a session
                 (protocol translator), the server or asyncio
    session   -> broker, model, message, protocol (the AMQP translator): never the server
    perf      -> nothing of the broker (a tool with its own client)
    asyncio   -> only the edge modules listed in ASYNCIO_EDGES
and no import cycle between packages. Imports under `if TYPE_CHECKING:` are annotations,
not dependencies, and are not counted.

`test_a_forbidden_import_is_caught` shows the check failing when one is added.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "amqpbroker"
STDLIB = set(sys.stdlib_module_names)

# Which parts of the broker each ring may import ("amqpbroker" itself: only __version__).
ALLOWED: dict[str, set[str]] = {
    "protocol": {"protocol", "errors"},
    "message": {"message", "protocol"},
    "durations": set(),
    "errors": set(),
    "clock": set(),
    "model": {"model", "message", "protocol", "errors", "clock", "durations"},
    "store": {"store", "message", "protocol", "errors", "durations"},
    "streams": {"model", "store", "message", "clock"},
    "broker": {"broker", "model", "store", "message", "protocol", "errors", "clock",
               "settings", "streams", "durations", "limits"},
    "session": {"session", "broker", "model", "message", "protocol", "errors", "root",
                "tls"},
    # Leaf modules of issue 19: counters and rate limiter; TLS contexts (stdlib ssl only).
    "limits": set(),
    "tls": set(),
    "perf": {"perf"},
    # The Prometheus endpoint reads the broker through the admin facade only, which the
    # embedding shell hands it: it imports nothing of the broker.
    "metrics": {"metrics", "root"},
}
# Third-party packages a ring may use besides the standard library (None: any).
THIRD_PARTY: dict[str, set[str] | None] = {
    "protocol": {"pamqp"},
    "message": {"pamqp"},
    "durations": set(),
    "errors": set(),
    "model": {"pamqp"},  # plain Python: its log lines go through model/report.py
    "store": {"structlog"},
}
# Only these may import asyncio: the server shell, embedding, the CLI, the pytest plugin,
# the perf tool, and the network edges later issues add (management API, protocol
# listeners, replication (the cluster package), shovel clients).
ASYNCIO_EDGES = {"server", "embed", "cli", "pytest_plugin", "__main__", "perf",
                 "management", "mqtt_listener", "listeners", "replication", "shovel",
                 "transport", "tls", "fuzz", "cluster", "metrics"}


def ring_of(module: str) -> str:
    """amqpbroker.model.queue -> model; amqpbroker.server -> server."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__init__", "__version__"):
        return "root"
    return parts[1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, source: str) -> list[tuple[str, bool]]:
    """(absolute name, lazy) of every runtime import in `source` (module `module`);
    lazy = inside a function (it cannot make a load-time cycle)."""
    found: list[tuple[str, bool]] = []
    package = module if module.endswith("__init__") else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, lazy)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - child.level + 1]
                    name = ".".join(base + ([child.module] if child.module else []))
                else:
                    name = child.module or ""
                if name == "amqpbroker":  # from amqpbroker import errors, __version__
                    found.extend((f"amqpbroker.{alias.name}", lazy) for alias in child.names)
                else:
                    found.append((name, lazy))
            visit(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(source), False)
    return found


def module_sources() -> dict[str, str]:
    sources = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        sources[".".join(rel.parts)] = path.read_text()
    return sources


def violations(sources: dict[str, str]) -> list[str]:
    problems = []
    graph: dict[str, set[str]] = {}
    for module, source in sources.items():
        ring = ring_of(module)
        for name, lazy in imports_of(module, source):
            top = name.split(".")[0]
            if top == "asyncio" and ring not in ASYNCIO_EDGES:
                problems.append(f"{module} imports asyncio (only edges may)")
            if top == "amqpbroker":
                target = ring_of(name)
                if target != ring and not lazy:
                    graph.setdefault(ring, set()).add(target)
                allowed = ALLOWED.get(ring)
                if allowed is not None and target != ring and target not in allowed:
                    problems.append(f"{module} imports {name} ({ring} -> {target})")
            elif top not in STDLIB and ring in THIRD_PARTY:
                extra = THIRD_PARTY[ring]
                if extra is not None and top not in extra:
                    problems.append(f"{module} imports third-party {name}")
    problems.extend(_cycles(graph))
    return problems


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    found: list[str] = []
    state: dict[str, int] = {}

    def dfs(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                dfs(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            dfs(node, [node])
    return found


def test_the_rings_hold():
    assert violations(module_sources()) == []


def test_a_forbidden_import_is_caught():
    sources = module_sources()
    assert violations(sources) == []
    cases = {
        "amqpbroker.model.queue": "import asyncio\n",
        "amqpbroker.model.vhost": "from amqpbroker.store.memory import MemoryMessageStore\n",
        "amqpbroker.store.disk": "from amqpbroker.model.queue import Queue\n",
        "amqpbroker.protocol.frames": "import structlog\n",
        "amqpbroker.broker.session": "from amqpbroker.session.channel import Channel\n",
        "amqpbroker.perf.client": "from amqpbroker.protocol import fastcodec\n",
    }
    for module, line in cases.items():
        broken = dict(sources)
        broken[module] = sources[module] + "\n" + line
        assert violations(broken), f"{line.strip()} in {module} was not caught"
    # ...but the same import behind `if TYPE_CHECKING:` is an annotation, not a dependency.
    typed = dict(sources)
    typed["amqpbroker.model.vhost"] += (
        "\nif TYPE_CHECKING:\n    from amqpbroker.store.base import MessageStore\n")
    assert violations(typed) == []


def test_a_cycle_between_packages_is_caught():
    sources = module_sources()
    sources["amqpbroker.message"] += "\nfrom amqpbroker.model import names\n"
    assert any("cycle" in p or "message -> model" in p for p in violations(sources))


def test_importing_the_protocol_does_not_load_asyncio():
    # (The model and stores log with structlog, which itself imports asyncio: that is the
    # library's doing, not an import of ours; the ring rules above cover our code.)
    code = ("import sys, amqpbroker.protocol.fastcodec, amqpbroker.protocol.frames, "
            "amqpbroker.protocol.methods, amqpbroker.message; "
            "print('asyncio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT.parent)
    assert out.stdout.strip() == "False", out.stderr
