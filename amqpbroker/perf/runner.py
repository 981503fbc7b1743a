"""Coordinator of a throughput/latency run.

Declares the topology on a control connection, starts consumer and producer
processes (spawn), releases them together, waits for publishing to end and for
every expected delivery (then ``--settle`` more seconds to catch duplicates),
checks the queues, deletes what it declared and reports.  A watchdog thread
ends the run at ``--timeout`` with status TIMEOUT and exit code 3.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import threading
import time
from typing import Any

from pamqp import commands

from . import client, consumer, producer, report, routing, summary, verify
from .args import Config
from .shared import CONS_STOP, GO, STOP, T0, Shared, worker_entry

EXIT = {"OK": 0, "FAIL": 1, "ERROR": 2, "TIMEOUT": 3}


def connect(cfg: Config) -> client.Conn:
    return client.connect(cfg.host, cfg.port, cfg.user, cfg.password, cfg.vhost, cfg.frame_max)


class ThroughputRun:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.topo = routing.build(cfg.exchange, cfg.queues, cfg.bindings, routing.make_prefix(cfg.label))
        self.ctx = mp.get_context("spawn")
        self.lock = threading.Lock()
        self.reported = False
        self.error = ""
        self.warnings: list[str] = []
        self.declared_q = 0
        self.declared_x = False
        self.procs: list[Any] = []
        self.ready = 0
        self.results: dict[str, dict[int, dict[str, Any]]] = {"producer": {}, "consumer": {}}
        self.t0 = self.t_stop = 0
        self.setup_s = 0.0
        self.queued: int | None = None
        self.residual: int | None = None
        self.settled = True
        self.end_stats: tuple[float, float | None, float | None, int | None] | None = None
        self.start_stats: tuple[float, float | None, float | None, int | None] = (0.0, None, None, None)
        P, M = cfg.producers, cfg.consumers
        self.sh = Shared(self.ctx.RawArray("q", 4), self.ctx.RawArray("q", P), self.ctx.RawArray("q", max(1, M)),
                         time.monotonic_ns() + int(cfg.timeout * 1e9), os.getpid())
        self.pipes: list[Any] = []      # receive ends of the workers' report pipes

    # ------------------------------------------------------------ phases
    def run(self) -> int:
        cfg, sh = self.cfg, self.sh
        try:
            ctl = connect(cfg)
        except client.AMQPError as e:
            return self.finish(str(e))
        t = time.monotonic()
        try:
            self.declare(ctl)
        except client.AMQPError as e:
            ctl.abort()
            return self.finish(str(e))
        self.setup_s = time.monotonic() - t
        for kind, n, fn in (("consumer", cfg.consumers, consumer.run), ("producer", cfg.producers, producer.run)):
            for i in range(n):
                rx, tx = self.ctx.Pipe(duplex=False)
                p = self.ctx.Process(target=worker_entry, name=f"perf-{kind}-{i}", daemon=True,
                                     args=(kind, i, fn, cfg, self.topo, i, dataclasses.replace(sh, out=tx)))
                p.start()
                tx.close()
                self.procs.append(p)
                self.pipes.append(rx)
        self.collect(lambda: self.ready == cfg.producers + cfg.consumers, cfg.timeout)
        if self.ready < cfg.producers + cfg.consumers:
            self.set_error(f"only {self.ready} of {cfg.producers + cfg.consumers} workers got ready")
        if not self.error:
            self.start_stats = (time.process_time(), report.machine_busy_s(), *report.proc_stat(cfg.broker_pid))
            self.t0 = time.monotonic_ns()
            sh.flags[T0] = self.t0
            sh.flags[GO] = 1
            self.collect(lambda: len(self.results["producer"]) == cfg.producers, cfg.timeout)
        if not self.error:
            self.drain(ctl)
        sh.flags[CONS_STOP] = 1
        self.t_stop = time.monotonic_ns()
        if self.t0:
            self.end_stats = (time.process_time(), report.machine_busy_s(), *report.proc_stat(cfg.broker_pid))
        self.collect(lambda: len(self.results["consumer"]) == cfg.consumers, 10.0)
        if not self.error and cfg.consumers:
            self.residual = self.depth(ctl)
        ctl.close() if not self.error else ctl.abort()
        return self.finish(self.error)

    def declare(self, c: client.Conn) -> None:
        cfg, topo = self.cfg, self.topo
        if topo.exchange:
            c.rpc(commands.Exchange.Declare(exchange=topo.exchange, exchange_type=cfg.exchange,
                                            durable=cfg.durable), commands.Exchange.DeclareOk)
            self.declared_x = True
        for q in topo.queues:
            c.rpc(commands.Queue.Declare(queue=q, durable=cfg.durable), commands.Queue.DeclareOk)
            self.declared_q += 1
        for i in range(0, len(topo.bindings), 100):     # pipelined, 100 at a time
            chunk = topo.bindings[i:i + 100]
            c.send(b"".join(client.frame.marshal(commands.Queue.Bind(
                queue=topo.queues[q], exchange=topo.exchange, routing_key=key), 1) for key, q in chunk))
            for _ in chunk:
                ok = c.read_method()
                if not isinstance(ok, commands.Queue.BindOk):
                    raise client.AMQPError(f"queue.bind: {client.describe(ok)}")

    def depth(self, c: client.Conn) -> int | None:
        """Ready messages over our queues (passive declare); None when unreadable."""
        try:
            return sum(c.rpc(commands.Queue.Declare(queue=q, passive=True), commands.Queue.DeclareOk,
                             timeout=10).message_count for q in self.topo.queues)  # type: ignore[attr-defined]
        except client.AMQPError as e:
            self.warnings.append(f"queue depth: {e}")
            return None

    def expected(self) -> tuple[int, int]:
        exp = ids = 0
        for i, r in self.results["producer"].items():
            e, s = verify.expected_totals(r["sent"], i, self.topo.reach)
            exp += e
            ids += s
        return exp, ids

    def drain(self, ctl: client.Conn) -> None:
        cfg, sh = self.cfg, self.sh
        expect = self.expected()[0]
        end = time.monotonic() + cfg.drain
        since = None
        self.settled = False
        while not self.error and time.monotonic() < end:
            if cfg.consumers:
                got = sum(sh.delivered[: cfg.consumers])
                if got > expect:
                    break
                if got != expect:
                    since = None
                elif since is None:
                    since = time.monotonic()
                elif time.monotonic() - since >= cfg.settle:
                    self.settled = True
                    break
                self.pause(0.005)
            else:
                self.queued = self.depth(ctl)
                if self.queued is None or self.queued >= expect:
                    break
                self.pause(0.1)
        if not cfg.consumers and self.queued is not None and self.queued >= expect:
            time.sleep(cfg.settle)      # a depth above the expected count shows up here
            self.queued = self.depth(ctl)
            self.settled = True

    def pause(self, seconds: float) -> None:
        """Wait, taking worker reports meanwhile."""
        end = time.monotonic() + seconds
        self.collect(lambda: False, seconds)
        time.sleep(max(0.0, end - time.monotonic()))

    def collect(self, done: Any, timeout: float) -> None:
        """Take worker reports until done() or an error, waiting at most timeout."""
        end = time.monotonic() + timeout
        while not done():
            left = end - time.monotonic()
            if left <= 0:
                return
            if not self.pipes:          # every worker has exited
                for p in self.procs:
                    p.join(1.0)
                    if p.exitcode and not self.error:
                        self.set_error(f"{p.name} died with exit code {p.exitcode}")
                return
            for rx in mp_connection.wait(self.pipes, timeout=min(left, 0.1)):
                try:
                    what, kind, idx, payload = rx.recv()
                except (EOFError, OSError):
                    self.pipes.remove(rx)
                    rx.close()
                    continue
                if what == "ready":
                    self.ready += 1
                elif what == "result":
                    self.results[kind][idx] = payload
                elif what == "error":
                    self.set_error(payload)

    def set_error(self, msg: str) -> None:
        if not self.error:
            self.error = msg
        self.sh.flags[STOP] = 1

    # ------------------------------------------------------------ ending
    def teardown(self) -> None:
        if not self.declared_q and not self.declared_x:
            return
        try:
            c = connect(self.cfg)
            for q in self.topo.queues[: self.declared_q]:
                c.rpc(commands.Queue.Delete(queue=q), commands.Queue.DeleteOk, timeout=10)
            if self.declared_x:
                c.rpc(commands.Exchange.Delete(exchange=self.topo.exchange), commands.Exchange.DeleteOk, timeout=10)
            self.declared_q, self.declared_x = 0, False
            c.close()
        except client.AMQPError as e:
            self.warnings.append(f"cleanup: {e}")

    def stop_workers(self, grace: float) -> None:
        self.sh.flags[STOP] = 1
        end = time.monotonic() + grace
        for p in self.procs:
            p.join(max(0.0, end - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)

    def finish(self, error: str, forced: str | None = None) -> int:
        if not forced:
            self.stop_workers(5.0)
            self.teardown()
        with self.lock:
            if self.reported:
                return EXIT.get(forced or "ERROR", 2)
            self.reported = True
            res = self.build_report(error, forced)
            report.emit(res, self.cfg.json)
            return EXIT[res["status"]]

    def on_timeout(self) -> None:
        """Watchdog: report partial counts, clean up within 10 s, exit 3."""
        self.sh.flags[STOP] = 1
        self.t_stop = self.t_stop or time.monotonic_ns()
        self.finish(f"hard timeout: gave up after {self.cfg.timeout:g} s", forced="TIMEOUT")
        for p in self.procs:
            if p.is_alive():
                p.kill()
        cleaner = threading.Thread(target=self.teardown, daemon=True)
        cleaner.start()
        cleaner.join(10.0)
        os._exit(3)

    def build_report(self, error: str, forced: str | None) -> dict[str, Any]:
        return summary.throughput_report(self, error, forced)
