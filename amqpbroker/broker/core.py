"""The broker core's state, without IO: settings, users, virtual hosts, stores, group commit.

`BrokerCore` is what protocol translators open sessions on (`open_session`, see
`broker/session.py`) and what the asyncio server (`server.py`) drives. It owns the two stores, the stream queues' logs (`streams`, see
`amqpbroker.streams`) and the `Persister`, which batches the fsyncs that publisher
confirms of persistent messages wait for (group commit): one sync round covers the
message store and every stream log with unsynced appends (`sync_job`).
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, Callable

import structlog

from amqpbroker import errors
from amqpbroker.broker import limits, runtime
from amqpbroker.broker.changes import ChangeStream
from amqpbroker.broker.global_counters import AMQP091, GlobalCounters
from amqpbroker.model import report
from amqpbroker.model.delayed_store import DELAYED_PREFIX, parse_delayed_key
from amqpbroker.model.paged import read_back
from amqpbroker.broker.persister import Persister
from amqpbroker.broker.session import Session, SessionEvents
from amqpbroker.clock import Scheduler
from amqpbroker.limits import SecurityCounters
from amqpbroker.model.churn import Churn
from amqpbroker.model.users import Permission, User, hash_password
from amqpbroker.model.vhost import VirtualHost
from amqpbroker.settings import Settings
from amqpbroker.store.base import DefinitionStore, MessageStore
from amqpbroker.store.records import RecoveredRefs
from amqpbroker.streams import StreamRegistry

log = structlog.get_logger("amqpbroker")
report.log.sink = log  # the model's log lines, as every other broker line (model/report.py)


class BrokerCore:
    def __init__(
        self,
        settings: Settings | None = None,
        store: MessageStore | None = None,
        definitions: DefinitionStore | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.settings = settings or Settings()
        # Time and timers for the model and sessions (queue TTL and x-expires, consumer
        # timeouts): the server attaches its event loop; tests may pass a ManualScheduler.
        self.scheduler = scheduler if scheduler is not None else Scheduler()
        self.store = store
        self.definitions = definitions
        # Stream queues' logs: under the data dir, in the stream store's in-memory twin in
        # memory mode, detached (no log) for a core without a message store (offline tools).
        self.streams: StreamRegistry | None = None
        if store is not None:
            self.streams = StreamRegistry(self.settings.data_dir, sync=self.settings.sync,
                                          scheduler=self.scheduler, on_dirty=self._streams_dirty)
        # The one ordered stream of durable changes: the model produces them, this applies
        # them to the stores (messages, definitions, stream logs); replication and events
        # tap it (broker/changes.py).
        self.changes = ChangeStream(store, definitions,
                                    self.streams.store if self.streams is not None else None)
        if self.streams is not None:
            self.streams.changes = self.changes
        # The memory store needs no fsync: confirms go out as soon as messages are enqueued.
        self.store_needs_sync = store is not None and getattr(store, "needs_sync", True)
        self.persister = Persister()
        # RabbitMQ's global counters per protocol (rabbitmq_global_messages_*_total):
        # broker/global_counters.py.
        self.global_counters = GlobalCounters()
        # The server's "start a group commit if one is needed" (for changes made by timers:
        # delayed messages routed when due).
        self.kick_sync: Callable[[], None] = lambda: None
        self.vhosts: dict[str, VirtualHost] = {}
        # Told of every runtime parameter change in any vhost (the shovel manager).
        self.parameter_listeners: list[Any] = []
        self.users: dict[str, User] = {}
        self.sessions: set[Session] = set()  # open client sessions, every protocol
        self.security = SecurityCounters()  # refused logins, handshakes, connections
        # Connections, channels and queues opened and closed (model/churn.py): what the
        # management API shows as churn_rates and the metrics endpoint as *_total.
        self.churn = Churn()
        # The translators' client connections (any protocol), each with its `.session`:
        # what the management API lists as connections and channels. Rules never use it.
        self.connections: set[Any] = set()
        self.memory_alarm = False  # True while any resource alarm is set
        self.alarms: set[str] = set()  # "memory", "disk"
        self.started_at = time.time()
        # What only administrators change (vhost metadata, policies, parameters, limits,
        # topic permissions): see broker/runtime.py and broker/admin.py.
        self.runtime = runtime.RuntimeState()
        self._default_setup()

    def _default_setup(self) -> None:
        s = self.settings
        self.add_vhost(s.default_vhost)
        if s.default_user:
            self.users[s.default_user] = User(
                s.default_user, hash_password(s.default_password), ["administrator"],
                {s.default_vhost: Permission()},
            )

    def add_vhost(self, name: str, grant_to: str | None = None) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = VirtualHost(name, self.changes, self.scheduler,
                                message_changes=self.store is not None)
            vhost.streams = self.streams
            vhost.churn = self.churn
            vhost.delayed.on_dirty = self._delayed_dirty
            self.vhosts[name] = vhost
            runtime.refresh_vhost(self, name)  # policies and limits stored for it
        if grant_to is not None and grant_to in self.users:
            self.users[grant_to].permissions.setdefault(name, Permission())
        return vhost

    def delete_vhost(self, name: str) -> None:
        """Close its connections (320, as RabbitMQ) and delete everything in it."""
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            return
        for session in list(self.sessions):
            if session.vhost is vhost:
                session.events.force_close(320, f"CONNECTION_FORCED - vhost '{name}' is deleted")
        for q in list(vhost.queues.values()):
            vhost.remove_queue(q)
        for ex in list(vhost.exchanges.values()):
            if ex.durable and ex.name and not ex.name.startswith("amq."):
                vhost._remove_exchange(ex)
        for user in self.users.values():
            user.permissions.pop(name, None)

    # -- group commit ---------------------------------------------------------------------
    def _streams_dirty(self) -> None:
        """A tracked stream offset moved: the next sync round makes it durable."""
        self.persister.dirty = True

    def _delayed_dirty(self) -> None:
        """Due delayed messages were routed: the store changed, sync it soon."""
        self.persister.dirty = True
        self.kick_sync()

    def sync_job(self) -> Callable[[], None]:
        """What one sync round runs in the worker thread: the message store's sync, then
        every stream log with something unsynced (chosen now, on the event-loop thread)."""
        store = self.store
        assert store is not None
        logs = self.streams.dirty_logs() if self.streams is not None else []
        if not logs:
            return store.sync
        sync_logs = self.streams.sync_logs  # type: ignore[union-attr]

        def job() -> None:
            store.sync()
            sync_logs(logs)

        return job

    # -- recovery -------------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Replay durable definitions, then put recovered messages back in their queues."""
        started = time.monotonic()
        ops = self.definitions.iter_ops() if self.definitions is not None else iter(())
        replayed = 0
        # A replayed queue deletion must not reach the message store: its deletion was
        # applied when it happened (leftovers are dropped below), and the store may not be
        # touched before recover() (a durable queue deleted, then a restart, crashed here).
        delete_queue = self.changes.delete_queue
        self.changes.delete_queue = _ignore_key
        try:
            for op in ops:
                replayed += 1
                if op["op"] in runtime.OPS:  # users, vhosts, policies... changed live
                    runtime.replay(self, op)
                else:
                    self.add_vhost(op["vhost"]).apply(op)
        finally:
            self.changes.delete_queue = delete_queue
        by_key = {q.key: q for v in self.vhosts.values() for q in v.queues.values()}
        messages = 0
        if self.store is not None:
            # Delayed messages come back as their timer index only (model/delayed_store.py).
            self.store.index_keys(DELAYED_PREFIX)
            # Queues may come back as store ids (RecoveredRefs): a deep backlog is restored
            # paged, in the memory it ran in, instead of as one object per message.
            self.store.recover_lean()
            for key, entries in self.store.recover().items():
                refs = entries if isinstance(entries, RecoveredRefs) else None
                if refs is not None and parse_delayed_key(key) is not None:
                    entries = [(m, r) for m, r, _ in  # the first delayed format: messages
                               read_back(self.changes, key, refs.ids, refs.sizes)]
                if self._restore_delayed(key, entries):
                    messages += len(entries)
                    continue
                q = by_key.get(key)
                if q is None:  # queue gone from definitions: forget its messages
                    self.store.delete_queue(key)
                    continue
                if refs is not None:
                    q.restore_refs(refs.ids, refs.sizes, refs.expiring, refs.transient)
                else:
                    for msg, redelivered in entries:
                        q.restore(msg, redelivered)
                messages += len(entries)
            for key, index in self.store.recovered_index().items():
                self._restore_delayed(key, index)
                messages += len(index)
        if self.definitions is not None:
            self.definitions.compact(itertools.chain(  # one op at a time (iter_ops)
                runtime.snapshot(self),
                (op for v in list(self.vhosts.values()) for op in v.durable_ops())))
        stats = {"definitions": replayed, "messages": messages,
                 "seconds": round(time.monotonic() - started, 3)}
        log.info("recovery.done", **stats)
        return stats

    # -- delayed messages at startup ------------------------------------------------------
    def _restore_delayed(self, key: str, entries: list) -> bool:
        """Messages a durable x-delayed-message exchange held (model/delayed_store.py):
        its timer index (ints), or (message, redelivered) pairs (the first format, or a
        store without index keys). False for a queue's key."""
        where = parse_delayed_key(key)
        if where is None:
            return False
        vhost = self.vhosts.get(where[0])
        ex = vhost.exchanges.get(where[1]) if vhost is not None else None
        if vhost is None or ex is None or not ex.delays or not ex.durable:
            self.changes.delete_queue(key)  # its exchange is gone
        elif entries and isinstance(entries[0], int):
            vhost.delayed.restore_index(ex, entries)
        else:
            vhost.delayed.restore(ex, key, where[2], [msg for msg, _ in entries])
        return True

    # -- authentication -------------------------------------------------------------------
    def authenticate(self, username: str, password: str, loopback: bool) -> User:
        user = self.users.get(username)
        if user is None or not user.check_password(password):
            raise errors.LoginRefused(
                "Login was refused using authentication mechanism PLAIN. "
                "For details see the broker logfile."
            )
        if username in self.settings.loopback_users and not loopback:
            raise errors.LoginRefused(f"User '{username}' can only connect via localhost")
        return user

    def open_vhost(self, user: User, name: str) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None or name not in user.permissions:
            raise errors.NotAllowed(f"access to vhost '{name}' refused for user '{user.name}'")
        return vhost

    def open_session(self, user: User, vhost: str, events: SessionEvents,
                     protocol: str = AMQP091) -> Session:
        """A client session for an authenticated user on a vhost (403 NOT_ALLOWED when the
        user has no access to it). Close it with `Session.close()`. `protocol`: the label
        of its global counters (amqp091, mqtt311, ...)."""
        v = self.open_vhost(user, vhost)
        limits.check_connection(self, user, v)  # vhost and user max-connections (530)
        session = Session(self, user, v, events, protocol)
        self.sessions.add(session)
        self.churn.connection_created += 1
        return session

    def set_memory_alarm(self, on: bool, rss: int = 0) -> None:
        """RabbitMQ's memory alarm: block publishers while memory is over the watermark."""
        self.set_alarm("memory", on, rss=rss, watermark=self.memory_limit())

    def set_alarm(self, resource: str, on: bool, **details: Any) -> None:
        """Resource alarms (https://www.rabbitmq.com/docs/alarms): while any is set,
        connections that publish are blocked (connection.blocked where supported)."""
        if on == (resource in self.alarms):
            return
        (self.alarms.add if on else self.alarms.discard)(resource)
        log.warning("alarm.set" if on else "alarm.cleared", resource=resource, **details)
        on = bool(self.alarms)
        if on == self.memory_alarm:
            return
        self.memory_alarm = on
        for session in list(self.sessions):
            if on and session.published:
                session.set_alarm(True)
            elif not on:
                session.set_alarm(False)

    def memory_limit(self) -> int:
        mark = self.settings.memory_high_watermark
        if mark > 1:
            return int(mark)
        try:
            pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pages = 8 << 30
        return int(pages * mark)

    def close(self) -> None:
        if self.streams is not None:
            self.streams.close()
        if self.store is not None:
            self.store.close()
        if self.definitions is not None:
            self.definitions.close()


def _ignore_key(key: str) -> None:
    pass
