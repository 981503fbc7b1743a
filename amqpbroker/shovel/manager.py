"""Runs the dynamic shovels the vhosts' `shovel` parameters define: one worker per
parameter, started when the parameter is set (or found at startup), restarted when it
changes, stopped when it is cleared. A shovel whose src-delete-after is reached clears
its own parameter, as RabbitMQ's does. `status()` is GET /api/shovels.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote, urlsplit

import structlog

from amqpbroker.broker.runtime import record, store_parameter
from amqpbroker.model.shovel_spec import parse_spec
from amqpbroker.shovel.local import LocalDestination
from amqpbroker.shovel.worker import ShovelWorker

if TYPE_CHECKING:
    from amqpbroker.broker.core import BrokerCore

log = structlog.get_logger("amqpbroker")

COMPONENT = "shovel"


class ShovelManager:
    def __init__(self, core: "BrokerCore", local_url: Callable[[str], str]) -> None:
        """`local_url(vhost)`: an amqp:// URL of this broker for that vhost, what a
        shovel URI without a host (`amqp://`) means."""
        self.core = core
        self.local_url = local_url
        self.workers: dict[tuple[str, str], ShovelWorker] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self.node = f"amqpbroker@{socket.gethostname()}"

    def start(self) -> None:
        """Start the shovels defined now; follow every later change (any vhost)."""
        self.core.parameter_listeners.append(self._changed)
        for (vhost, component, name), value in list(self.core.runtime.parameters.items()):
            if component == COMPONENT:
                self._start(vhost, name, value)

    def _changed(self, vhost: str, component: str, name: str, value: Any) -> None:
        if component != COMPONENT:
            return
        self._stop((vhost, name))
        if value is not None:
            self._start(vhost, name, value)

    def _start(self, vhost: str, name: str, value: Any) -> None:
        try:
            spec = parse_spec(value)
        except ValueError as exc:  # stored before validation got stricter: log, skip
            log.error("shovel.invalid", vhost=vhost, shovel=name, error=str(exc))
            return
        worker = ShovelWorker(vhost, name, spec, lambda uri: self._resolve(uri, vhost),
                              self._finished, node=self.node,
                              local=lambda uri: self._local(uri, vhost))
        self.workers[(vhost, name)] = worker
        worker.start()

    def _stop(self, key: tuple[str, str]) -> None:
        worker = self.workers.pop(key, None)
        if worker is not None:
            task = asyncio.get_running_loop().create_task(worker.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def _finished(self, worker: ShovelWorker) -> None:
        """src-delete-after reached: the shovel deletes its own parameter (a durable
        change, as the API's DELETE)."""
        if self.workers.get((worker.vhost, worker.name)) is worker:
            del self.workers[(worker.vhost, worker.name)]
        key = (worker.vhost, COMPONENT, worker.name)
        if key in self.core.runtime.parameters:
            record(self.core, {"op": "parameter.delete", "vhost": worker.vhost,
                               "component": COMPONENT, "name": worker.name})
            store_parameter(self.core, worker.vhost, COMPONENT, worker.name, None)

    def _resolve(self, uri: str, vhost: str) -> str:
        parts = urlsplit(uri)
        if parts.hostname:
            return uri
        # "amqp://" (no host): this broker, in the shovel's vhost (RabbitMQ: the local node)
        path = parts.path.lstrip("/")
        return self.local_url(vhost if not path else _unquote(path))

    def _local(self, uri: str, vhost: str) -> LocalDestination | None:
        """A destination URI without a host is this broker: a direct destination into
        the core (shovel/local.py), as the default user, in the URI's or the shovel's
        vhost. None for any other URI (a connection is opened)."""
        parts = urlsplit(uri)
        if parts.hostname:
            return None
        path = parts.path.lstrip("/")
        return LocalDestination(self.core, vhost if not path else _unquote(path),
                                self.core.settings.default_user)

    def status(self, vhost: str | None = None) -> list[dict[str, Any]]:
        """GET /api/shovels (RabbitMQ's shovel-management shape), optionally one vhost's."""
        return [w.status() for (v, _), w in sorted(self.workers.items())
                if vhost is None or v == vhost]

    async def stop(self) -> None:
        if self._changed in self.core.parameter_listeners:
            self.core.parameter_listeners.remove(self._changed)
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.stop() for w in workers), *self._stopping,
                             return_exceptions=True)


def _unquote(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def vhost_url(base: str, vhost: str) -> str:
    """`base` (amqp://user:pw@host:port/) with `vhost` as its path."""
    return base.rstrip("/") + "/" + quote(vhost, safe="")
