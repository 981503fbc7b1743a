"""Celery (kombu + py-amqp) against the broker under test.

One worker (``--pool solo``, prefetch multiplier 1, AMQP heartbeat 2 s) is
shared by the module; the acks_late/SIGKILL test starts two workers of its own
on a queue of its own. Tasks go out with ``delay()``; results come back through
the ``rpc://`` backend. The app is ``interop/celery_app``.

Every queue and exchange name is unique per run, so leftovers of an earlier run
on a long-lived broker (RabbitMQ) cannot interfere.
"""
from __future__ import annotations

import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from .celery_app import make_app
from .ecosystem import Background, delete_entities, unique, wait_until
from .harness import REPO_ROOT, WAIT, queue_depth

pytestmark = [pytest.mark.interop]

WORKER_HEARTBEAT = 2
#: The log line of a worker that lost its broker connection (e.g. missed heartbeats).
CONNECTION_LOST = "Connection to broker lost"


def start_worker(broker_url: str, queue: str, name: str, heartbeat: float = 0) -> Background:
    argv = [sys.executable, "-m", "celery", "-A", "interop.celery_app.worker", "worker",
            "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO",
            "--without-mingle", "-Q", queue, "-n", f"{name}@%h"]
    env = {"AMQP_URL": broker_url, "INTEROP_CELERY_QUEUE": queue,
           "INTEROP_CELERY_HEARTBEAT": str(heartbeat)}
    return Background(f"celery worker {name}", argv, env=env, cwd=REPO_ROOT)


def wait_ready(worker: Background, timeout: float = WAIT) -> str:
    """Wait for the worker's "<hostname> ready." line; return its hostname."""
    return worker.wait_for(r"(\S+@\S+) ready\.", timeout).group(1)


@pytest.fixture(scope="module")
def celery_names():
    return {"queue": unique("celery.tasks"), "kill_queue": unique("celery.kill")}


@pytest.fixture(scope="module")
def celery_app(broker_url, celery_names):
    app = make_app(broker_url, celery_names["queue"])
    try:
        yield app
    finally:
        # app.close() closes the producer pool, not the rpc backend's result
        # consumer connection.
        result_consumer = app.backend.result_consumer
        if getattr(result_consumer, "_connection", None) is not None:
            result_consumer.stop()
        app.close()
        names = (celery_names["queue"], celery_names["kill_queue"])
        delete_entities(broker_url, queues=names, exchanges=names)


@pytest.fixture(scope="module")
def shared_worker(broker_url, celery_names, celery_app):
    """One worker for the module; yields (process, hostname)."""
    worker = start_worker(broker_url, celery_names["queue"],
                          f"interop-shared-{uuid.uuid4().hex[:8]}", heartbeat=WORKER_HEARTBEAT)
    try:
        hostname = wait_ready(worker)
        yield worker, hostname
    finally:
        worker.stop(signal.SIGTERM, timeout=15)


@pytest.fixture
def marker_dir(tmp_path) -> Path:
    return tmp_path


def started_markers(marker_dir: Path, tag: str) -> list[Path]:
    return sorted(marker_dir.glob(f"{tag}.started.*"))


def test_delay_and_rpc_results(celery_app, shared_worker):
    add = celery_app.tasks["interop.add"]
    assert add.delay(2, 3).get(timeout=WAIT) == 5
    results = [add.delay(i, i) for i in range(20)]
    assert [r.get(timeout=WAIT) for r in results] == [2 * i for i in range(20)]
    assert all(r.successful() for r in results)
    # An exception travels back through the rpc backend too.
    failing = add.delay("text", 1)
    with pytest.raises(TypeError):
        failing.get(timeout=WAIT)
    assert failing.state == "FAILURE"


def test_retry_with_countdown(celery_app, shared_worker):
    retry = celery_app.tasks["interop.retry"]
    sent = time.time()
    result = retry.delay(2, 1.0).get(timeout=WAIT)
    assert result["retries"] == 2
    # Two retries, each published with an ETA one second ahead (the worker holds
    # the message unacknowledged and raises its basic.qos prefetch meanwhile).
    assert result["finished"] - sent >= 1.9, result


def test_inspect_ping(broker_url, celery_names, celery_app, shared_worker):
    _, hostname = shared_worker
    # celery_app.control: broadcast on the celery.pidbox fanout exchange, replies
    # through reply.celery.pidbox to this client's own reply queue.
    replies = celery_app.control.ping(destination=[hostname], timeout=5)
    assert replies == [{hostname: {"ok": "pong"}}]
    ping = Background("celery inspect ping", [
        sys.executable, "-m", "celery", "-A", "interop.celery_app.worker",
        "inspect", "ping", "--destination", hostname, "--timeout", "5",
    ], env={"AMQP_URL": broker_url, "INTEROP_CELERY_QUEUE": celery_names["queue"]})
    try:
        status = ping.wait_exit(WAIT)
        output = ping.text()
        assert status == 0, ping.describe()
        assert f"{hostname}: OK" in output and "pong" in output, ping.describe()
        assert "1 node online" in output, ping.describe()
    finally:
        ping.kill()


def test_worker_heartbeats(celery_app, shared_worker):
    """The worker stays connected through an idle spell of three AMQP heartbeat
    intervals (2 s negotiated; a broker that sent no heartbeats would make py-amqp
    drop the connection after two intervals) and sends a worker-heartbeat event
    every 2 s on the celeryev topic exchange."""
    worker, hostname = shared_worker
    stats = celery_app.control.inspect(destination=[hostname], timeout=5).stats()
    assert stats and hostname in stats, stats
    assert stats[hostname]["broker"]["heartbeat"] == WORKER_HEARTBEAT, stats[hostname]["broker"]

    beats: list[dict] = []
    started = time.monotonic()
    deadline = started + 20

    with celery_app.connection_for_read() as connection:
        def on_event(event):
            if event.get("type") == "worker-heartbeat" and event.get("hostname") == hostname:
                beats.append(event)
            now = time.monotonic()
            if (len(beats) >= 3 and now - started >= 3 * WORKER_HEARTBEAT) or now > deadline:
                receiver.should_stop = True

        receiver = celery_app.events.Receiver(connection, handlers={"*": on_event})
        receiver.capture(limit=None, timeout=10, wakeup=False)
    assert len(beats) >= 3, f"{len(beats)} worker-heartbeat events in 20 s\n{worker.describe()}"
    intervals = [b["timestamp"] - a["timestamp"] for a, b in zip(beats, beats[1:])]
    assert all(0.5 < i < 4 for i in intervals), intervals
    assert time.monotonic() - started >= 3 * WORKER_HEARTBEAT

    assert celery_app.tasks["interop.add"].delay(20, 22).get(timeout=WAIT) == 42
    assert CONNECTION_LOST not in worker.text(), worker.describe()


def test_prefetch_multiplier_one(broker_url, celery_names, celery_app, shared_worker,
                                 marker_dir):
    """worker_prefetch_multiplier=1 and one process: basic.qos(prefetch_count=1), so
    while an acks_late task runs the other two wait, ready, in the queue."""
    worker, hostname = shared_worker
    stats = celery_app.control.inspect(destination=[hostname], timeout=5).stats()
    assert stats[hostname]["prefetch_count"] == 1, stats[hostname]
    slow = celery_app.tasks["interop.slow"]
    queue = celery_names["queue"]
    results = [slow.delay(str(marker_dir), f"p{i}", 1.0) for i in range(3)]

    samples = []
    for i in range(2):
        wait_until(lambda i=i: started_markers(marker_dir, f"p{i}"), WAIT, f"task p{i} to start")
        depth = queue_depth(broker_url, queue)
        still_running = not results[i].ready() and not started_markers(marker_dir, f"p{i + 1}")
        samples.append((i, depth, still_running))
    for i, depth, still_running in samples:
        assert still_running, f"task p{i} ended before the queue was sampled: {samples}"
        assert depth == 2 - i, f"while task p{i} ran: {depth} ready messages, " \
                               f"expected {2 - i} (prefetch 1)\n{samples}"
    done = [r.get(timeout=WAIT) for r in results]
    assert [d["redelivered"] for d in done] == [False] * 3
    # Serial execution: each task started after the previous one finished.
    for a, b in zip(done, done[1:]):
        assert b["started"] >= a["finished"] - 0.05, done
    assert queue_depth(broker_url, queue) == 0
    assert CONNECTION_LOST not in worker.text(), worker.describe()


def test_acks_late_task_redelivered_after_sigkill(broker_url, celery_names, celery_app,
                                                  marker_dir):
    """An acks_late task whose worker is SIGKILLed mid-task goes back to the queue
    (the broker requeues the unacked delivery when the connection drops) and a
    second worker runs it to completion, seeing redelivered=True."""
    queue = celery_names["kill_queue"]
    workers = [start_worker(broker_url, queue, f"interop-kill-{x}-{uuid.uuid4().hex[:8]}")
               for x in "ab"]
    try:
        for worker in workers:
            wait_ready(worker)
        slow = celery_app.tasks["interop.slow"]
        result = slow.apply_async((str(marker_dir), "k", 60.0, 0.2), queue=queue)
        first = wait_until(lambda: started_markers(marker_dir, "k"), WAIT, "the task to start")
        assert len(first) == 1, first
        victim_pid = int(first[0].name.rsplit(".", 1)[1])
        by_pid = {w.pid: w for w in workers}
        assert victim_pid in by_pid, (victim_pid, list(by_pid))
        victim = by_pid.pop(victim_pid)
        survivor = next(iter(by_pid.values()))
        victim.send_signal(signal.SIGKILL)
        victim.wait_exit(10)

        outcome = result.get(timeout=WAIT)
        assert outcome["pid"] == survivor.pid, (outcome, survivor.describe())
        assert outcome["redelivered"] is True, outcome
        assert len(started_markers(marker_dir, "k")) == 2
        assert result.state == "SUCCESS"
        wait_until(lambda: queue_depth(broker_url, queue) == 0, 5, "the queue to be empty")
    finally:
        for worker in workers:
            worker.stop(signal.SIGTERM, timeout=15)
