"""Many-connections mode: open N connections (one channel each) with T threads,
hold them, check each answers a basic.qos round trip, close them, report."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from pamqp import commands

from . import client, report
from .args import Config


class ConnectionsRun:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.conns: list[client.Conn | None] = [None] * cfg.connections
        self.open_us = [0] * cfg.connections
        self.lock = threading.Lock()
        self.reported = False
        self.failures = 0
        self.first_error = ""
        self.opened = self.alive = self.closed = 0
        self.open_s = self.close_s = None
        self.rss: dict[str, int | None] = {"before": None, "opened": None, "held": None, "closed": None}
        self.broker_cpu_open_s: float | None = None
        self.aborted = False

    def phase(self, work: Callable[[int], bool]) -> int:
        """Run work(i) for every connection index over T threads; count successes."""
        T = max(1, min(self.cfg.conn_threads, self.cfg.connections))
        counts = [0] * T

        def worker(w: int) -> None:
            for i in range(w, self.cfg.connections, T):
                if self.aborted:
                    return
                counts[w] += bool(work(i))

        threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(T)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts)

    def open_one(self, i: int, deadline: float) -> bool:
        c = self.cfg
        t = time.monotonic()
        if t > deadline:
            return False
        try:
            self.conns[i] = client.connect(c.host, c.port, c.user, c.password, c.vhost, c.frame_max)
        except client.AMQPError as e:
            with self.lock:
                self.failures += 1
                self.first_error = self.first_error or f"connection {i}: {e}"
            return False
        self.open_us[i] = max(1, int((time.monotonic() - t) * 1e6))
        return True

    def check_one(self, i: int) -> bool:
        conn = self.conns[i]
        if conn is None:
            return False
        try:
            conn.rpc(commands.Basic.Qos(prefetch_count=10), commands.Basic.QosOk, timeout=10)
        except client.AMQPError:
            return False
        return True

    def close_one(self, i: int) -> bool:
        conn = self.conns[i]
        if conn is None:
            return False
        conn.close()
        self.conns[i] = None
        return True

    def run(self) -> int:
        cfg = self.cfg
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        cpu0, self.rss["before"] = report.proc_stat(cfg.broker_pid)
        t = time.monotonic()
        deadline = t + cfg.open_timeout
        self.opened = self.phase(lambda i: self.open_one(i, deadline))
        self.open_s = time.monotonic() - t
        cpu1, self.rss["opened"] = report.proc_stat(cfg.broker_pid)
        if cpu0 is not None and cpu1 is not None:
            self.broker_cpu_open_s = cpu1 - cpu0
        end = time.monotonic() + cfg.hold
        while self.opened and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        self.rss["held"] = report.proc_stat(cfg.broker_pid)[1]
        self.alive = self.phase(self.check_one)
        t = time.monotonic()
        self.closed = self.phase(self.close_one)
        self.close_s = time.monotonic() - t
        if cfg.broker_pid:
            time.sleep(1.0)
            self.rss["closed"] = report.proc_stat(cfg.broker_pid)[1]
        return self.finish(None)

    def finish(self, forced: str | None) -> int:
        with self.lock:
            if self.reported:
                return 3
            self.reported = True
            res = self.build_report(forced)
        report.emit(res, self.cfg.json)
        return {"OK": 0, "FAIL": 1, "ERROR": 2, "TIMEOUT": 3}[res["status"]]

    def on_timeout(self) -> None:
        self.aborted = True
        first = self.first_error
        self.first_error = f"hard timeout: gave up after {self.cfg.timeout:g} s" + (f"; first error: {first}" if first else "")
        self.finish("TIMEOUT")
        os._exit(3)

    def build_report(self, forced: str | None) -> dict[str, Any]:
        cfg = self.cfg
        why = []
        if self.opened != cfg.connections:
            untried = cfg.connections - self.opened - self.failures
            why.append(f"opened {self.opened} of {cfg.connections} connections ({self.failures} failed"
                       + (f", {untried} not tried within --open-timeout)" if untried else ")"))
        if self.alive != self.opened:
            why.append(f"{self.alive} of {self.opened} connections answered after the hold")
        status = forced or ("ERROR" if not self.opened else "FAIL" if why else "OK")
        s = sorted(u for u in self.open_us if u)
        n = len(s)
        growth = None
        if self.rss["before"] and self.rss["held"] and self.opened:
            growth = (self.rss["held"] - self.rss["before"]) / self.opened
        return {
            "label": cfg.label, "mode": "connections", "status": status,
            "error": self.first_error if status != "OK" else "",
            "problems": why if status == "FAIL" else [], "warnings": [],
            "params": {"connections": cfg.connections, "threads": cfg.conn_threads, "hold": cfg.hold},
            "opened": sum(1 for u in self.open_us if u), "open_failures": self.failures,
            "alive_after_hold": self.alive, "closed": self.closed,
            "open_s": self.open_s, "open_rate": report.ratio(self.opened, self.open_s),
            "open_us": {"p50": s[n // 2] if n else None, "p99": s[n * 99 // 100] if n else None,
                        "max": s[-1] if n else None},
            "close_s": self.close_s, "broker_cpu_open_s": self.broker_cpu_open_s,
            "broker_rss_kb": self.rss, "broker_rss_growth_kb_per_conn": growth,
            "tool_cpu_s": time.process_time(),
        }
