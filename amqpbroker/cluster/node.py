"""One cluster node's life: follow (replicate + forward clients), campaign, lead, step down.

etcd keys under `/amqpbroker/<cluster_name>/`:

    leader         {"node", "amqp", "replication"} under the leader's lease; its
                   create_revision is the leader's *term*
    isr            ["n1", "n2", ...] the in-sync replicas (the leader included)
    members/<node> {"amqp", "replication"} every node that ever joined
    settings       {"lease_ttl", "lag_timeout"} written by the first node

Election: a node that finds no leader key and is in the ISR runs one etcd transaction
"leader key absent AND isr unchanged since I read it (with me in it) -> put leader key under
my lease, isr = [me]". ISR changes afterwards are transactions guarded by the leader key's
create_revision (our term), so a deposed leader can change nothing. Fencing: the leader
never releases a confirm at or past `lease_deadline` = (monotonic time a keep-alive was sent)
+ the TTL etcd granted, and a leader whose keep-alive finds the lease gone re-executes
itself as a follower (dropping every client connection without confirming anything).
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import threading
import time
from typing import Any

import structlog

from amqpbroker.cluster import wire
from amqpbroker.cluster.etcd import (Etcd, EtcdError, created_at, keepalive_blocking,
                                     modified_at, parse_endpoints, put_op)
from amqpbroker.cluster.leader import Link, ReplicationSource
from amqpbroker.cluster.proxy import Forwarder, client_listeners
from amqpbroker.cluster.replica import Replica
from amqpbroker.cluster.view import ClusterView
from amqpbroker.settings import Settings

log = structlog.get_logger("amqpbroker.cluster")
POLL_SECONDS = 0.2
HANDSHAKE_TIMEOUT = 5.0


class ClusterNode:
    def __init__(self, settings: Settings, config: Any = None) -> None:
        if not settings.data_dir:
            raise ValueError("a cluster node needs a data dir (not --in-memory)")
        if not settings.node_name:
            raise ValueError("a cluster node needs --node-name")
        self.settings = settings
        self.config = config
        self.name = settings.node_name
        self.secret = settings.cluster_secret or ""
        self.prefix = f"/amqpbroker/{settings.cluster_name}/"
        self.leader_key = self.prefix + "leader"
        self.isr_key = self.prefix + "isr"
        self.etcd = Etcd(parse_endpoints(settings.cluster or ""))
        host = settings.cluster_advertise_host
        # Every client listener's address (amqp, mqtt, http ...): followers forward each
        # kind to the leader's.
        self.listeners = client_listeners(settings)
        self.info = {"node": self.name, "amqp": f"{host}:{settings.port}",
                     **{kind: f"{host}:{port}" for kind, (_, port) in self.listeners.items()},
                     "replication": f"{host}:{settings.replication_port}"}
        self.started_ms = int(time.time() * 1000)
        self.lease_ttl = settings.cluster_lease_ttl
        self.lag_timeout = settings.cluster_lag_timeout
        self.replica = Replica(settings.data_dir, sync=settings.sync,
                               memory_budget=settings.store_memory_budget)
        self.role = "starting"
        self.term = 0
        self.lease = 0
        self.lease_deadline = 0.0
        self.leader: dict[str, Any] | None = None  # who we follow
        self.following_term = 0
        self.broker: Any = None
        self.source: ReplicationSource | None = None
        self.forwarders = {kind: Forwarder(kind) for kind in self.listeners}
        self.view: Any = None  # cluster/view.py, while leading
        self._lock: Any = None
        self._follow_task: asyncio.Task[Any] | None = None
        self._repl_server: asyncio.AbstractServer | None = None
        self._stop = asyncio.Event()
        from amqpbroker.cluster.tlslink import follower_context, leader_context

        tls = getattr(settings, "tls", None)
        self._leader_ssl = leader_context(tls)  # TLS on the replication port when set
        self._follower_ssl = follower_context(tls)

    # -- entry point ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> int:
        self._stop = stop
        from amqpbroker.store.lock import DataDirLock

        self._lock = DataDirLock(self.settings.data_dir)  # type: ignore[arg-type]
        await self._register()
        for kind, (host, port) in self.listeners.items():
            await self.forwarders[kind].start(host, port)
        log.info("cluster.follower", node=self.name, port=self.settings.port,
                 forwarding=sorted(self.forwarders))
        self.role = "follower"
        waiter = asyncio.ensure_future(stop.wait())
        try:
            won = await self._follow_until_elected()
            if won:
                await self._lead()
                await waiter
        finally:
            waiter.cancel()
            await self._shutdown()
        return 0

    async def _register(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                await self.etcd.put(self.prefix + "members/" + self.name, self.member_info())
                settings_key = self.prefix + "settings"
                await self.etcd.txn([created_at(settings_key, 0)], [put_op(
                    settings_key, {"lease_ttl": self.lease_ttl, "lag_timeout": self.lag_timeout})])
                kv = await self.etcd.get(settings_key)
                if kv is not None:  # the cluster's settings win over this node's flags
                    stored = kv.json()
                    self.lease_ttl = int(stored.get("lease_ttl", self.lease_ttl))
                    self.lag_timeout = float(stored.get("lag_timeout", self.lag_timeout))
                return
            except EtcdError as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("cluster.etcd_unreachable", error=str(exc))
                await asyncio.sleep(1)

    def member_info(self) -> dict[str, Any]:
        """What `members/<node>` holds: addresses, and what /api/nodes shows of a node."""
        from amqpbroker import __version__

        info = {k: v for k, v in self.info.items() if k != "node"}
        info.update(started=self.started_ms, pid=os.getpid(),
                    processors=os.cpu_count() or 1, version=__version__)
        return info

    # -- follower -------------------------------------------------------------------------
    async def _follow_until_elected(self) -> bool:
        while not self._stop.is_set():
            try:
                kv = await self.etcd.get(self.leader_key)
                if kv is None:
                    self._follow(None, 0)
                    if await self._campaign():
                        return True
                else:
                    info = kv.json()
                    if info.get("node") == self.name and kv.create_revision != self.term:
                        # our previous incarnation's key: it is dead (we hold the data dir)
                        log.info("cluster.stale_leader_key", term=kv.create_revision)
                        await self.etcd.revoke(kv.lease)
                    elif kv.create_revision != self.following_term:
                        self._follow(info, kv.create_revision)
            except EtcdError as exc:
                log.warning("cluster.etcd_error", error=str(exc))
            try:
                await asyncio.wait_for(self._stop.wait(), POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
        return False

    def _follow(self, info: dict[str, Any] | None, term: int) -> None:
        if term == self.following_term and info == self.leader:
            return
        if self._follow_task is not None:
            self._follow_task.cancel()
            self._follow_task = None
        for kind, forwarder in self.forwarders.items():
            forwarder.close_all()
            forwarder.target = None if info is None else info.get(kind)
        self.leader, self.following_term = info, term
        if info is not None:
            log.info("cluster.following", leader=info["node"], term=term)
            self._follow_task = asyncio.ensure_future(self._replicate_loop(info, term))

    async def _replicate_loop(self, info: dict[str, Any], term: int) -> None:
        last = ""
        while True:
            try:
                await self._replicate_from(info)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if repr(exc) != last:  # once per kind of failure, not per retry
                    log.warning("cluster.replication_link_down", leader=info["node"],
                                error=repr(exc))
                    last = repr(exc)
            await asyncio.sleep(0.3)

    async def _replicate_from(self, info: dict[str, Any]) -> None:
        host, port = info["replication"].rsplit(":", 1)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, int(port), ssl=self._follower_ssl,
            server_hostname=host if self._follower_ssl else None), HANDSHAKE_TIMEOUT)
        sync_task: asyncio.Task[Any] | None = None
        try:
            challenge = await asyncio.wait_for(reader.readexactly(16), HANDSHAKE_TIMEOUT)
            mine = wire.nonce()
            name = self.name.encode()
            writer.write(struct.pack(">H", len(name)) + name + mine
                         + wire.proof(self.secret, b"F", challenge, self.name))
            answer = await asyncio.wait_for(reader.readexactly(32), HANDSHAKE_TIMEOUT)
            if not wire.check_proof(self.secret, b"L", mine, info["node"], answer):
                raise wire.WireError("the leader failed the member proof (cluster secret?)")
            replica = self.replica
            writer.write(wire.frame(0, wire.encode_json(b"H", {
                "node": self.name, "term": replica.term, "seq": replica.applied})))
            frames = wire.FrameReader()
            dirty = asyncio.Event()
            loop = asyncio.get_running_loop()

            async def syncer() -> None:
                acked = -1
                while True:
                    await dirty.wait()
                    dirty.clear()
                    position = replica.applied
                    if replica.term == 0 or position == acked:
                        continue  # mid-snapshot: nothing to acknowledge yet
                    await loop.run_in_executor(None, replica.sync)
                    writer.write(wire.frame(position, b"K"))
                    acked = position

            sync_task = asyncio.ensure_future(syncer())
            while True:
                data = await reader.read(1 << 20)
                if not data:
                    raise ConnectionError("leader closed the replication link")
                for seq, payload in frames.feed(data):
                    kind, args = wire.decode(payload)
                    replica.apply(seq, kind, args)
                if sync_task.done():
                    sync_task.result()
                dirty.set()
        finally:
            if sync_task is not None:
                sync_task.cancel()
                try:
                    await sync_task
                except (asyncio.CancelledError, Exception):
                    pass
            writer.close()

    async def _campaign(self) -> bool:
        isr = await self.etcd.get(self.isr_key)
        if isr is not None and self.name not in (isr.json() or []):
            return False
        if self.replica.store is not None and self.replica.term == 0:
            return False  # our copy is a half-received snapshot
        started = time.monotonic()
        lease = await self.etcd.grant(self.lease_ttl)
        guard = (modified_at(self.isr_key, isr.mod_revision) if isr is not None
                 else created_at(self.isr_key, 0))
        info = dict(self.info)
        ok, revision = await self.etcd.txn(
            [created_at(self.leader_key, 0), guard],
            [put_op(self.leader_key, info, lease), put_op(self.isr_key, [self.name])])
        if not ok:
            await self.etcd.revoke(lease)
            return False
        self.term, self.lease = revision, lease
        self.lease_deadline = started + self.lease_ttl
        log.info("cluster.elected", node=self.name, term=revision)
        return True

    # -- leader ---------------------------------------------------------------------------
    async def _lead(self) -> None:
        from amqpbroker.embed import Broker

        self._follow(None, 0)
        self.replica.close()
        for forwarder in self.forwarders.values():
            await forwarder.stop()
        self._lock.release()
        self._lock = None
        broker = Broker(self.settings, config=self.config)
        source = ReplicationSource(None, self.term, set_isr=self._set_isr,  # type: ignore[arg-type]
                                   lag_timeout=self.lag_timeout)
        self.source = source
        source.lease_deadline = self.lease_deadline
        # Confirms and declaration replies wait for the ISR from the first connection on;
        # the management API shows the cluster (and holds its replies the same way).
        broker.commit_gate = source
        self.view = broker.cluster = ClusterView(self.name, self.settings.cluster_name,
                                                 source, self.member_info())
        # Keep the lease from now on: recovering a large data dir may take longer than it.
        self._keepalive = asyncio.ensure_future(self._keepalive_loop())

        def prepare(core: Any) -> None:
            source.core = core
            recover = core.store.recover

            def recover_and_index() -> Any:
                result = recover()
                source.recovered(result)
                return result

            core.store.recover = recover_and_index
            core.changes.tap(source.observe)

        broker.prepare = prepare
        # Recovery runs on the event loop: a thread keeps the lease meanwhile.
        keeper = _LeaseKeeper(self)
        keeper.start()
        try:
            await broker.start()
        finally:
            keeper.stop()
        if keeper.lost:
            self.step_down("lease lost during recovery")
        self.broker = broker
        core = broker.core
        source.drop_unknown_queues({q.key for v in core.vhosts.values()
                                    for q in v.queues.values()})
        self._repl_server = await asyncio.start_server(
            self._serve_follower, self.settings.host, self.settings.replication_port,
            reuse_address=True, ssl=self._leader_ssl)
        self.role = "leader"
        log.info("cluster.leading", node=self.name, term=self.term, port=broker.port)

    async def _set_isr(self, followers: set[str]) -> bool:
        try:
            ok, _ = await self.etcd.txn([created_at(self.leader_key, self.term)],
                                        [put_op(self.isr_key, sorted({self.name, *followers}))])
        except EtcdError as exc:
            log.warning("cluster.isr_update_failed", error=str(exc))
            return False
        if not ok:
            self.step_down("the leader key is no longer ours")
        return ok

    async def _keepalive_loop(self) -> None:
        interval = max(self.lease_ttl / 4, 0.25)
        source = self.source
        assert source is not None
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                ttl = await self.etcd.keepalive(self.lease)
            except EtcdError as exc:
                log.warning("cluster.keepalive_failed", error=str(exc))
                ttl = None
            if ttl is not None and ttl <= 0:
                self.step_down("lease expired")
            if ttl:
                self.lease_deadline = source.lease_deadline = sent + ttl
                source.check()
                try:  # for `amqpbroker cluster status`: gone with our lease
                    await self.etcd.put(self.prefix + "status", self.status(), self.lease)
                except EtcdError:
                    pass
                await self._refresh_members()
            elif time.monotonic() >= self.lease_deadline:
                self.step_down("lease deadline passed without a keep-alive")
            for _ in range(int(interval / 0.1) or 1):
                source.drop_laggards()
                await asyncio.sleep(0.1)

    async def _refresh_members(self) -> None:
        """The member list /api/nodes shows (a node joins rarely: read with each
        keep-alive)."""
        try:
            kvs = await self.etcd.get_prefix(self.prefix + "members/")
        except EtcdError:
            return
        members = {kv.key.rsplit("/", 1)[1]: kv.json() or {} for kv in kvs}
        members[self.name] = self.member_info()
        if self.view is not None:
            self.view.members = members

    async def _serve_follower(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        source = self.source
        assert source is not None
        link: Link | None = None
        peer = writer.get_extra_info("peername")
        try:
            challenge = wire.nonce()
            writer.write(challenge)
            (n,) = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2),
                                                              HANDSHAKE_TIMEOUT))
            name = (await asyncio.wait_for(reader.readexactly(n), HANDSHAKE_TIMEOUT)).decode()
            theirs = await asyncio.wait_for(reader.readexactly(16), HANDSHAKE_TIMEOUT)
            answer = await asyncio.wait_for(reader.readexactly(32), HANDSHAKE_TIMEOUT)
            if not wire.check_proof(self.secret, b"F", challenge, name, answer):
                log.warning("cluster.replication_refused", peer=str(peer), node=name,
                            reason="bad member proof (cluster secret)")
                return
            writer.write(wire.proof(self.secret, b"L", theirs, self.name))
            frames = wire.FrameReader()
            hello: dict[str, Any] | None = None
            while hello is None:
                data = await asyncio.wait_for(reader.read(65536), HANDSHAKE_TIMEOUT)
                if not data:
                    return
                for _, payload in frames.feed(data):
                    kind, args = wire.decode(payload)
                    if kind != "hello":
                        raise wire.WireError(f"expected hello, got {kind}")
                    hello = args[0]
            if name in source.isr:  # out of the ISR (in etcd) before it may resync
                await source._update_isr(None, {name})
                if name in source.isr:
                    return
            link = Link(name, writer)
            source.attach(link, hello)
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for seq, payload in frames.feed(data):
                    if payload == b"K":
                        source.acked(link, seq)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                wire.WireError, UnicodeDecodeError) as exc:
            log.info("cluster.follower_link_closed", node=link.name if link else None,
                     error=repr(exc))
        finally:
            if link is not None:
                source.disconnect(link)
            else:
                writer.close()

    # -- fencing --------------------------------------------------------------------------
    def step_down(self, reason: str) -> None:
        """We may have lost leadership: confirm nothing more, drop every connection, and
        start over as a follower (a fresh process image: no state to unwind)."""
        log.error("cluster.step_down", node=self.name, term=self.term, reason=reason)
        if self.source is not None:
            self.source.lease_deadline = 0.0
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, sys.orig_argv)

    async def _shutdown(self) -> None:
        self._follow(None, 0)
        if self._repl_server is not None:
            self._repl_server.close()
        if self.broker is not None:
            if self.source is not None:
                self.source.lease_deadline = 0.0  # confirm nothing once the lease is given up
            if self.lease:
                try:  # hand over now rather than after the lease's TTL
                    await self.etcd.revoke(self.lease)
                except EtcdError:
                    pass
            await self.broker.stop()
        else:
            self.replica.close()
            for forwarder in self.forwarders.values():
                await forwarder.stop()
        if self._lock is not None:
            self._lock.release()
        await self.etcd.close()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.name, "role": self.role, "term": self.term
                               or self.following_term,
                               "leader": (self.name if self.role == "leader" else
                                          (self.leader or {}).get("node"))}
        if self.source is not None:
            out.update(self.source.status())
        else:
            out["applied"] = self.replica.applied
        return out


class _LeaseKeeper(threading.Thread):
    """Keeps the new leader's lease alive while its event loop replays the data dir (which
    can take longer than the lease's TTL); it also moves the confirm deadline forward."""

    def __init__(self, node: ClusterNode) -> None:
        super().__init__(name="amqpbroker-lease", daemon=True)
        self.node = node
        self.lost = False
        self._stop_event = threading.Event()

    def run(self) -> None:
        node = self.node
        interval = max(node.lease_ttl / 4, 0.25)
        while not self._stop_event.is_set():
            sent = time.monotonic()
            try:
                ttl = keepalive_blocking(node.etcd.endpoints, node.lease)
            except EtcdError:
                ttl = None
            if ttl is not None and ttl <= 0:
                self.lost = True
                return
            if ttl:
                node.lease_deadline = sent + ttl
                if node.source is not None:
                    node.source.lease_deadline = node.lease_deadline
            self._stop_event.wait(interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
