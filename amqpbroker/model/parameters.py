"""Runtime parameters of a virtual host (https://www.rabbitmq.com/docs/parameters): values
named by (component, name), such as the definitions of dynamic shovels (component
`shovel`). Durable: every change is an op of the definition log, replayed at startup and
kept by compaction, like exchanges and queues. Each component validates its values; a
listener (the shovel manager) is told of every change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

from amqpbroker.model.shovel_spec import parse_spec

if TYPE_CHECKING:
    from amqpbroker.model.vhost import VirtualHost

# component -> validator (raises ValueError listing the problems)
VALIDATORS: dict[str, Callable[[Any], Any]] = {"shovel": parse_spec}

Listener = Callable[[str, str, str, Any], None]  # (vhost, component, name, value or None)


class Parameters:
    def __init__(self, vhost: "VirtualHost") -> None:
        self.vhost = vhost
        self.values: dict[tuple[str, str], Any] = {}
        self.listeners: list[Listener] = []

    def get(self, component: str, name: str) -> Any:
        return self.values.get((component, name))

    def items(self, component: str | None = None) -> list[tuple[str, str, Any]]:
        return [(c, n, v) for (c, n), v in self.values.items()
                if component is None or c == component]

    def set(self, component: str, name: str, value: Any) -> None:
        """Set (or replace) a parameter; ValueError for an unknown component or a value
        its component refuses (RabbitMQ: 400 "Validation failed")."""
        validate = VALIDATORS.get(component)
        if validate is None:
            raise ValueError(f"component {component} not found")
        if not name:
            raise ValueError("a parameter needs a name")
        validate(value)
        self.values[(component, name)] = value
        self.vhost._record({"op": "parameter.set", "component": component, "name": name,
                            "value": value})
        self._notify(component, name, value)

    def clear(self, component: str, name: str) -> bool:
        if self.values.pop((component, name), None) is None:
            return False
        self.vhost._record({"op": "parameter.clear", "component": component, "name": name})
        self._notify(component, name, None)
        return True

    def apply(self, op: dict[str, Any]) -> None:
        """Replay a recorded change (startup); values were validated when set."""
        key = (op["component"], op["name"])
        if op["op"] == "parameter.set":
            self.values[key] = op["value"]
        else:
            self.values.pop(key, None)

    def durable_ops(self) -> Iterable[dict[str, Any]]:
        for (component, name), value in self.values.items():
            yield {"op": "parameter.set", "vhost": self.vhost.name, "component": component,
                   "name": name, "value": value}

    def _notify(self, component: str, name: str, value: Any) -> None:
        for listener in list(self.listeners):
            listener(self.vhost.name, component, name, value)
