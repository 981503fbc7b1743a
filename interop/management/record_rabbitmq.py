"""Record the management API's behaviour on RabbitMQ as fixtures (not a CI step).

    .venv/bin/python -m interop.management.record_rabbitmq [--out FILE]

Starts Debian's RabbitMQ (rabbitmq-server package) with the rabbitmq_management plugin on
free ports in a temporary directory, runs the calls of scenario.py against it, and
writes each call's status and JSON key sets to
interop/management/fixtures/rabbitmq.json. test_compat.py runs the same calls against
amqpbroker and compares; docs/management.md lists every allowed difference.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from interop.management import scenario

HERE = Path(__file__).parent
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_rabbitmq(workdir: Path) -> tuple[subprocess.Popen, int, int, dict[str, str]]:
    amqp, http, dist = free_port(), free_port(), free_port()
    (workdir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {amqp}\n"
        f"management.tcp.port = {http}\n"
        "management.tcp.ip = 127.0.0.1\n"
        "loopback_users = none\n"
        "collect_statistics_interval = 1000\n")
    (workdir / "enabled_plugins").write_text("[rabbitmq_management].\n")
    env = {**os.environ, "HOME": str(workdir),
           "RABBITMQ_NODENAME": f"fxrec{os.getpid()}@localhost",
           "RABBITMQ_NODE_PORT": str(amqp), "RABBITMQ_DIST_PORT": str(dist),
           "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
           "RABBITMQ_LOG_BASE": str(workdir / "log"),
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
           "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
           "RABBITMQ_PID_FILE": str(workdir / "pid")}
    proc = subprocess.Popen([SERVER], env=env, stdout=(workdir / "out.log").open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rabbitmq-server exited: {(workdir / 'out.log').read_text()}")
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{http}/api/overview", headers={
                "Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return proc, amqp, http, env
        except OSError:
            pass
        time.sleep(1)
    proc.kill()
    raise SystemExit("rabbitmq-server did not start within 120 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(HERE / "fixtures" / "rabbitmq.json"))
    args = parser.parse_args()
    if not os.path.exists(SERVER):
        print("rabbitmq-server is not installed (apt-get install rabbitmq-server)",
              file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="rmq-fixtures-"))
    proc, amqp, http, _env = start_rabbitmq(workdir)
    try:
        base = f"http://127.0.0.1:{http}"
        version = scenario.Http(base).call("GET", "/api/overview")[1]["rabbitmq_version"]
        records = scenario.run(base, f"amqp://guest:guest@127.0.0.1:{amqp}/", amqp)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
    doc = {"recorded_with": f"RabbitMQ {version} (Debian rabbitmq-server, "
                            "rabbitmq_management)", "calls": records}
    Path(args.out).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(records)} calls from RabbitMQ {version} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
