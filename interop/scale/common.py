"""What every axis of the scale benchmarks shares (interop/bench_scale.py): the two brokers
started the same way, their RSS and CPU from /proc, and one JSON line per measured step.

Both brokers run with their management API on (the queue axis times listings through it),
a message size limit of 512 MiB (the size axis goes to 128 MiB), and an open-files limit
raised to the hard limit (the connection axis goes to 10,000: RabbitMQ capped at 832 with
Debian's default of 1,024). Each gets a fresh data directory and free ports.

A record (one line of `<axis>.jsonl`):
    {"axis": "queues", "broker": "amqpbroker" | "rabbitmq", "step": 10000,
     "version": "...", "date": "2026-12-06T05:00:00Z", "metrics": {"rss_mib": 81.2, ...}}
`step` is the axis's x value (connections, queues, bindings, body bytes, ...); metrics are
plain numbers (None when a broker could not do the step, with "error" saying why).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any, Callable

from bench_compare import free_port, wait_port  # noqa: F401  (interop/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent.parent
MAX_MESSAGE = 512 * 1024 * 1024
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def raise_nofile() -> int:
    """This process (and the brokers it starts) may open as many files as the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


def rss_mib(pid: int) -> float:
    return proc_status(pid)["VmRSS"] / 2**20


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Broker:
    """A broker under test: `start()` returns its pid; `amqp_url`, `http(path)`."""

    name = "?"
    pid = 0
    port = 0
    http_port = 0

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def http(self, path: str, timeout: float = 300) -> Any:
        """GET on the management API as guest; the decoded JSON."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", headers={
            "Authorization": "Basic " + b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def rss_mib(self) -> float:
        return rss_mib(self.pid)

    def cleanup(self) -> None:
        """Remove what the broker left outside our work directory (RabbitMQ's)."""

    def close(self) -> None:
        """Stop it if it started, then clean up: every axis ends a broker this way."""
        try:
            if self.pid:
                self.stop()
        finally:
            self.cleanup()

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)


class Ours(Broker):
    name = "amqpbroker"

    def __init__(self, work: Path, *, extra: list[str] | None = None) -> None:
        self.work, self.extra = work, extra or []
        self.data = work / f"ours-{os.getpid()}-{time.monotonic_ns()}"
        self.port, self.http_port = free_port(), free_port()

    def start(self, timeout: float = 60) -> int:
        config = self.data.with_suffix(".yaml")
        config.write_text(f"limits:\n  max_message_size: {MAX_MESSAGE}\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amqpbroker", "serve", "--config", str(config),
             "--host", "127.0.0.1", "--port", str(self.port),
             "--management-port", str(self.http_port), "--prometheus-port", "0",
             "--mqtt-port", "0", "--mqtt-ws-port", "0", "--data-dir", str(self.data),
             "--log-level", "warning", *self.extra],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=raise_nofile)
        if not (wait_port(self.port, timeout) and wait_port(self.http_port, timeout)):
            self.stop()
            raise RuntimeError("amqpbroker did not start")
        self.pid = self.proc.pid
        return self.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def version(self) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip() or "?"


class RabbitMQ(Broker):
    """A private node of Debian's rabbitmq-server with the management plugin on."""

    name = "rabbitmq"

    def __init__(self, work: Path) -> None:
        # Debian's script drops to the rabbitmq user: its directories sit outside our own
        # temporary directory, readable by it.
        self.base = Path(tempfile.mkdtemp(prefix="rmq-scale-"))
        self.base.chmod(0o755)
        self.port, self.http_port, self.dist_port = free_port(), free_port(), free_port()
        self.node = f"scale{self.port}@localhost"
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.port}\nloopback_users = none\n"
            f"management.tcp.port = {self.http_port}\nmanagement.tcp.ip = 127.0.0.1\n"
            f"max_message_size = {MAX_MESSAGE}\n")
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        if shutil.which("chown"):
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)],
                           capture_output=True, check=False)

    def env(self) -> dict[str, str]:
        return dict(os.environ, RABBITMQ_NODENAME=self.node,
                    RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
                    RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
                    RABBITMQ_LOG_BASE=str(self.base / "log"),
                    RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq"),
                    RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
                    RABBITMQ_PID_FILE=str(self.base / "pid"))

    def start(self, timeout: float = 120) -> int:
        (self.base / "pid").unlink(missing_ok=True)  # a restart after kill() waits for the new one
        server = (RABBITMQ_SERVER if os.path.exists(RABBITMQ_SERVER)
                  else shutil.which("rabbitmq-server"))
        if server is None:
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
        self.proc = subprocess.Popen([server], env=self.env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     cwd=self.base, preexec_fn=raise_nofile)
        if not (wait_port(self.port, timeout) and wait_port(self.http_port, timeout)):
            self.stop()
            raise RuntimeError(f"rabbitmq-server did not start (logs in {self.base / 'log'})")
        pid_file = self.base / "pid"
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text().strip():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"no pid file for {self.node}")
            time.sleep(0.2)
        self.pid = int(pid_file.read_text().strip())
        return self.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def kill(self) -> None:
        """kill -9 of the beam process (the node's whole process group)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def version(self) -> str:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"],
                             capture_output=True, text=True).stdout
        return out.strip() or "?"


def each_step(make: Callable[[str], Broker], brokers: list[str], steps: list, out: Path | None,
              axis: str, measure: Callable[[Broker, int], dict[str, Any]],
              **blank: Any) -> None:
    """For each step, each broker in turn: a fresh broker, `measure(broker, step)` recorded.
    A step that fails is recorded too, with `blank` metrics and the error: a broker that
    cannot do a step is a result, not the end of the run."""
    for step in steps:
        step = int(step)
        for name in brokers:
            broker = make(name)
            try:
                broker.start()
                record(out, axis, broker, step, **measure(broker, step))
            except Exception as e:  # noqa: BLE001
                record(out, axis, broker, step, **blank, error=f"{type(e).__name__}: {e}")
            finally:
                broker.close()


def make_broker(name: str, work: Path) -> Broker:
    if name == "amqpbroker":
        return Ours(work)
    if name == "rabbitmq":
        return RabbitMQ(work)
    raise ValueError(f"unknown broker {name!r}")


def record(out: Path | None, axis: str, broker: Broker, step: int | float,
           **metrics: Any) -> dict[str, Any]:
    """One measured step: printed, and appended to `out` as a JSON line."""
    row = {"axis": axis, "broker": broker.name, "step": step, "version": broker.version(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "metrics": metrics}
    line = json.dumps(row)
    print(line, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as f:
            f.write(line + "\n")
    return row


def percentiles(samples: list[float], points: tuple[float, ...] = (50, 99, 99.9)
                ) -> dict[str, float]:
    """Nearest-rank percentiles of `samples` (seconds) in milliseconds."""
    if not samples:
        return {f"p{p:g}_ms": float("nan") for p in points}
    ordered = sorted(samples)
    n = len(ordered)
    return {f"p{p:g}_ms": round(ordered[min(n - 1, max(0, int(-(-p * n // 100)) - 1))] * 1000, 3)
            for p in points}


def bench_source() -> Path | None:
    """Where the C load generator's source is: $AMQPBROKER_BENCH_DIR, or the workplace's
    shared bench folder next to the repository (../shared/bench), or None."""
    for candidate in (os.environ.get("AMQPBROKER_BENCH_DIR"), ROOT.parent / "shared" / "bench",
                      Path("/work/shared/bench")):
        if candidate and (Path(candidate) / "amqpgen.c").exists():
            return Path(candidate)
    return None


def build_c_bench(work: Path) -> Path:
    """The C load generator's folder copied somewhere writable and built (amqpgen)."""
    dest = work / "bench"
    if not (dest / "amqpgen").exists():
        source = bench_source()
        if source is None:
            raise RuntimeError("the C load generator's source (../shared/bench) is not here: "
                               "set AMQPBROKER_BENCH_DIR")
        shutil.copytree(source, dest, dirs_exist_ok=True)
        for p in dest.rglob("*"):
            p.chmod(p.stat().st_mode | 0o200)
        subprocess.run(["make", "-s", "-C", str(dest)], check=True, timeout=300)
    return dest
