"""The broker as a library (issue 9): start it inside any asyncio program or test.

    async with Broker(port=0) as broker:      # in-memory, a free port
        connection = await aio_pika.connect(broker.url)

    with run_in_thread() as broker:           # for code that is not async (pika, Celery)
        ...
"""

from __future__ import annotations

import asyncio
import platform
import dataclasses
from urllib.parse import quote
import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import structlog

from amqpbroker import __version__
from amqpbroker.core import BrokerCore
from amqpbroker.server import Server
from amqpbroker.settings import Settings

log = structlog.get_logger("amqpbroker")


def open_stores(settings: Settings) -> tuple[Any, Any, Any]:
    """The message and definition stores for these settings (memory when no data dir),
    and the data dir's lock (None in memory): one broker per data dir."""
    if settings.data_dir is None:
        from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore

        return MemoryMessageStore(), MemoryDefinitionStore(), None
    from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore
    from amqpbroker.store.lock import DataDirLock

    lock = DataDirLock(settings.data_dir)
    try:
        return (
            DiskMessageStore(os.path.join(settings.data_dir, "messages"), sync=settings.sync,
                             memory_budget=settings.store_memory_budget),
            DiskDefinitionStore(os.path.join(settings.data_dir, "definitions")),
            lock,
        )
    except BaseException:
        lock.release()
        raise


class Broker:
    """An AMQP 0-9-1 broker in this process. In-memory unless `data_dir` is given."""

    def __init__(self, settings: Settings | None = None, *, config: Any = None,
                 management: bool = False, prometheus: bool = False,
                 **overrides: Any) -> None:
        """`config`: a YAML file path, YAML text, a dict or a loaded `Config` (issue 5);
        its topology is applied at every start, after the stored one is recovered. Its
        settings apply when `settings` is None, layered on the embedded defaults
        (in memory, 127.0.0.1, a free port); keyword overrides win over both. Raises
        `amqpbroker.config.ConfigError` listing every problem of an invalid file.

        The management HTTP API is off unless `management=True` (then on a free port,
        `broker.management_url`) or a `management_port` is given; so is the Prometheus
        endpoint (`prometheus=True`, `broker.prometheus_url`; docs/metrics.md)."""
        self.config = None
        if config is not None:
            from amqpbroker.config import load_config

            self.config = load_config(config)
        if settings is None:
            # MQTT listeners are off in the embedded broker unless asked (mqtt_port=0: a
            # free port), as every listener but AMQP's.
            overrides = {"data_dir": None, "host": "127.0.0.1", "port": 0,
                         "mqtt_port": None, "mqtt_ws_port": None,
                         "management_port": None, "management_tls_port": None,
                         "mqtt_tls_port": None, "mqtt_wss_port": None,
                         **(self.config.setting_values if self.config else {}), **overrides}
            settings = Settings()
        if prometheus and overrides.get("prometheus_port") is None:
            overrides["prometheus_port"] = 0
        if management and overrides.get("management_port") is None:
            overrides["management_port"] = 0
        self.settings = dataclasses.replace(settings, **overrides)
        self.core: BrokerCore | None = None
        self.server: Server | None = None
        self.shovels: Any = None  # amqpbroker.shovel.manager.ShovelManager once started
        self.management: Any = None  # management.app.ManagementServer when on
        self.admin: Any = None  # broker.admin.Admin: the management plane's facade
        self.metrics: Any = None  # metrics.app.MetricsServer when on
        self._lock: Any = None
        # Called with the new core before recovery (the cluster leader taps its change
        # stream there, cluster/node.py); None otherwise.
        self.prepare: Any = None
        # A cluster leader's (cluster/node.py): the server's commit gate (confirms and
        # declaration replies wait for the in-sync replicas) and the cluster view the
        # management API shows; None on a single node.
        self.commit_gate: Any = None
        self.cluster: Any = None

    @property
    def port(self) -> int:
        assert self.server is not None, "broker not started"
        return self.server.port

    @property
    def mqtt_port(self) -> int | None:
        """The MQTT listener's port, None when it is off."""
        return self.server.mqtt_port if self.server is not None else None

    @property
    def mqtt_ws_port(self) -> int | None:
        """The MQTT-over-WebSocket listener's port (path `/ws`), None when it is off."""
        return self.server.mqtt_ws_port if self.server is not None else None

    @property
    def mqtt_tls_port(self) -> int | None:
        """The MQTT-over-TLS listener's port, None when it is off."""
        return self.server.mqtt_tls_port if self.server is not None else None

    @property
    def mqtt_wss_port(self) -> int | None:
        """The MQTT-over-secure-WebSocket listener's port (path `/ws`), None when off."""
        return self.server.mqtt_wss_port if self.server is not None else None

    @property
    def tls_port(self) -> int:
        """The amqps listener's port (a free one unless `tls_port` was given)."""
        assert self.server is not None and self.server.tls_port, "no amqps listener"
        return self.server.tls_port

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self._host()}:{self.port}/"

    @property
    def amqps_url(self) -> str:
        return f"amqps://guest:guest@{self._host()}:{self.tls_port}/"

    def _host(self) -> str:
        host = self.settings.host if isinstance(self.settings.host, str) else "127.0.0.1"
        return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host

    def reload_certificates(self) -> list[str]:
        """Reload the TLS certificate, key and CA files into every TLS listener (SIGHUP,
        `ctl reload_certificates`): new connections get them, established ones stay.
        Returns the listeners reloaded; raises tls.TLSConfigError (nothing changed)."""
        from amqpbroker.tls import TLSConfigError

        if self.server is None or self.settings.tls is None:
            raise TLSConfigError("no TLS listener is running")
        return self.server.reload_certificates(self.settings.tls)

    async def start(self) -> "Broker":
        store, definitions, self._lock = open_stores(self.settings)
        self.core = BrokerCore(self.settings, store, definitions)
        try:  # the stored topology first, then the configuration's on top of it
            if self.prepare is not None:
                self.prepare(self.core)
            self.core.recover()
            if self.config is not None:
                from amqpbroker.topology import apply_config

                apply_config(self.core, self.config)
            self.server = Server(self.core)
            self.server.commit_gate = self.commit_gate
            s = self.settings
            if s.port is not None:
                await self.server.start(s.host, s.port)
            if s.tls is not None:  # amqps: off unless asked; a free port unless given
                await self.server.start_tls(s.host if s.tls_host is None else s.tls_host,
                                            0 if s.tls_port is None else s.tls_port, s.tls)
            await self.server.start_mqtt(s.host)  # MQTT and Web-MQTT, when their ports are set
            await self._start_management()
            await self._start_metrics()
            self._start_shovels()
        except BaseException:
            # a conflicting config or a busy port must not leave stores or the lock held
            if self.management is not None:  # nor the HTTP listeners started before
                if self.management.stats is not None:
                    self.management.stats.stop()
                await self.management.stop()
                self.management = None
            if self.server is not None:
                await self.server.stop(0)
            self.core.close()
            self.core = self.server = None
            self._release_lock()
            raise
        log.info("broker.started", version=__version__, listeners=self.server.addresses,
                 management=self.management.port if self.management else None,
                 data_dir=self.settings.data_dir, python=platform.python_version(),
                 pamqp=_version_of("pamqp"), loop=type(asyncio.get_running_loop()).__module__)
        return self

    def _start_shovels(self) -> None:
        """Dynamic shovels (docs/shovel.md); `amqp://` in a shovel URI means this broker,
        reached through its own listener as the default user."""
        from amqpbroker.shovel.manager import ShovelManager, vhost_url

        assert self.core is not None
        s = self.settings
        base = (f"amqp://{quote(s.default_user, safe='')}:{quote(s.default_password, safe='')}"
                f"@{self._host()}:{self.port}/" if s.port is not None else None)

        def local_url(vhost: str) -> str:
            if base is None:  # the shovel's state says why it does not start
                raise ValueError("amqp:// (this broker) needs the plain AMQP listener")
            return vhost_url(base, vhost)

        self.shovels = ShovelManager(self.core, local_url)
        self.shovels.start()
        if self.admin is not None:  # GET /api/shovels
            self.admin.shovels = self.shovels

    async def _start_management(self) -> None:
        from amqpbroker.broker.admin import Admin

        assert self.core is not None and self.server is not None
        server = self.server
        from amqpbroker.topology import find_conflicts

        core = self.core
        self.admin = Admin(core, on_publish=server.maybe_sync,
                           find_conflicts=lambda config: find_conflicts(core, config))
        self.admin.reload_certificates = self.reload_certificates  # POST /api/.../reload
        self.admin.cluster = self.cluster
        ip = server.addresses[0].rsplit(":", 1)[0] if server.addresses else "::"
        self.admin.listeners = []
        # RabbitMQ's protocol names for its listeners (/api/overview, health checks)
        for protocol, port in (("amqp", server.port if self.settings.port is not None
                                else None),
                               ("amqp/ssl", server.tls_port or None),
                               ("mqtt", server.mqtt_port), ("mqtt/ssl", server.mqtt_tls_port),
                               ("http/web-mqtt", server.mqtt_ws_port),
                               ("https/web-mqtt", server.mqtt_wss_port)):
            if port is not None:
                self.admin.listeners.append({"protocol": protocol, "port": port, "ip": ip})
        s = self.settings
        port, tls_port = s.management_port, s.management_tls_port
        if port is None and tls_port is None:
            return
        from amqpbroker.management.app import ManagementServer
        from amqpbroker.management.stats import Stats

        host = s.management_host
        if host is None:
            host = s.host
        ctx = None
        if tls_port is not None:  # RabbitMQ's management.ssl.port (15671)
            if server.tls_contexts is None:
                from amqpbroker.tls import TLSConfigError

                raise TLSConfigError("HTTPS management needs the TLS settings (--tls-cert "
                                     "or `tls:`)")
            ctx = server.tls_contexts.context("https")
        stats = Stats(self.admin, s.management_rates_interval)
        self.management = ManagementServer(self.admin, host, port, stats, tls_port, ctx)
        await self.management.start()
        stats.start()
        mgmt_ip = host if isinstance(host, str) else "::"
        if port is not None:
            self.admin.listeners.append({"protocol": "http", "port": self.management.port,
                                         "ip": mgmt_ip})
        if tls_port is not None:
            self.admin.listeners.append({"protocol": "https",
                                         "port": self.management.tls_port, "ip": mgmt_ip})

    async def _start_metrics(self) -> None:
        """The Prometheus endpoint (docs/metrics.md) over the admin facade: HTTP on
        `prometheus_port`, HTTPS with the `tls` settings on `prometheus_tls_port`."""
        s = self.settings
        if s.prometheus_port is None and s.prometheus_tls_port is None:
            return
        from amqpbroker import tls
        from amqpbroker.metrics.app import MetricsServer

        ctx = None
        if s.prometheus_tls_port is not None:
            if s.tls is None:
                raise tls.TLSConfigError("the HTTPS metrics listener needs the TLS settings "
                                         "(--tls-cert or `tls:`)")
            ctx = tls.server_context(s.tls)
        host = s.prometheus_host if s.prometheus_host is not None else s.host
        self.metrics = MetricsServer(self.admin, host, s.prometheus_port,
                                     s.prometheus_tls_port, ctx)
        await self.metrics.start()
        ip = host if isinstance(host, str) else "::"
        for protocol, port in (("http/prometheus", self.metrics.port),
                               ("https/prometheus", self.metrics.tls_port)):
            if port:  # RabbitMQ's names for these listeners
                self.admin.listeners.append({"protocol": protocol, "port": port, "ip": ip})

    @property
    def prometheus_port(self) -> int:
        assert self.metrics is not None and self.metrics.port, "metrics (HTTP) not started"
        return self.metrics.port

    @property
    def prometheus_tls_port(self) -> int:
        assert self.metrics is not None and self.metrics.tls_port, "metrics (HTTPS) not started"
        return self.metrics.tls_port

    @property
    def prometheus_url(self) -> str:
        """The HTTP metrics listener's base URL (add /metrics)."""
        return f"http://{self._metrics_host()}:{self.prometheus_port}"

    @property
    def prometheus_https_url(self) -> str:
        return f"https://{self._metrics_host()}:{self.prometheus_tls_port}"

    def _metrics_host(self) -> str:
        host = self.settings.prometheus_host or self.settings.host
        if not isinstance(host, str) or host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return host

    @property
    def management_port(self) -> int:
        assert self.management is not None and self.management.port, \
            "management API (HTTP) not started"
        return self.management.port

    @property
    def management_tls_port(self) -> int:
        assert self.management is not None and self.management.tls_port, \
            "HTTPS management API not started"
        return self.management.tls_port

    @property
    def management_https_url(self) -> str:
        return f"https://{self._management_host()}:{self.management_tls_port}"

    @property
    def management_url(self) -> str:
        return f"http://{self._management_host()}:{self.management_port}"

    def _management_host(self) -> str:
        host = self.settings.management_host or self.settings.host
        if not isinstance(host, str) or host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return host

    async def stop(self) -> None:
        if self.shovels is not None:
            await self.shovels.stop()
            self.shovels = None
        if self.metrics is not None:
            await self.metrics.stop()
            self.metrics = None
        if self.management is not None:
            if self.management.stats is not None:
                self.management.stats.stop()
            await self.management.stop()
            self.management = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.core is not None:
            self.core.close()
            self.core = None
        self._release_lock()
        log.info("broker.stopped")

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def url_for(self, vhost: str) -> str:
        """The URL of one of this broker's vhosts (percent-encoded as AMQP URIs require)."""
        from urllib.parse import quote

        return self.url[:-1] + "/" + quote(vhost, safe="")

    def add_vhost(self, name: str) -> str:
        """Create a vhost the default user may use; returns its URL. Call from the
        broker's own thread or loop (see `call_soon` for other threads)."""
        assert self.core is not None, "broker not started"
        self.core.add_vhost(name, grant_to=self.settings.default_user)
        return self.url_for(name)

    def delete_vhost(self, name: str) -> None:
        assert self.core is not None, "broker not started"
        self.core.delete_vhost(name)

    async def __aenter__(self) -> "Broker":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@contextmanager
def run_in_thread(settings: Settings | None = None, **overrides: Any) -> Iterator[Broker]:
    """Run a Broker on its own event loop in a daemon thread; stopped cleanly on exit."""
    broker = Broker(settings, **overrides)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def runner() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(broker.start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=runner, name="amqpbroker", daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        loop.close()
        raise failure[0]
    broker.call_soon = lambda fn, *args: asyncio.run_coroutine_threadsafe(  # type: ignore[attr-defined]
        _call(fn, *args), loop).result()
    try:
        yield broker
    finally:
        asyncio.run_coroutine_threadsafe(broker.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


async def _call(fn: Any, *args: Any) -> Any:
    return fn(*args)


def _version_of(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
